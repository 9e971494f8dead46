package client

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/medprov/medprov/envelope"
	"github.com/medprov/medprov/payload"
	"github.com/medprov/medprov/wire"
)

// Errors VerifyReleasedReading wraps, one per failed check.
var (
	// ErrHashMismatch reports a payload whose SHA-256 is not the ledger's
	// dataHash.
	ErrHashMismatch = errors.New("payload hash does not match the ledger's dataHash")
	// ErrPayloadMismatch reports a payload that is not a well-formed reading
	// or whose fields do not match the reading it was released as.
	ErrPayloadMismatch = errors.New("payload does not match the reading record")
)

// Names of the checks VerifyReleasedReading runs, in order.
const (
	CheckHash      = "hash"
	CheckSignature = "signature"
	CheckPayload   = "payload"
	CheckRecord    = "record"
)

// VerifyReleasedReading checks a released reading without trusting the
// gateway:
//   - hash: SHA-256(payload) equals the dataHash the ledger recorded;
//   - signature: the device signature over SHA-256(payload) verifies under
//     devicePub (the device's registered key);
//   - payload: the payload is a reading, in either form a device signs
//     (package payload: the medprov reading JSON or a FHIR Observation),
//     whose "<deviceId>:<seq>" is the released reading id, with a nonce
//     of at least 128 bits;
//   - record (only when rec is non-nil): the payload's type, unit and
//     measuredAt and the hash and signature equal the ledger record's.
//
// It always returns the Verification listing every check; the error is nil
// iff all passed, else it wraps the first failure (ErrHashMismatch,
// envelope.ErrBadSignature or ErrPayloadMismatch). A nil devicePub fails
// the signature check.
func VerifyReleasedReading(r wire.ReleasedReading, devicePub *ecdsa.PublicKey, rec *wire.Reading) (*wire.Verification, error) {
	v := &wire.Verification{ReadingID: r.ReadingID, OK: true}
	var first error
	add := func(name string, err error, okDetail string) {
		c := wire.Check{Name: name, OK: err == nil, Detail: okDetail}
		if err != nil {
			c.Detail = err.Error()
			v.OK = false
			if first == nil {
				first = err
			}
		}
		v.Checks = append(v.Checks, c)
	}

	sum := sha256.Sum256(r.Payload)
	got := hex.EncodeToString(sum[:])
	if strings.EqualFold(got, r.DataHash) {
		add(CheckHash, nil, "sha256 "+got)
	} else {
		add(CheckHash, fmt.Errorf("%w: sha256 %s, ledger %s", ErrHashMismatch, got, r.DataHash), "")
	}

	switch {
	case devicePub == nil:
		add(CheckSignature, fmt.Errorf("%w: no device public key", envelope.ErrBadSignature), "")
	default:
		add(CheckSignature, envelope.VerifyDigest(devicePub, sum[:], r.Signature), "device signature verifies")
	}

	p, err := parsePayload(r.Payload)
	if err == nil && p.ReadingID() != r.ReadingID {
		err = fmt.Errorf("%w: payload is %s, released as %s", ErrPayloadMismatch, p.ReadingID(), r.ReadingID)
	}
	add(CheckPayload, err, "reading "+r.ReadingID)

	if rec != nil {
		add(CheckRecord, matchRecord(r, p, rec), "matches ledger record")
	}
	return v, first
}

// parsePayload decodes a reading payload, in either form a device signs
// (the medprov reading JSON or a FHIR Observation), strictly: unknown
// members, a short nonce and a malformed field are refused.
func parsePayload(b []byte) (payload.Reading, error) {
	p, err := payload.Parse(b)
	if err != nil {
		return p, fmt.Errorf("%w: %w", ErrPayloadMismatch, err)
	}
	return p, nil
}

func matchRecord(r wire.ReleasedReading, p payload.Reading, rec *wire.Reading) error {
	var diffs []string
	if rec.ID != "" && rec.ID != r.ReadingID {
		diffs = append(diffs, "id")
	}
	if !strings.EqualFold(rec.DataHash, r.DataHash) {
		diffs = append(diffs, "dataHash")
	}
	if rec.CID != "" && r.CID != "" && rec.CID != r.CID {
		diffs = append(diffs, "cid")
	}
	if p.Type != rec.Type {
		diffs = append(diffs, "type")
	}
	if p.Unit != rec.Unit {
		diffs = append(diffs, "unit")
	}
	if !sameInstant(p.MeasuredAt, rec.MeasuredAt) {
		diffs = append(diffs, "measuredAt")
	}
	if sig, err := decodeBase64(rec.Signature); err != nil || !bytes.Equal(sig, r.Signature) {
		diffs = append(diffs, "signature")
	}
	if len(diffs) > 0 {
		return fmt.Errorf("%w: %s differ", ErrPayloadMismatch, strings.Join(diffs, ", "))
	}
	return nil
}

// decodeBase64 accepts standard base64, padded or not.
func decodeBase64(s string) ([]byte, error) {
	if b, err := base64.StdEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	return base64.RawStdEncoding.DecodeString(s)
}

// sameInstant compares two RFC 3339 times as instants (the ledger may
// normalise the text), falling back to string equality.
func sameInstant(a, b string) bool {
	ta, errA := time.Parse(time.RFC3339Nano, a)
	tb, errB := time.Parse(time.RFC3339Nano, b)
	if errA != nil || errB != nil {
		return a == b
	}
	return ta.Equal(tb)
}
