package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/medprov/medprov/envelope"
	"github.com/medprov/medprov/ledger"
	"github.com/medprov/medprov/seal"
	"github.com/medprov/medprov/wire"
)

// chainVerifier is implemented by ledgers that can re-check their own hash
// chain (the embedded ledger); Fabric peers do this themselves.
type chainVerifier interface {
	Verify(ctx context.Context) error
}

// integrityCheck runs the ledger's full verification at most once per
// maxAge and shares the result: a full replay costs about 9 µs per recorded
// reading, too much to repeat for every audited reading. A failure is never
// cached, so a damaged store is reported again at once.
type integrityCheck struct {
	maxAge time.Duration
	mu     sync.Mutex
	at     time.Time // when the last successful check finished
}

func (ic *integrityCheck) check(ctx context.Context, cv chainVerifier) (time.Time, error) {
	ic.mu.Lock()
	defer ic.mu.Unlock()
	if !ic.at.IsZero() && time.Since(ic.at) < ic.maxAge {
		return ic.at, nil
	}
	if err := cv.Verify(ctx); err != nil {
		ic.at = time.Time{}
		return time.Time{}, err
	}
	ic.at = time.Now()
	return ic.at, nil
}

// errNoReading answers a per-reading read both for a reading that does not
// exist and for one the caller may not read, so that the answer does not
// tell whether a reading ID exists.
var errNoReading = errf(wire.CodeNotFound, "reading not found")

// provenance answers the reading's provenance to its patient and to
// regulators; anyone else gets errNoReading, as for a missing reading.
func (s *Server) provenance(c *gin.Context) {
	resp, err := s.readingProvenance(c, actorOf(c), c.Param("id"))
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, resp)
}

// readingProvenance returns reading id's provenance and, when the ledger
// can locate it, its transaction, to a, who must be the reading's patient
// or a regulator; to anyone else it is errNoReading, as for a missing
// reading. Every view of provenance (v1, FHIR) reads it here.
func (s *Server) readingProvenance(ctx context.Context, a *actorKey, id string) (*wire.ProvenanceReport, error) {
	var p wire.Provenance
	err := s.chain.evaluate(ctx, &p, wire.FnGetProvenance, id)
	if err != nil && toAPIError(err).Status() != http.StatusNotFound {
		return nil, err
	}
	if err != nil || !mayReadPatient(a, p.Reading.PatientID) {
		return nil, errNoReading
	}
	resp := &wire.ProvenanceReport{Provenance: p}
	if tx, err := s.cfg.Ledger.Tx(ctx, p.Reading.TxID); err == nil {
		resp.Tx = &wire.TxRef{TxID: tx.TxID, Block: tx.Block, Timestamp: tx.Timestamp.UTC().Format(time.RFC3339Nano), Valid: tx.Valid}
	} else if !errors.Is(err, ledger.ErrNotFound) {
		return nil, err
	}
	return resp, nil
}

func (s *Server) auditEvents(c *gin.Context) {
	if !mustRole(c, wire.RoleRegulator) {
		return
	}
	ps, bm, err := pageArgs(c)
	if err != nil {
		fail(c, err)
		return
	}
	f := wire.EventFilter{PatientID: trimmed(c, "patientId"), ActorID: trimmed(c, "actorId"),
		Type: trimmed(c, "type"), From: trimmed(c, "from"), To: trimmed(c, "to")}
	for _, t := range []string{f.From, f.To} {
		if t == "" {
			continue
		}
		if _, err := time.Parse(time.RFC3339Nano, t); err != nil {
			fail(c, badRequest("from and to must be RFC 3339"))
			return
		}
	}
	arg, err := json.Marshal(f)
	if err != nil {
		fail(c, err)
		return
	}
	var page wire.AuditEventPage
	if err := s.chain.evaluate(c, &page, wire.FnListEvents, string(arg), ps, bm); err != nil {
		fail(c, err)
		return
	}
	if page.Items == nil {
		page.Items = []wire.AuditEvent{}
	}
	c.JSON(http.StatusOK, page)
}

// auditVerify re-derives a reading's evidence from scratch: the ledger
// record and its transaction, the device signature over the hash, the
// ciphertext by CID and hash, the plaintext hash and the signed metadata.
// Plaintext is opened in memory only and never returned.
func (s *Server) auditVerify(c *gin.Context) {
	if !mustRole(c, wire.RoleRegulator) {
		return
	}
	id := c.Param("id")
	rec, err := s.chain.reading(c, id)
	if err != nil {
		fail(c, err)
		return
	}
	var checks []wire.Check
	add := func(name string, ok bool, detail string) {
		checks = append(checks, wire.Check{Name: name, OK: ok, Detail: detail})
	}

	if tx, err := s.cfg.Ledger.Tx(c, rec.TxID); err != nil {
		if toAPIError(err).Status() == http.StatusServiceUnavailable {
			fail(c, err)
			return
		}
		add("transaction_committed", false, "transaction not found on the ledger")
	} else {
		add("transaction_committed", tx.Valid, "block "+strconv.FormatUint(tx.Block, 10))
	}
	if cv, ok := s.cfg.Ledger.(chainVerifier); ok {
		at, err := s.integrity.check(c, cv)
		if err != nil {
			add("chain_integrity", false, err.Error())
		} else {
			add("chain_integrity", true, "every block replayed: linkage, data and write-set hashes, current state and history rebuilt; checked "+at.UTC().Format(time.RFC3339))
		}
	}
	digest, derr := hex.DecodeString(rec.DataHash)
	sig, serr := base64.StdEncoding.DecodeString(rec.Signature)
	dev, kerr := s.keys.device(c, rec.DeviceID)
	switch {
	case kerr != nil:
		add("device_signature", false, "device key not found")
	case derr != nil || serr != nil:
		add("device_signature", false, "hash or signature on the ledger is malformed")
	default:
		ok := envelope.VerifyDigest(dev.key, digest, sig) == nil
		add("device_signature", ok, "ECDSA P-256 over dataHash with the registered device key")
	}
	ct, err := s.cfg.Blobs.Get(c, rec.CID)
	if err != nil {
		if toAPIError(err).Status() == http.StatusServiceUnavailable {
			fail(c, err)
			return
		}
		add("ciphertext_cid", false, reasonOf(err))
	} else {
		add("ciphertext_cid", true, "blob store returned bytes that hash to the CID")
		h := sha256.Sum256(ct)
		add("ciphertext_hash", hex.EncodeToString(h[:]) == rec.CipherHash && int64(len(ct)) == rec.Size, "sha256 and size of the ciphertext")
		pt, err := s.cfg.Opener.Open(c, rec.PatientID, rec.ID, ct)
		switch {
		case errors.Is(err, seal.ErrErased):
			add("plaintext_hash", false, "patient data erased (crypto-shredded); the ledger evidence above remains")
		case err != nil:
			add("plaintext_hash", false, reasonOf(err))
		default:
			ph := sha256.Sum256(pt)
			add("plaintext_hash", hex.EncodeToString(ph[:]) == rec.DataHash, "sha256 of the decrypted payload equals dataHash")
			merr := payloadMatches(pt, rec)
			add("payload_metadata", merr == nil, "deviceId, seq, type and unit in the signed payload match the ledger")
		}
	}
	ok := true
	for _, ch := range checks {
		ok = ok && ch.OK
	}
	c.JSON(http.StatusOK, wire.Verification{ReadingID: rec.ID, OK: ok, Checks: checks})
}
