package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/medprov/medprov/chaincode"
	"github.com/medprov/medprov/envelope"
	"github.com/medprov/medprov/gateway"
	"github.com/medprov/medprov/ingest"
	ipfsembedded "github.com/medprov/medprov/ipfs/embedded"
	"github.com/medprov/medprov/ledger"
	ledgerembedded "github.com/medprov/medprov/ledger/embedded"
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
stored in <data-dir>/admin.token, generated (0600) and printed on first
start. The keyring master key is $MEDPROV_MASTER_KEY (64 hex digits), else
--master-key-file, generated (0600) on first start.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.serve(cmd.Context(), o, cmd.ErrOrStderr()) },
	}
	f := cmd.Flags()
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
	f.IntVar(&o.batchMax, "batch-max", 1000, "most readings per ledger transaction")
	f.DurationVar(&o.batchWait, "batch-wait", 20*time.Millisecond, "longest a reading waits for its transaction to fill")
	f.IntVar(&o.inFlight, "in-flight", 8, "ledger transactions in flight")
	f.DurationVar(&o.maxLag, "max-lag", 2*time.Second, "pushback (503) while the oldest reading not yet sent to the ledger is older than this")
	return cmd
}

// stack is a running gateway with its backends.
type stack struct {
	gw      *gateway.Server
	closers []func() error
}

func (s *stack) close() error {
	var errs []error
	if s.gw != nil {
		errs = append(errs, s.gw.Close())
	}
	for i := len(s.closers) - 1; i >= 0; i-- {
		errs = append(errs, s.closers[i]())
	}
	return errors.Join(errs...)
}

// openStack opens the backends named by o and the gateway over them.
func (a *app) openStack(ctx context.Context, o *serveOptions, adminToken string, log *slog.Logger) (*stack, error) {
	st := &stack{}
	if err := os.MkdirAll(o.dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	fail := func(err error) (*stack, error) { return nil, errors.Join(err, st.close()) }

	var tr ledger.Transactor
	var verifier gateway.Verifier // nil: the gateway verifies with plain ECDSA
	switch o.ledger {
	case "embedded":
		// Gateway and chaincode share one process here, so the chaincode
		// may reuse the gateway's verification of the identical (key,
		// digest, signature) triple. On Fabric every peer verifies alone.
		memo := envelope.NewVerifyMemo(1 << 18)
		verifier = memo
		cc, err := chaincode.NewChaincode(chaincode.WithVerifier(memo))
		if err != nil {
			return fail(fmt.Errorf("chaincode: %w", err))
		}
		l, err := ledgerembedded.New(ctx, ledgerembedded.Config{Dir: filepath.Join(o.dataDir, "ledger"), Chaincode: cc, Logger: log})
		if err != nil {
			return fail(fmt.Errorf("embedded ledger: %w", err))
		}
		tr = l
	case "fabric":
		l, err := openFabric(ctx, o)
		if err != nil {
			return fail(err)
		}
		tr = l
	default:
		return fail(usagef("--ledger must be embedded or fabric"))
	}
	st.closers = append(st.closers, tr.Close)

	var blobs gateway.Blobs
	switch o.blobs {
	case "embedded":
		b, err := ipfsembedded.New(ctx, ipfsembedded.Config{Dir: filepath.Join(o.dataDir, "blobs")})
		if err != nil {
			return fail(fmt.Errorf("embedded blob store: %w", err))
		}
		st.closers = append(st.closers, b.Close)
		blobs = b
	case "kubo":
		b, err := openKubo(ctx, o)
		if err != nil {
			return fail(err)
		}
		st.closers = append(st.closers, b.Close)
		blobs = b
	default:
		return fail(usagef("--blobs must be embedded or kubo"))
	}

	mk, err := a.masterKey(o)
	if err != nil {
		return fail(err)
	}
	kr, err := seal.OpenKeyring(ctx, seal.KeyringConfig{Path: filepath.Join(o.dataDir, "keyring.db"), MasterKey: mk, Logger: log})
	if err != nil {
		return fail(fmt.Errorf("keyring: %w", err))
	}
	st.closers = append(st.closers, kr.Close)

	gw, err := gateway.New(ctx, gateway.Config{
		Ledger: tr, Blobs: blobs, Sealer: kr, AdminToken: adminToken, Verifier: verifier,
		QueuePath:           filepath.Join(o.dataDir, "ingest.db"),
		EventCheckpointPath: filepath.Join(o.dataDir, "events.checkpoint"),
		Queue:               ingest.QueueConfig{MaxPending: o.queueMax},
		Batcher:             ingest.BatcherConfig{MaxBatch: o.batchMax, MaxWait: o.batchWait, InFlight: o.inFlight},
		Limits:              gateway.Limits{DeviceRate: o.deviceRate, DeviceBurst: max(int(o.deviceRate*5), 1)},
		Logger:              log,
	})
	if err != nil {
		return fail(err)
	}
	st.gw = gw
	return st, nil
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
	token, created, err := a.loadAdminToken(o.dataDir)
	if err != nil {
		return err
	}
	st, err := a.openStack(ctx, o, token, log)
	if err != nil {
		return err
	}
	defer func() {
		if err := st.close(); err != nil {
			log.Error("shutdown", "err", err)
		}
	}()
	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	scheme := "http"
	if o.tlsCert != "" {
		scheme = "https"
	}
	if created {
		// Printed once, on the terminal, never through the logger.
		fmt.Fprintf(stderr, "medprov: new admin token (stored 0600 in %s): %s\n", filepath.Join(o.dataDir, "admin.token"), token)
	}
	log.Info("medprov gateway listening", "url", scheme+"://"+ln.Addr().String(), "ledger", o.ledger, "blobs", o.blobs, "dataDir", o.dataDir)
	srv := newHTTPServer(st.gw.Handler(), log)
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

func newHTTPServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
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
	st, err := a.openStack(ctx, o, token, log)
	if err != nil {
		return "", "", nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", "", nil, errors.Join(fmt.Errorf("listen: %w", err), st.close())
	}
	srv := newHTTPServer(st.gw.Handler(), log)
	go func() { _ = srv.Serve(ln) }() //nolint:errcheck // Serve returns ErrServerClosed after Shutdown
	stop = func() error {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return errors.Join(srv.Shutdown(sctx), st.close())
	}
	return "http://" + ln.Addr().String(), token, stop, nil
}
