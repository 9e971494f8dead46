package gateway

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/medprov/medprov/audit"
	"github.com/medprov/medprov/evidence"
	"github.com/medprov/medprov/ledger"
	"github.com/medprov/medprov/wire"
)

// Audit evidence a regulator takes away (GET /v1/audit/trust and
// GET /v1/audit/bundle): the ledger's trust root, and bundles that
// audit.Verify checks offline against a trust root the regulator pinned.
// The gateway is only the courier: a bundle it altered does not verify.

// blockLedger is a ledger that hands out its raw blocks and trust root
// (ledger/embedded and ledger/fabric both do).
type blockLedger interface {
	BlockHeight(ctx context.Context) (uint64, error)
	RawBlock(ctx context.Context, n uint64) ([]byte, error)
	Trust(ctx context.Context) (*evidence.Trust, error)
}

// auditSource is the ledger as an audit.Source.
type auditSource struct {
	blockLedger
	ledger.Transactor
}

func (s *Server) auditLedger() (*auditSource, error) {
	bl, ok := s.cfg.Ledger.(blockLedger)
	if !ok || s.cfg.BlockFormat == nil {
		return nil, errf(wire.CodeNotFound, "this gateway's ledger exports no evidence")
	}
	return &auditSource{blockLedger: bl, Transactor: s.cfg.Ledger}, nil
}

// auditTrust answers GET /v1/audit/trust (regulator): the trust root to
// pin, once, out of band.
func (s *Server) auditTrust(c *gin.Context) {
	if !mustRole(c, wire.RoleRegulator) {
		return
	}
	src, err := s.auditLedger()
	if err != nil {
		fail(c, err)
		return
	}
	t, err := src.Trust(c)
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, t)
}

// auditBundle answers GET /v1/audit/bundle (regulator): a bundle of the
// scope (patientId or readingId; from, to; ciphertexts=true adds the
// encrypted readings) as a tar file.
func (s *Server) auditBundle(c *gin.Context) {
	if !mustRole(c, wire.RoleRegulator) {
		return
	}
	src, err := s.auditLedger()
	if err != nil {
		fail(c, err)
		return
	}
	scope := audit.Scope{PatientID: trimmed(c, "patientId"), ReadingID: trimmed(c, "readingId"), From: trimmed(c, "from"), To: trimmed(c, "to")}
	opt := audit.ExportOptions{Scope: scope, Format: s.cfg.BlockFormat, Now: s.cfg.Now}
	switch c.Query("ciphertexts") {
	case "", "false":
	case "true":
		opt.Ciphertext = func(ctx context.Context, cid string) ([]byte, error) { return s.cfg.Blobs.Get(ctx, cid) }
	default:
		fail(c, badRequest("ciphertexts must be true or false"))
		return
	}
	// An export reads every block's header: it may outlast the server's
	// write timeout before its first byte, so lift it, and bound it here.
	if err := http.NewResponseController(c.Writer).SetWriteDeadline(time.Time{}); err != nil && !errors.Is(err, http.ErrNotSupported) {
		s.log.Warn("audit bundle: cannot lift the write deadline", "errKind", errKind(err))
	}
	ctx, cancel := context.WithTimeout(c, bundleTimeout)
	defer cancel()
	b, err := audit.Export(ctx, src, opt)
	if errors.Is(err, audit.ErrScope) {
		fail(c, badRequest("%s", err.Error()))
		return
	}
	if err != nil {
		fail(c, err)
		return
	}
	var buf bytes.Buffer
	if err := audit.Write(&buf, b); err != nil {
		fail(c, err)
		return
	}
	c.Header("Content-Disposition", `attachment; filename="medprov-audit-`+s.cfg.Now().UTC().Format("20060102T150405Z")+`.tar"`)
	c.Header("Cache-Control", "no-store")
	c.Data(http.StatusOK, "application/x-tar", buf.Bytes())
}

// bundleTimeout bounds an export: it reads every block's header.
const bundleTimeout = 10 * time.Minute
