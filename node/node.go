// Package node wires one medprov node from a Config: the ledger backend,
// the blob store, the patient keyring, the ingest pipeline and the HTTP
// gateway over them (and, when configured, the MQTT listener for devices). "medprov serve", the gateway and end-to-end tests and
// the load benchmarks all build their node here, so what a test or a
// benchmark runs is what users run.
package node

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/medprov/medprov/audit"
	"github.com/medprov/medprov/chaincode"
	"github.com/medprov/medprov/envelope"
	"github.com/medprov/medprov/gateway"
	"github.com/medprov/medprov/ingest"
	ipfsembedded "github.com/medprov/medprov/ipfs/embedded"
	"github.com/medprov/medprov/ipfs/kubo"
	"github.com/medprov/medprov/ledger"
	ledgerembedded "github.com/medprov/medprov/ledger/embedded"
	"github.com/medprov/medprov/ledger/fabric"
	"github.com/medprov/medprov/mqtt"
	"github.com/medprov/medprov/seal"
)

// Backend names.
const (
	Embedded = "embedded"
	Fabric   = "fabric"
	Kubo     = "kubo"
)

// ErrConfig reports a Config that names no valid backend or lacks a
// required field.
var ErrConfig = errors.New("invalid node configuration")

// Config describes a node. DataDir, MasterKey and AdminToken are required.
type Config struct {
	// DataDir holds the ingest queue, the keyring, the event checkpoint
	// and the embedded backends' stores. It is created 0700.
	DataDir string
	// Ledger is Embedded (default) or Fabric.
	Ledger string
	// FabricProfile is the connection profile scripts/network.sh writes
	// and FabricOrg the MSP ID this node acts for (Ledger Fabric).
	FabricProfile string
	FabricOrg     string
	// Blobs is Embedded (default) or Kubo; KuboAPI is kubo's RPC address.
	Blobs   string
	KuboAPI string
	// MasterKey (32 bytes) encrypts the keyring's patient keys.
	MasterKey []byte
	// AdminToken authorises actor registration (16 characters or more).
	AdminToken string
	Queue      ingest.QueueConfig // Path defaults to DataDir/ingest.db
	Batcher    ingest.BatcherConfig
	Limits     gateway.Limits
	Logger     *slog.Logger
	// PublicURL is the gateway's external base URL, the start of the
	// enrolment links of invitations (gateway.Config.PublicURL).
	PublicURL string
	// Now is the gateway's clock (tests); default time.Now.
	Now func() time.Time
	// MQTTAddr, if set, is where the MQTT listener for devices (package
	// mqtt) listens, with MQTTTLS holding its server certificate.
	MQTTAddr string
	MQTTTLS  *tls.Config
}

// EmbeddedMSPID is the MSP ID of the embedded ledger's local org.
const EmbeddedMSPID = "HospitalMSP"

// invitesFile is where the gateway keeps its invitations.
const invitesFile = "invites.db"

// Node is a running node. Serve its Handler; Close it once.
type Node struct {
	// Gateway is the HTTP gateway; Ledger, Blobs, Keyring and Ingest are
	// the parts below it.
	Gateway *gateway.Server
	Ledger  ledger.Transactor
	Blobs   BlobStore
	Keyring *seal.Keyring
	Ingest  *ingest.Pipeline
	// MQTT is the MQTT listener, nil unless Config.MQTTAddr is set.
	MQTT    *mqtt.Listener
	closers []func() error

	dataDir string
	// life ends when Close begins, stopping backups in progress.
	life    context.Context
	endLife context.CancelFunc
}

// BlobStore is what a node needs of its blob store: the ingest pipeline
// writes, the gateway reads.
type BlobStore interface {
	ingest.Blobs
	gateway.Blobs
	Close() error
}

