// Package fabric is the ledger backend for a real Hyperledger Fabric network.
//
// A Transactor reaches the peer of one organisation through the Fabric
// Gateway (github.com/hyperledger/fabric-gateway) over gRPC with TLS, signs
// with that organisation's client identity (or its admin identity when a
// Proposal asks for it), and lets the peer's gateway collect the
// endorsements the chaincode's policy requires. Submit returns only after
// the transaction committed. Chaincode refusals come back as
// *ledger.ChaincodeError carrying the chaincode's own message; an
// unreachable or silent network comes back as an error wrapping
// ledger.ErrUnavailable. Every call is bounded by a timeout.
//
// LoadProfile reads the connection profile written by scripts/network.sh.
//
// For offline audit, ParseBlock (and BlockFormat, for package audit) turns
// a raw Fabric block into package evidence's form, every signature with
// the exact bytes signed; the Transactor's BlockHeight, RawBlock,
// EvidenceBlock and Trust read blocks and export the channel's trust root.
package fabric

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/hyperledger/fabric-gateway/pkg/client"
	"github.com/hyperledger/fabric-gateway/pkg/identity"
	"github.com/hyperledger/fabric-protos-go-apiv2/common"
	"github.com/hyperledger/fabric-protos-go-apiv2/gateway"
	"github.com/hyperledger/fabric-protos-go-apiv2/peer"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/proto"

	"github.com/medprov/medprov/ledger"
)

// Default timeouts, used for zero Config fields.
const (
	DefaultEvaluateTimeout     = 10 * time.Second
	DefaultEndorseTimeout      = 30 * time.Second
	DefaultSubmitTimeout       = 10 * time.Second
	DefaultCommitStatusTimeout = 60 * time.Second
)

// Config says which peer to reach, as whom, and for which chaincode.
type Config struct {
	// PeerEndpoint is the host:port of the organisation's peer (its gateway).
	PeerEndpoint string
	// PeerHostOverride, if set, is the TLS server name expected in the
	// peer's certificate instead of the endpoint's host.
	PeerHostOverride string
	// TLSCACertFile is the PEM file of the CA that issued the peer's TLS
	// certificate.
	TLSCACertFile string

	// MSPID is the organisation's MSP ID, e.g. "HospitalMSP".
	MSPID string
	// ClientMSPDir is the MSP folder (signcerts/, keystore/) of the identity
	// that signs ordinary proposals.
	ClientMSPDir string
	// AdminMSPDir is the MSP folder of the organisation's admin (a
	// certificate with OU=admin), used for proposals with AsAdmin. Optional:
	// without it such proposals fail.
	AdminMSPDir string

	// Channel and Chaincode name the medprov chaincode.
	Channel   string
	Chaincode string

	// Timeouts of the four gateway calls; zero means the default.
	EvaluateTimeout     time.Duration
	EndorseTimeout      time.Duration
	SubmitTimeout       time.Duration
	CommitStatusTimeout time.Duration

	// Logger receives diagnostics; nil means slog.Default().
	Logger *slog.Logger
}

// Transactor implements ledger.Transactor over a Fabric Gateway connection.
// It is safe for concurrent use.
type Transactor struct {
	cfg   Config
	log   *slog.Logger
	conn  *grpc.ClientConn
	user  *client.Gateway
	admin *client.Gateway // nil without AdminMSPDir
}

var _ ledger.Transactor = (*Transactor)(nil)

