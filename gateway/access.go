package gateway

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/medprov/medprov/chaincode"
	"github.com/medprov/medprov/envelope"
	"github.com/medprov/medprov/ipfs"
	"github.com/medprov/medprov/seal"
)

// releasedReading is one reading handed to a consented researcher: the
// exact bytes the device signed and the evidence to check them.
type releasedReading struct {
	ReadingID string `json:"readingId"`
	Payload   []byte `json:"payload"`
	Signature string `json:"signature"`
	DataHash  string `json:"dataHash"`
	CID       string `json:"cid"`
}

// withheld names a granted reading the gateway could not release, and why.
type withheld struct {
	ReadingID string `json:"readingId"`
	Reason    string `json:"reason"`
}

// requestAccess is log-before-release: the chaincode decides and the access
// event commits first; only then are readings fetched, opened, verified
// and returned. A denial is committed too and answers 403.
func (s *Server) requestAccess(c *gin.Context) {
	env, _, err := s.signedAction(c, chaincode.ActionAccessRequest)
	if err != nil {
		fail(c, err)
		return
	}
	var ev chaincode.AccessEvent
	cm, err := s.chain.submit(c, &ev, false, "RequestAccess", env)
	if err != nil {
		fail(c, err)
		return
	}
	s.m.accesses.WithLabelValues(ev.Decision).Inc()
	if ev.Decision != chaincode.DecisionGranted {
		c.JSON(http.StatusForbidden, gin.H{"error": errField{CodeForbidden, "access denied: " + ev.Reason},
			"accessId": ev.ID, "decision": ev.Decision, "reason": ev.Reason, "txId": cm.TxID})
		return
	}
	out := make([]releasedReading, 0, len(ev.ReadingIDs))
	var held []withheld
	for _, id := range ev.ReadingIDs {
		rr, err := s.release(c, id)
		if err != nil {
			if ae := toAPIError(err); ae.Status == http.StatusServiceUnavailable {
				fail(c, err)
				return
			}
			s.log.Warn("granted reading withheld", "accessId", ev.ID, "err", err)
			held = append(held, withheld{ReadingID: id, Reason: reasonOf(err)})
			continue
		}
		out = append(out, *rr)
	}
	resp := gin.H{"accessId": ev.ID, "decision": ev.Decision, "txId": cm.TxID, "block": cm.Block,
		"consentId": ev.ConsentID, "count": len(out), "readings": out}
	if len(held) > 0 {
		resp["withheld"] = held
	}
	if ev.NextCursor != "" {
		resp["nextCursor"] = ev.NextCursor
	}
	c.JSON(http.StatusOK, resp)
}

// errEvidence reports a reading whose stored bytes do not match the ledger.
var errEvidence = errors.New("stored data does not match the ledger record")

// release fetches, opens and verifies one reading against its ledger record.
func (s *Server) release(ctx context.Context, id string) (*releasedReading, error) {
	rec, err := s.chain.reading(ctx, id)
	if err != nil {
		return nil, err
	}
	dev, err := s.keys.device(ctx, rec.DeviceID)
	if err != nil {
		return nil, err
	}
	ct, err := s.blobs.Get(ctx, rec.CID)
	if err != nil {
		return nil, fmt.Errorf("fetch ciphertext: %w", err)
	}
	if h := sha256.Sum256(ct); hex.EncodeToString(h[:]) != rec.CipherHash {
		return nil, fmt.Errorf("ciphertext hash: %w", errEvidence)
	}
	pt, err := s.sealer.Open(ctx, rec.PatientID, rec.ID, ct)
	if err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	digest := sha256.Sum256(pt)
	if hex.EncodeToString(digest[:]) != rec.DataHash {
		return nil, fmt.Errorf("plaintext hash: %w", errEvidence)
	}
	sig, err := base64.StdEncoding.DecodeString(rec.Signature)
	if err != nil {
		return nil, fmt.Errorf("signature on ledger: %w", errEvidence)
	}
	if err := envelope.VerifyDigest(dev.key, digest[:], sig); err != nil {
		return nil, fmt.Errorf("device signature: %w", errEvidence)
	}
	return &releasedReading{ReadingID: rec.ID, Payload: pt, Signature: rec.Signature, DataHash: rec.DataHash, CID: rec.CID}, nil
}

// payloadMatches reports whether the signed payload names what the ledger
// record says (device, seq, type, unit, time).
func payloadMatches(pt []byte, rec *chaincode.Reading) error {
	var p readingPayload
	dec := json.NewDecoder(bytes.NewReader(pt))
	if err := dec.Decode(&p); err != nil {
		return fmt.Errorf("payload is not a reading: %w", errEvidence)
	}
	if p.DeviceID != rec.DeviceID || p.Seq == nil || *p.Seq != rec.Seq || p.Type != rec.Type || p.Unit != rec.Unit {
		return fmt.Errorf("payload metadata differs from the ledger record: %w", errEvidence)
	}
	return nil
}

// reasonOf names why a granted reading could not be released, in words a
// researcher and an auditor can act on; it never carries the cause's text.
func reasonOf(err error) string {
	switch {
	case errors.Is(err, seal.ErrErased):
		return "erased"
	case errors.Is(err, errEvidence), errors.Is(err, seal.ErrCorrupt), errors.Is(err, seal.ErrWrongKey),
		errors.Is(err, ipfs.ErrCorrupt):
		return "evidence_mismatch"
	case errors.Is(err, ipfs.ErrNotFound):
		return "ciphertext_missing"
	}
	return "unavailable"
}