// Open opens the backends named by cfg and starts the ingest pipeline and
// the gateway over them. On error everything opened is closed again.
func Open(ctx context.Context, cfg Config) (_ *Node, err error) {
	if cfg.DataDir == "" || len(cfg.MasterKey) == 0 {
		return nil, fmt.Errorf("%w: DataDir and MasterKey are required", ErrConfig)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	if err := removeStaleBackups(cfg.DataDir); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	if err := restrictPermissions(cfg.DataDir); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	n := &Node{dataDir: cfg.DataDir}
	n.life, n.endLife = context.WithCancel(context.WithoutCancel(ctx))
	defer func() {
		if err != nil {
			err = errors.Join(err, n.Close())
		}
	}()

	var verifier gateway.Verifier // nil: the gateway verifies with plain ECDSA
	var org string                // the MSP ID the gateway acts for
	var blocks audit.Format       // the ledger's block encoding, for audit bundles
	switch cfg.Ledger {
	case Embedded, "":
		// Gateway and chaincode share one process here, so the chaincode
		// reuses the gateway's verification of the identical (key, digest,
		// signature) triple: one ECDSA verification per reading. On Fabric
		// every endorsing peer verifies on its own.
		memo := envelope.NewVerifyMemo(1 << 18)
		verifier = memo
		cc, err := chaincode.NewChaincode(chaincode.WithVerifier(memo))
		if err != nil {
			return nil, fmt.Errorf("chaincode: %w", err)
		}
		org = EmbeddedMSPID
		l, err := ledgerembedded.New(ctx, ledgerembedded.Config{Dir: filepath.Join(cfg.DataDir, LedgerDir), Chaincode: cc, MSPID: org, Logger: cfg.Logger})
		if err != nil {
			return nil, fmt.Errorf("embedded ledger: %w", err)
		}
		n.Ledger = l
		blocks = ledgerembedded.BlockFormat{}
	case Fabric:
		p, err := fabric.LoadProfile(cfg.FabricProfile)
		if err != nil {
			return nil, err
		}
		fc, err := p.Config(cfg.FabricOrg)
		if err != nil {
			return nil, err
		}
		org = fc.MSPID
		l, err := fabric.New(ctx, fc)
		if err != nil {
			return nil, fmt.Errorf("fabric ledger: %w", err)
		}
		n.Ledger = l
		blocks = fabric.BlockFormat{}
	default:
		return nil, fmt.Errorf("%w: ledger must be %s or %s", ErrConfig, Embedded, Fabric)
	}
	n.closers = append(n.closers, n.Ledger.Close)

	switch cfg.Blobs {
	case Embedded, "":
		b, err := ipfsembedded.New(ctx, ipfsembedded.Config{Dir: filepath.Join(cfg.DataDir, blobsDir)})
		if err != nil {
			return nil, fmt.Errorf("embedded blob store: %w", err)
		}
		n.Blobs = b
	case Kubo:
		b, err := kubo.New(ctx, kubo.Config{API: cfg.KuboAPI})
		if err != nil {
			return nil, fmt.Errorf("kubo blob store: %w", err)
		}
		n.Blobs = b
	default:
		return nil, fmt.Errorf("%w: blobs must be %s or %s", ErrConfig, Embedded, Kubo)
	}
	n.closers = append(n.closers, n.Blobs.Close)

	kr, err := seal.OpenKeyring(ctx, seal.KeyringConfig{Path: filepath.Join(cfg.DataDir, KeyringFile), MasterKey: cfg.MasterKey, Logger: cfg.Logger})
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	n.Keyring = kr
	n.closers = append(n.closers, kr.Close)

	metrics := gateway.NewMetrics()
	qc := cfg.Queue
	if qc.Path == "" {
		qc.Path = filepath.Join(cfg.DataDir, queueFile)
	}
	pl, err := ingest.Open(ctx, ingest.Config{Ledger: n.Ledger, Blobs: n.Blobs, Sealer: kr, Queue: qc,
		Batcher: cfg.Batcher, Observer: metrics, Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}
	n.Ingest = pl
	n.closers = append(n.closers, pl.Close)

	gw, err := gateway.New(ctx, gateway.Config{
		Ledger: n.Ledger, Ingest: pl, Blobs: n.Blobs, Opener: kr, AdminToken: cfg.AdminToken,
		Limits: cfg.Limits, Metrics: metrics, Verifier: verifier, Logger: cfg.Logger,
		EventCheckpointPath: filepath.Join(cfg.DataDir, checkpointFile),
		NoncePath:           filepath.Join(cfg.DataDir, noncesFile),
		InvitePath:          filepath.Join(cfg.DataDir, invitesFile),
		Org:                 org,
		PublicURL:           cfg.PublicURL,
		Now:                 cfg.Now,
		Backup:              n.WriteBackup,
		BlockFormat:         blocks,
	})
	if err != nil {
		return nil, err
	}
	n.Gateway = gw
	n.closers = append(n.closers, gw.Close)
	if cfg.MQTTAddr != "" {
		l, err := mqtt.New(ctx, mqtt.Config{Addr: cfg.MQTTAddr, TLS: cfg.MQTTTLS, Gateway: gw,
			Registerer: metrics.Registerer(), OutcomeWait: cfg.Limits.CommitWait, Logger: cfg.Logger})
		if err != nil {
			return nil, err
		}
		n.MQTT = l
		n.closers = append(n.closers, l.Close)
	}
	// Again, for what the stores created on this open. Files they create
	// later sit in these 0700 directories (and serve runs with umask 077).
	if err := restrictPermissions(cfg.DataDir); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	return n, nil
}

// restrictPermissions makes dir and everything below it private to this
// user (directories 0700, files 0600), whatever modes they were created or
// left with: the data directory holds the keyring, the admin token and
// pseudonymous ledger records.
func restrictPermissions(dir string) error {
	return filepath.WalkDir(dir, restrictEntry)
}

// restrictEntry is restrictPermissions for one entry. An entry that is gone
// by the time it is looked at is skipped: the second walk of Open runs
// while the node's stores write and rename their temporary files (the
// event checkpoint's .tmp among them).
func restrictEntry(path string, d fs.DirEntry, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	want := fs.FileMode(0o600)
	switch {
	case d.IsDir():
		want = 0o700
	case !d.Type().IsRegular():
		return nil // sockets, links: left alone, never followed
	}
	info, err := d.Info()
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if info.Mode().Perm()&^want != 0 {
		if err := os.Chmod(path, info.Mode().Perm()&want); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("restrict permissions: %w", err)
		}
	}
	return nil
}

// Handler serves the gateway's routes.
func (n *Node) Handler() http.Handler { return n.Gateway.Handler() }

// Close stops backups in progress, the gateway and the ingest pipeline
// (readings in flight stay queued for replay) and closes the backends, in
// reverse order of opening.
func (n *Node) Close() error {
	if n.endLife != nil {
		n.endLife()
	}
	var errs []error
	for i := len(n.closers) - 1; i >= 0; i-- {
		errs = append(errs, n.closers[i]())
	}
	n.closers = nil
	return errors.Join(errs...)
}

// NewHTTPServer returns the HTTP server settings a node serves with:
// bounded header, read, write and idle times and header size.
func NewHTTPServer(h http.Handler, log *slog.Logger) *http.Server {
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
