package cli

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/medprov/medprov/gateway"
	"github.com/medprov/medprov/ingest"
	"github.com/medprov/medprov/node"
	"github.com/medprov/medprov/seal"
)

// Environment variables read by serve.
const (
	EnvMasterKey = "MEDPROV_MASTER_KEY"
)

// serveOptions are the flags of "medprov serve".
type serveOptions struct {
	addr          string
	dataDir       string
	ledger        string
	blobs         string
	kuboAPI       string
	fabricProfile string
	fabricOrg     string
	tlsCert       string
	tlsKey        string
	masterKeyFile string
	logLevel      string
	deviceRate    float64
	queueMax      int
	batchMax      int
	batchWait     time.Duration
	inFlight      int
	maxLag        time.Duration
	publicURL     string
	pprofAddr     string
	mqttAddr      string
	mqttTLSCert   string
	mqttTLSKey    string
}

func newServeCmd(a *app) *cobra.Command {
	o := &serveOptions{}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the gateway (embedded ledger and blob store by default)",
		Long: `serve runs the medprov HTTP gateway.

By default everything is embedded and kept under --data-dir: the medprov
chaincode runs in-process on a persistent hash-chained ledger, ciphertext
goes to an on-disk IPFS blockstore, and patient keys to an encrypted
keyring. Nothing else needs to be installed.

--ledger fabric uses a real Fabric network through the Fabric Gateway
client (--fabric-profile, written by scripts/network.sh up); --blobs kubo
uses a kubo daemon's RPC API (--kubo-api, bind it to 127.0.0.1).

The admin token for POST /v1/actors is $MEDPROV_ADMIN_TOKEN, else the one
stored in <data-dir>/admin.token, generated (0600) on first start; only
its path is printed, never the token. The keyring master key is
$MEDPROV_MASTER_KEY (64 hex digits), else --master-key-file, generated
(0600) on first start.

--mqtt-addr also serves MQTT 3.1.1 and 5 for devices, over TLS only
(--mqtt-tls-cert/--mqtt-tls-key, default --tls-cert/--tls-key): a device
connects with a client certificate whose CN is its deviceId and whose key
is its registered key, publishes readings to
medprov/v1/devices/<deviceId>/readings and reads their outcomes on
medprov/v1/devices/<deviceId>/results (see the README, "MQTT").

Invitations ("medprov actor invite") link to <public-url>/enrol/<token>:
--public-url is where people reach this gateway, by default
http://localhost:PORT (https with --tls-cert).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.serve(cmd.Context(), o, cmd.ErrOrStderr()) },
	}
	o.bind(cmd.Flags())
	return cmd
}

// bind defines serve's flags on f, with their defaults.
func (o *serveOptions) bind(f *pflag.FlagSet) {
	f.StringVar(&o.addr, "addr", "127.0.0.1:8080", "listen address")
	f.StringVar(&o.dataDir, "data-dir", "./medprov-data", "directory for the queue, keyring and embedded backends")
	f.StringVar(&o.ledger, "ledger", "embedded", "ledger backend: embedded or fabric")
	f.StringVar(&o.blobs, "blobs", "embedded", "blob store: embedded or kubo")
	f.StringVar(&o.kuboAPI, "kubo-api", "127.0.0.1:5001", "kubo RPC API address (with --blobs kubo)")
	f.StringVar(&o.fabricProfile, "fabric-profile", ".cache/network/profile.json", "connection profile written by scripts/network.sh (with --ledger fabric)")
	f.StringVar(&o.fabricOrg, "fabric-org", "HospitalMSP", "MSP ID of the organisation this gateway acts for (with --ledger fabric)")
	f.StringVar(&o.tlsCert, "tls-cert", "", "TLS certificate (PEM); with --tls-key serves HTTPS")
	f.StringVar(&o.tlsKey, "tls-key", "", "TLS private key (PEM)")
	f.StringVar(&o.masterKeyFile, "master-key-file", "", "keyring master key file (default <data-dir>/master.key)")
	f.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	f.Float64Var(&o.deviceRate, "device-rate", 200, "readings per second allowed per device (negative: unlimited)")
	f.IntVar(&o.queueMax, "queue-max", 200000, "most readings acknowledged but not yet on the ledger (beyond: 503)")
	f.IntVar(&o.batchMax, "batch-max", 0, "most readings per ledger transaction (default 1000 on the embedded ledger, 500 on Fabric)")
	f.DurationVar(&o.batchWait, "batch-wait", 20*time.Millisecond, "longest a reading waits for its transaction to fill")
	f.IntVar(&o.inFlight, "in-flight", 0, "ledger transactions in flight (default 8 on the embedded ledger, 4 on Fabric)")
	f.DurationVar(&o.maxLag, "max-lag", 2*time.Second, "pushback (503) while the oldest reading not yet sent to the ledger is older than this")
	f.StringVar(&o.pprofAddr, "pprof-addr", "", "serve Go profiles (/debug/pprof/) on this loopback address, e.g. 127.0.0.1:6060 (off by default)")
	f.StringVar(&o.publicURL, "public-url", "", "external base URL of the gateway, where enrolment links point (default http://localhost:PORT, https with --tls-cert)")
	f.StringVar(&o.mqttAddr, "mqtt-addr", "", "serve MQTT (TLS, device client certificates) on this address, e.g. 0.0.0.0:8883 (off by default)")
	f.StringVar(&o.mqttTLSCert, "mqtt-tls-cert", "", "the MQTT listener's TLS certificate (PEM; default --tls-cert)")
	f.StringVar(&o.mqttTLSKey, "mqtt-tls-key", "", "the MQTT listener's TLS private key (PEM; default --tls-key)")
}

// batcher is the batching o describes, with each backend's defaults where
// --batch-max or --in-flight is not given. Readings in flight set commit
// latency (Little's law): on Fabric, 4 transactions of 500 committed as
// many readings per second as 8 of 1,000 on the project's VM (1,695/s
// against 1,630/s) and halved p99 commit latency at a paced load (3.6 s
// against 7.2 s); the embedded ledger commits a transaction in
// milliseconds and gains from the larger batches.
func (o *serveOptions) batcher() ingest.BatcherConfig {
	c := ingest.BatcherConfig{MaxBatch: o.batchMax, MaxWait: o.batchWait, InFlight: o.inFlight}
	fabric := o.ledger == "fabric"
	if c.MaxBatch <= 0 {
		c.MaxBatch = 1000
		if fabric {
			c.MaxBatch = 500
		}
	}
	if c.InFlight <= 0 {
		c.InFlight = 8
		if fabric {
			c.InFlight = 4
		}
	}
	return c
}

// nodeConfig is the node that o describes.
func (a *app) nodeConfig(o *serveOptions, adminToken string, log *slog.Logger) (node.Config, error) {
	mk, err := a.masterKey(o)
	if err != nil {
		return node.Config{}, err
	}
	pub, err := checkPublicURL(o.publicURL)
	if err != nil {
		return node.Config{}, err
	}
	mqttTLS, err := o.mqttTLS()
	if err != nil {
		return node.Config{}, err
	}
	return node.Config{
		DataDir: o.dataDir, Ledger: o.ledger, FabricProfile: o.fabricProfile, FabricOrg: o.fabricOrg,
		Blobs: o.blobs, KuboAPI: o.kuboAPI, MasterKey: mk, AdminToken: adminToken, PublicURL: pub,
		Queue:   ingest.QueueConfig{MaxPending: o.queueMax},
		Batcher: o.batcher(),
		Limits:  gateway.Limits{DeviceRate: o.deviceRate, DeviceBurst: max(int(o.deviceRate*5), 1), MaxLag: o.maxLag},
		Logger:  log,

		MQTTAddr: o.mqttAddr, MQTTTLS: mqttTLS, // off without --mqtt-addr
	}, nil
}

// mqttTLS returns the MQTT listener's TLS settings (its certificate), nil
// without --mqtt-addr. MQTT is served over TLS only.
func (o *serveOptions) mqttTLS() (*tls.Config, error) {
	if o.mqttAddr == "" {
		return nil, nil
	}
	cert, key := o.mqttTLSCert, o.mqttTLSKey
	if cert == "" && key == "" {
		cert, key = o.tlsCert, o.tlsKey
	}
	if cert == "" || key == "" {
		return nil, usagef("--mqtt-addr needs --mqtt-tls-cert and --mqtt-tls-key (or --tls-cert and --tls-key): MQTT is served over TLS only")
	}
	kp, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		return nil, fmt.Errorf("MQTT TLS certificate: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{kp}, MinVersion: tls.VersionTLS12}, nil
}

// checkPublicURL returns --public-url without a trailing slash, refusing
// anything but http(s)://host[:port] with an optional path.
func checkPublicURL(v string) (string, error) {
	if v == "" {
		return "", nil
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", usagef("--public-url must be http(s)://host[:port], e.g. https://portal.hospital.example")
	}
	return strings.TrimRight(v, "/"), nil
}

// defaultPublicURL is the public URL of a gateway listening on addr:
// localhost (the rpId a local portal uses) on the same port.
func defaultPublicURL(scheme string, addr net.Addr) string {
	_, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return ""
	}
	return scheme + "://localhost:" + port
}

// openNode opens the node that o describes.
func (a *app) openNode(ctx context.Context, o *serveOptions, adminToken string, log *slog.Logger) (*node.Node, error) {
	switch o.ledger {
	case node.Embedded, node.Fabric:
	default:
		return nil, usagef("--ledger must be embedded or fabric")
	}
	switch o.blobs {
	case node.Embedded, node.Kubo:
	default:
		return nil, usagef("--blobs must be embedded or kubo")
	}
	cfg, err := a.nodeConfig(o, adminToken, log)
	if err != nil {
		return nil, err
	}
	return node.Open(ctx, cfg)
}

// masterKey reads the keyring master key from the environment or its file.
func (a *app) masterKey(o *serveOptions) ([]byte, error) {
	if v := a.getenv(EnvMasterKey); v != "" {
		k, err := seal.ParseMasterKey(v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", EnvMasterKey, err)
		}
		return k, nil
	}
	path := o.masterKeyFile
	if path == "" {
		path = filepath.Join(o.dataDir, "master.key")
	}
	k, err := seal.LoadOrCreateMasterKey(path)
	if err != nil {
		return nil, fmt.Errorf("master key: %w", err)
	}
	return k, nil
}

// loadAdminToken returns $MEDPROV_ADMIN_TOKEN, else the token stored in the
// data dir, else a new one it stores (0600); created reports the last case.
func (a *app) loadAdminToken(dataDir string) (token string, created bool, err error) {
	if t := strings.TrimSpace(a.getenv(EnvAdminToken)); t != "" {
		if len(t) < 16 {
			return "", false, usagef("%s must be at least 16 characters", EnvAdminToken)
		}
		return t, false, nil
	}
	path := filepath.Join(dataDir, "admin.token")
	b, err := os.ReadFile(path)
	if err == nil {
		return strings.TrimSpace(string(b)), false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", false, fmt.Errorf("admin token: %w", err)
	}
	t, err := randomToken()
	if err != nil {
		return "", false, err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", false, fmt.Errorf("admin token: %w", err)
	}
	if err := os.WriteFile(path, []byte(t+"\n"), 0o600); err != nil {
		return "", false, fmt.Errorf("admin token: %w", err)
	}
	return t, true, nil
}

func randomToken() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("admin token: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, usagef("--log-level: %v", err)
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: lv})), nil
}

func (a *app) serve(ctx context.Context, o *serveOptions, stderr io.Writer) error {
	if (o.tlsCert == "") != (o.tlsKey == "") {
		return usagef("--tls-cert and --tls-key go together")
	}
	log, err := newLogger(stderr, o.logLevel)
	if err != nil {
		return err
	}
	if a.getenv("GOGC") == "" {
		// The gateway allocates per reading and has memory to spare:
		// collecting less often saved ~6% CPU per reading under load.
		debug.SetGCPercent(400)
	}
	// Everything serve writes (data dir, stores, token, key) is private.
	syscall.Umask(0o077)
	token, created, err := a.loadAdminToken(o.dataDir)
	if err != nil {
		return err
	}
	// Listen first: the default public URL names the port listened on.
	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	scheme := "http"
	if o.tlsCert != "" {
		scheme = "https"
	}
	if o.publicURL == "" {
		o.publicURL = defaultPublicURL(scheme, ln.Addr())
	}
	n, err := a.openNode(ctx, o, token, log)
	if err != nil {
		return errors.Join(err, ln.Close())
	}
	defer func() {
		if err := n.Close(); err != nil {
			log.Error("shutdown", "err", err)
		}
	}()
	if created {
		// The token itself never goes to the output, which is the log
		// stream: only where to read it.
		fmt.Fprintf(stderr, "medprov: new admin token stored 0600 in %s\n", filepath.Join(o.dataDir, "admin.token"))
	}
	if o.pprofAddr != "" {
		at, stop, err := startPprof(o.pprofAddr, log)
		if err != nil {
			return errors.Join(err, ln.Close())
		}
		defer stop()
		log.Info("pprof listening", "url", "http://"+at+"/debug/pprof/")
	}
	log.Info("medprov gateway listening", "url", scheme+"://"+ln.Addr().String(), "ledger", o.ledger, "blobs", o.blobs, "dataDir", o.dataDir)
	if n.MQTT != nil {
		log.Info("medprov MQTT listening", "url", "mqtts://"+n.MQTT.Addr().String())
	}
	srv := node.NewHTTPServer(n.Handler(), log)
	errc := make(chan error, 1)
	go func() {
		if o.tlsCert != "" {
			errc <- srv.ServeTLS(ln, o.tlsCert, o.tlsKey)
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// startEmbeddedGateway runs a gateway on the embedded backends in dataDir,
// on a free loopback port, with a fresh admin token. stop shuts it down.
func startEmbeddedGateway(ctx context.Context, dataDir string) (baseURL, adminToken string, stop func() error, err error) {
	a := &app{getenv: func(string) string { return "" }}
	o := &serveOptions{dataDir: dataDir, ledger: "embedded", blobs: "embedded", deviceRate: 200,
		queueMax: 200000, batchMax: 1000, batchWait: 20 * time.Millisecond, inFlight: 8, maxLag: 2 * time.Second}
	token, err := randomToken()
	if err != nil {
		return "", "", nil, err
	}
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	n, err := a.openNode(ctx, o, token, log)
	if err != nil {
		return "", "", nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", "", nil, errors.Join(fmt.Errorf("listen: %w", err), n.Close())
	}
	srv := node.NewHTTPServer(n.Handler(), log)
	go func() { _ = srv.Serve(ln) }() //nolint:errcheck // Serve returns ErrServerClosed after Shutdown
	stop = func() error {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return errors.Join(srv.Shutdown(sctx), n.Close())
	}
	return "http://" + ln.Addr().String(), token, stop, nil
}