// New loads the identities named in cfg and prepares a connection to the
// peer. It does not wait for the peer: when the peer cannot be reached, the
// first call reports an error wrapping ledger.ErrUnavailable.
func New(ctx context.Context, cfg Config) (*Transactor, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg.applyDefaults()

	caPEM, err := os.ReadFile(cfg.TLSCACertFile)
	if err != nil {
		return nil, fmt.Errorf("fabric: read peer TLS CA: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("fabric: no PEM certificate in %s", cfg.TLSCACertFile)
	}
	userID, userSign, err := loadMSPIdentity(cfg.MSPID, cfg.ClientMSPDir)
	if err != nil {
		return nil, fmt.Errorf("fabric: client identity: %w", err)
	}

	creds := credentials.NewTLS(&tls.Config{
		RootCAs:    roots,
		ServerName: cfg.PeerHostOverride,
		MinVersion: tls.VersionTLS12,
	})
	conn, err := grpc.NewClient("dns:///"+cfg.PeerEndpoint, grpc.WithTransportCredentials(creds))
	if err != nil {
		return nil, fmt.Errorf("fabric: gRPC client for %s: %w", cfg.PeerEndpoint, err)
	}

	t := &Transactor{cfg: cfg, log: cfg.Logger, conn: conn}
	if t.user, err = connect(conn, userID, userSign); err != nil {
		_ = conn.Close() // the connect error is the one to report
		return nil, err
	}
	if cfg.AdminMSPDir != "" {
		adminID, adminSign, err := loadMSPIdentity(cfg.MSPID, cfg.AdminMSPDir)
		if err != nil {
			_ = conn.Close()
			return nil, fmt.Errorf("fabric: admin identity: %w", err)
		}
		if t.admin, err = connect(conn, adminID, adminSign); err != nil {
			_ = conn.Close()
			return nil, err
		}
	}
	return t, nil
}

func connect(conn *grpc.ClientConn, id identity.Identity, sign identity.Sign) (*client.Gateway, error) {
	gw, err := client.Connect(id, client.WithSign(sign), client.WithClientConnection(conn))
	if err != nil {
		return nil, fmt.Errorf("fabric: gateway connection: %w", err)
	}
	return gw, nil
}

func (c *Config) validate() error {
	var missing []string
	for _, f := range []struct{ name, v string }{
		{"PeerEndpoint", c.PeerEndpoint},
		{"TLSCACertFile", c.TLSCACertFile},
		{"MSPID", c.MSPID},
		{"ClientMSPDir", c.ClientMSPDir},
		{"Channel", c.Channel},
		{"Chaincode", c.Chaincode},
	} {
		if f.v == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("fabric: config is missing %v", missing)
	}
	return nil
}

func (c *Config) applyDefaults() {
	if c.EvaluateTimeout <= 0 {
		c.EvaluateTimeout = DefaultEvaluateTimeout
	}
	if c.EndorseTimeout <= 0 {
		c.EndorseTimeout = DefaultEndorseTimeout
	}
	if c.SubmitTimeout <= 0 {
		c.SubmitTimeout = DefaultSubmitTimeout
	}
	if c.CommitStatusTimeout <= 0 {
		c.CommitStatusTimeout = DefaultCommitStatusTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// gatewayFor picks the signing identity for a proposal.
func (t *Transactor) gatewayFor(asAdmin bool) (*client.Gateway, error) {
	if !asAdmin {
		return t.user, nil
	}
	if t.admin == nil {
		return nil, errors.New("fabric: proposal needs the admin identity but Config.AdminMSPDir is empty")
	}
	return t.admin, nil
}

func (t *Transactor) newProposal(p ledger.Proposal) (*client.Proposal, error) {
	gw, err := t.gatewayFor(p.AsAdmin)
	if err != nil {
		return nil, err
	}
	opts := []client.ProposalOption{client.WithArguments(p.Args...)}
	if len(p.Transient) > 0 {
		opts = append(opts, client.WithTransient(p.Transient))
	}
	proposal, err := gw.GetNetwork(t.cfg.Channel).GetContract(t.cfg.Chaincode).NewProposal(p.Function, opts...)
	if err != nil {
		return nil, fmt.Errorf("fabric: build proposal %s: %w", p.Function, err)
	}
	return proposal, nil
}

// Submit endorses, orders and waits for the commit of a transaction. It
// returns the block number once the transaction is committed valid. A
// chaincode refusal or an invalidated transaction is a *ledger.ChaincodeError;
// an unreachable network or an expired timeout wraps ledger.ErrUnavailable
// (after endorsement the outcome is then unknown).
//
// A transaction invalidated by an MVCC or phantom read conflict (another
// transaction in the same block changed what it read) wrote nothing, so it
// is endorsed and submitted again, up to conflictRetries times: a signed
// action's nonce was not consumed and the chaincode decides afresh.
func (t *Transactor) Submit(ctx context.Context, p ledger.Proposal) (*ledger.Commit, error) {
	for attempt := 0; ; attempt++ {
		c, code, err := t.submitOnce(ctx, p)
		if err == nil || attempt >= conflictRetries || !retryableConflict(code) {
			return c, err
		}
	}
}

// conflictRetries bounds the resubmissions of a conflicted transaction.
const conflictRetries = 3

func retryableConflict(code peer.TxValidationCode) bool {
	return code == peer.TxValidationCode_MVCC_READ_CONFLICT || code == peer.TxValidationCode_PHANTOM_READ_CONFLICT
}

// submitOnce is one endorse-submit-commit round; the validation code is set
// when the transaction was ordered but invalidated.
func (t *Transactor) submitOnce(ctx context.Context, p ledger.Proposal) (*ledger.Commit, peer.TxValidationCode, error) {
	proposal, err := t.newProposal(p)
	if err != nil {
		return nil, peer.TxValidationCode_VALID, err
	}
	txID := proposal.TransactionID()

	endorseCtx, cancel := context.WithTimeout(ctx, t.cfg.EndorseTimeout)
	tx, err := proposal.EndorseWithContext(endorseCtx)
	cancel()
	if err != nil {
		return nil, peer.TxValidationCode_VALID, classify(ctx, "endorse "+p.Function, txID, err)
	}
	timestamp, err := transactionTime(tx)
	if err != nil {
		return nil, peer.TxValidationCode_VALID, err
	}

	submitCtx, cancel := context.WithTimeout(ctx, t.cfg.SubmitTimeout)
	commit, err := tx.SubmitWithContext(submitCtx)
	cancel()
	if err != nil {
		return nil, peer.TxValidationCode_VALID, classify(ctx, "submit "+p.Function, txID, err)
	}

	statusCtx, cancel := context.WithTimeout(ctx, t.cfg.CommitStatusTimeout)
	status, err := commit.StatusWithContext(statusCtx)
	cancel()
	if err != nil {
		return nil, peer.TxValidationCode_VALID, classify(ctx, "commit status of "+p.Function, txID, err)
	}
	if !status.Successful {
		return nil, status.Code, &ledger.ChaincodeError{
			TxID:    txID,
			Status:  int32(status.Code),
			Message: fmt.Sprintf("transaction invalidated in block %d: %s", status.BlockNumber, status.Code),
		}
	}
	return &ledger.Commit{
		TxID:      txID,
		Block:     status.BlockNumber,
		Timestamp: timestamp,
		Payload:   tx.Result(),
	}, peer.TxValidationCode_VALID, nil
}

// Evaluate runs a query on the organisation's peer without ordering it.
func (t *Transactor) Evaluate(ctx context.Context, p ledger.Proposal) ([]byte, error) {
	proposal, err := t.newProposal(p)
	if err != nil {
		return nil, err
	}
	evalCtx, cancel := context.WithTimeout(ctx, t.cfg.EvaluateTimeout)
	defer cancel()
	result, err := proposal.EvaluateWithContext(evalCtx)
	if err != nil {
		return nil, classify(ctx, "evaluate "+p.Function, "", err)
	}
	return result, nil
}

// Close releases the gRPC connection.
func (t *Transactor) Close() error {
	// Gateway.Close does not close a connection supplied by the caller.
	if err := t.conn.Close(); err != nil {
		return fmt.Errorf("fabric: close connection: %w", err)
	}
	return nil
}

// transactionTime reads the timestamp the client put in the transaction's
// channel header; the chaincode sees the same value as its tx timestamp.
func transactionTime(tx *client.Transaction) (time.Time, error) {
	raw, err := tx.Bytes()
	if err != nil {
		return time.Time{}, fmt.Errorf("fabric: transaction bytes: %w", err)
	}
	var prepared gateway.PreparedTransaction
	if err := proto.Unmarshal(raw, &prepared); err != nil {
		return time.Time{}, fmt.Errorf("fabric: decode prepared transaction: %w", err)
	}
	return envelopeTime(prepared.GetEnvelope())
}

func envelopeTime(env *common.Envelope) (time.Time, error) {
	var payload common.Payload
	if err := proto.Unmarshal(env.GetPayload(), &payload); err != nil {
		return time.Time{}, fmt.Errorf("fabric: decode envelope payload: %w", err)
	}
	var header common.ChannelHeader
	if err := proto.Unmarshal(payload.GetHeader().GetChannelHeader(), &header); err != nil {
		return time.Time{}, fmt.Errorf("fabric: decode channel header: %w", err)
	}
	if header.GetTimestamp() == nil {
		return time.Time{}, errors.New("fabric: transaction has no timestamp")
	}
	return header.GetTimestamp().AsTime().UTC(), nil
}
