package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/medprov/medprov/envelope"
	"github.com/medprov/medprov/ipfs"
	"github.com/medprov/medprov/payload"
	"github.com/medprov/medprov/seal"
	"github.com/medprov/medprov/wire"
)

// requestAccess is log-before-release: the chaincode decides and the access
// event commits first; only then are readings fetched, opened, verified
// and returned. A denial is committed too and answers 403. Granted
// readings that fail release (erased, evidence_mismatch,
// ciphertext_missing, unavailable) are withheld, listed in the answer and
// recorded on the access event (RecordWithheld) before the answer is sent.
func (s *Server) requestAccess(c *gin.Context) {
	env, err := s.signedAction(c, wire.ActionAccessRequest, &wire.AccessRequestAction{})
	if err != nil {
		fail(c, err)
		return
	}
	var ev wire.AccessEvent
	cm, err := s.chain.submit(c, &ev, false, wire.FnRequestAccess, env)
	if err != nil {
		fail(c, err)
		return
	}
	s.m.accesses.WithLabelValues(ev.Decision).Inc()
	if ev.Decision != wire.DecisionGranted {
		c.Set(ctxActionCommitted, true) // the denial is on the ledger: its nonce is spent
		writeDenial(c, &ev, cm.TxID)
		return
	}
	out, held, err := s.releaseGranted(c, &ev)
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, wire.AccessGrant{AccessID: ev.ID, Decision: ev.Decision, TxID: cm.TxID, Block: cm.Block,
		ConsentID: ev.ConsentID, Count: len(out), Readings: out, Withheld: held, NextCursor: ev.NextCursor})
}

// releaseGranted releases the readings of a committed grant ev: each is
// fetched, opened and verified against its ledger record (release).
// Readings that fail release (erased, evidence_mismatch,
// ciphertext_missing, unavailable) are withheld: returned, and recorded
// on the access event (RecordWithheld) before it returns. An unavailable
// blob store or ledger fails the whole release (503), after recording
// what was withheld so far. Every view that releases readings (v1, FHIR)
// releases them here.
// writeDenial answers 403 with the access the chaincode denied and logged.
func writeDenial(c *gin.Context, ev *wire.AccessEvent, txID string) {
	c.JSON(http.StatusForbidden, wire.AccessDenial{Error: wire.ErrorBody{Code: wire.CodeForbidden, Message: "access denied: " + ev.Reason},
		AccessID: ev.ID, Decision: ev.Decision, Reason: ev.Reason, TxID: txID})
}

func (s *Server) releaseGranted(c *gin.Context, ev *wire.AccessEvent) ([]wire.ReleasedReading, []wire.Withheld, error) {
	out := make([]wire.ReleasedReading, 0, len(ev.ReadingIDs))
	var held []wire.Withheld
	for _, id := range ev.ReadingIDs {
		rr, err := s.release(c, id)
		if err != nil {
			if ae := toAPIError(err); ae.Status() == http.StatusServiceUnavailable {
				if len(held) > 0 {
					s.recordWithheld(c, ev.ID, held)
				}
				return nil, nil, err
			}
			// The request ID ties this line to the access; the access ID, the
			// reading ID and the cause's text name pseudonymous IDs.
			s.log.Warn("granted reading withheld", "requestId", c.GetString("requestID"),
				"reason", reasonOf(err), "errKind", errKind(err))
			held = append(held, wire.Withheld{ReadingID: id, Reason: reasonOf(err)})
			continue
		}
		out = append(out, *rr)
	}
	if len(held) > 0 {
		s.recordWithheld(c, ev.ID, held)
	}
	return out, held, nil
}

// errEvidence reports a reading whose stored bytes do not match the ledger.
var errEvidence = errors.New("stored data does not match the ledger record")

// release fetches, opens and verifies one reading against its ledger record.
func (s *Server) release(ctx context.Context, id string) (*wire.ReleasedReading, error) {
	rec, err := s.chain.reading(ctx, id)
	if err != nil {
		return nil, err
	}
	dev, err := s.keys.device(ctx, rec.DeviceID)
	if err != nil {
		return nil, err
	}
	ct, err := s.cfg.Blobs.Get(ctx, rec.CID)
	if err != nil {
		return nil, fmt.Errorf("fetch ciphertext: %w", err)
	}
	if h := sha256.Sum256(ct); hex.EncodeToString(h[:]) != rec.CipherHash {
		return nil, fmt.Errorf("ciphertext hash: %w", errEvidence)
	}
	pt, err := s.cfg.Opener.Open(ctx, rec.PatientID, rec.ID, ct)
	if err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	digest := sha256.Sum256(pt)
	if hex.EncodeToString(digest[:]) != rec.DataHash {
		return nil, fmt.Errorf("plaintext hash: %w", errEvidence)
	}
	// The chaincode never sees the payload: the record's metadata is the
	// ingesting gateway's claim, bound to the signed bytes only here.
	if err := payloadMatches(pt, rec); err != nil {
		return nil, err
	}
	sig, err := base64.StdEncoding.DecodeString(rec.Signature)
	if err != nil {
		return nil, fmt.Errorf("signature on ledger: %w", errEvidence)
	}
	if err := envelope.VerifyDigest(dev.key, digest[:], sig); err != nil {
		return nil, fmt.Errorf("device signature: %w", errEvidence)
	}
	pemKey, err := envelope.MarshalPublicKey(dev.key)
	if err != nil {
		return nil, err
	}
	return &wire.ReleasedReading{ReadingID: rec.ID, DeviceID: rec.DeviceID, DevicePublicKey: string(pemKey), Payload: pt, Signature: sig, DataHash: rec.DataHash, CID: rec.CID}, nil
}

// payloadMatches reports whether the signed payload, in either form
// (package payload), names what the ledger
// record says: device, seq, type, unit and measuredAt (the same instant).
// A mismatch wraps errEvidence (reason evidence_mismatch).
func payloadMatches(pt []byte, rec *wire.Reading) error {
	p, err := payload.Parse(pt)
	if err != nil {
		return fmt.Errorf("payload is not a reading: %w", errEvidence)
	}
	if p.DeviceID != rec.DeviceID || p.Seq != rec.Seq || p.Type != rec.Type || p.Unit != rec.Unit {
		return fmt.Errorf("payload metadata differs from the ledger record: %w", errEvidence)
	}
	if at, err := time.Parse(time.RFC3339Nano, rec.MeasuredAt); err != nil || !at.Equal(p.Measured) {
		return fmt.Errorf("payload measuredAt differs from the ledger record: %w", errEvidence)
	}
	return nil
}

// reasonOf names why a granted reading could not be released, in words a
// researcher and an auditor can act on; it never carries the cause's text.
func reasonOf(err error) string {
	switch {
	case errors.Is(err, seal.ErrErased):
		return wire.WithheldErased
	case errors.Is(err, errEvidence), errors.Is(err, seal.ErrCorrupt), errors.Is(err, seal.ErrWrongKey),
		errors.Is(err, ipfs.ErrCorrupt):
		return wire.WithheldEvidenceMismatch
	case errors.Is(err, ipfs.ErrNotFound):
		return wire.WithheldCiphertextMissing
	}
	return wire.WithheldUnavailable
}
