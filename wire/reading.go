package wire

import (
	"encoding/json"
	"math"
	"time"
)

// ReadingPayload is the reading JSON a device signs: SHA-256 of its exact
// bytes is the reading's dataHash, and the device's ECDSA P-256 signature
// over that digest is its proof of origin. Its fields marshal in the wire
// order {deviceId, seq, type, unit, value, measuredAt, nonce}.
type ReadingPayload struct {
	DeviceID string `json:"deviceId"`
	// Seq is unique per device, 0..MaxSeq.
	Seq  uint64 `json:"seq"`
	Type string `json:"type"`
	Unit string `json:"unit"`
	// Value is a JSON number, array or object; it never reaches the ledger.
	Value json.RawMessage `json:"value"`
	// MeasuredAt is RFC 3339, not before EarliestMeasuredAt; the gateway
	// also refuses times more than a few minutes ahead of its clock.
	MeasuredAt string `json:"measuredAt"`
	// Nonce is standard base64 of at least NonceBytes random bytes, so the
	// payload's hash cannot be brute-forced from the ledger.
	Nonce string `json:"nonce"`
}

// ReadingID returns the ledger id of the reading, "<deviceId>:<seq>".
func (p ReadingPayload) ReadingID() string { return ReadingID(p.DeviceID, p.Seq) }

// EarliestMeasuredAt is the earliest measuredAt a reading may carry, as
// Unix seconds: 2000-01-01T00:00:00Z. Earlier times are clock faults (an
// unset clock reads 0001-01-01 or 1970-01-01), not measurements, and the
// ledger's per-month indexes need not span two thousand years. Both the
// gateway ([ParseReadingPayload]) and the chaincode ([DecodeReadingInput])
// refuse them.
const EarliestMeasuredAt = 946684800

// parseMeasuredAt parses and bounds a measuredAt.
func parseMeasuredAt(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, Errorf(CodeInvalid, "measuredAt must be RFC 3339")
	}
	if t.Before(time.Unix(EarliestMeasuredAt, 0)) {
		return time.Time{}, Errorf(CodeInvalid, "measuredAt must not be before 2000-01-01T00:00:00Z")
	}
	return t, nil
}

// seqUnset marks a seq that a decoded document did not carry; it is above
// MaxSeq, so no accepted seq equals it.
const seqUnset = math.MaxUint64

// ParseReadingPayload decodes the bytes a device signed, strictly, and
// checks their shape. It returns the payload and its measuredAt; any
// problem is an *Error with CodeInvalid whose message names the field.
func ParseReadingPayload(b []byte) (ReadingPayload, time.Time, error) {
	p := ReadingPayload{Seq: seqUnset}
	if err := DecodeStrict(b, &p); err != nil {
		return p, time.Time{}, Errorf(CodeInvalid, "reading payload must be a JSON object with deviceId, seq, type, unit, value, measuredAt and nonce: %s", JSONProblem(err))
	}
	switch {
	case !ValidID(p.DeviceID):
		return p, time.Time{}, Errorf(CodeInvalid, "deviceId must match %s", IDPattern)
	case p.Seq == seqUnset:
		return p, time.Time{}, Errorf(CodeInvalid, "seq is required")
	case p.Seq > MaxSeq:
		return p, time.Time{}, Errorf(CodeInvalid, "seq must be at most 2^53-1")
	case !ValidToken(p.Type):
		return p, time.Time{}, Errorf(CodeInvalid, "type must match ^[a-z0-9._-]{1,64}$")
	case !ValidUnit(p.Unit):
		return p, time.Time{}, Errorf(CodeInvalid, "unit must be 1..32 printable characters")
	case len(p.Value) == 0 || string(p.Value) == "null":
		return p, time.Time{}, Errorf(CodeInvalid, "value is required")
	case !ValidValue(p.Value):
		return p, time.Time{}, Errorf(CodeInvalid, "value must be a number, an array or an object")
	case !ValidReadingNonce(p.Nonce):
		return p, time.Time{}, Errorf(CodeInvalid, "nonce must be base64 of at least %d random bytes", NonceBytes)
	}
	t, err := parseMeasuredAt(p.MeasuredAt)
	if err != nil {
		return p, time.Time{}, err
	}
	return p, t, nil
}

// ValidValue reports whether v starts like a JSON number, array or object:
// the forms a reading value may take.
func ValidValue(v json.RawMessage) bool {
	if len(v) == 0 {
		return false
	}
	c := v[0]
	return c == '[' || c == '{' || c == '-' || (c >= '0' && c <= '9')
}

// ReadingInput is one reading as the gateway hands it to the ledger: the
// reading's metadata, the device's signature over DataHash, and where its
// ciphertext is. It is one item of a RecordReadings batch.
type ReadingInput struct {
	DeviceID   string `json:"deviceId"`
	Seq        uint64 `json:"seq"`
	Type       string `json:"type"`
	Unit       string `json:"unit"`
	MeasuredAt string `json:"measuredAt"`
	// DataHash is the lower-case hex SHA-256 of the signed payload.
	DataHash string `json:"dataHash"`
	// Signature is the base64 DER ECDSA signature over DataHash's digest.
	Signature string `json:"signature"`
	// CID addresses the ciphertext in the blob store; CipherHash is its
	// hex SHA-256 and Size its length.
	CID        string `json:"cid"`
	CipherHash string `json:"cipherHash"`
	Size       int64  `json:"size"`
}

// ID returns the reading's ledger id.
func (in ReadingInput) ID() string { return ReadingID(in.DeviceID, in.Seq) }

// DecodeReadingInput decodes one batch item strictly and checks its shape
// (not its signature). The returned ReadingInput carries what could be
// decoded even on error, so a refusal can name the reading.
func DecodeReadingInput(raw []byte) (ReadingInput, time.Time, error) {
	in := ReadingInput{Seq: seqUnset}
	if err := DecodeStrict(raw, &in); err != nil {
		return ReadingInput{}, time.Time{}, Errorf(CodeInvalid, "malformed reading: %s", JSONProblem(err))
	}
	if !ValidID(in.DeviceID) || in.Seq == seqUnset {
		return ReadingInput{}, time.Time{}, Errorf(CodeInvalid, "deviceId and seq are required; deviceId must match %s", IDPattern)
	}
	t, err := in.check()
	return in, t, err
}

func (in ReadingInput) check() (time.Time, error) {
	switch {
	case in.Seq > MaxSeq:
		return time.Time{}, Errorf(CodeInvalid, "seq must be at most 2^53-1")
	case !ValidToken(in.Type):
		return time.Time{}, Errorf(CodeInvalid, "type must match ^[a-z0-9._-]{1,64}$")
	case !ValidUnit(in.Unit):
		return time.Time{}, Errorf(CodeInvalid, "unit must be 1..32 printable characters")
	case !ValidHash(in.DataHash):
		return time.Time{}, Errorf(CodeInvalid, "dataHash must be lower-case hex SHA-256")
	case !ValidHash(in.CipherHash):
		return time.Time{}, Errorf(CodeInvalid, "cipherHash must be lower-case hex SHA-256")
	case !ValidCID(in.CID):
		return time.Time{}, Errorf(CodeInvalid, "cid is malformed")
	case in.Size <= 0:
		return time.Time{}, Errorf(CodeInvalid, "size must be positive")
	}
	return parseMeasuredAt(in.MeasuredAt)
}

// BatchInput is the argument of RecordReadings.
type BatchInput struct {
	Readings []ReadingInput `json:"readings"`
}

// ItemResult is the ledger's outcome for one batch item. TxID is the
// transaction that holds the reading: this one if recorded, the original
// one if it exists.
type ItemResult struct {
	Index     int    `json:"index"`
	ReadingID string `json:"readingId"`
	Status    string `json:"status"`
	Code      Code   `json:"code,omitempty" metadata:",optional"`
	Error     string `json:"error,omitempty" metadata:",optional"`
	TxID      string `json:"txId,omitempty" metadata:",optional"`
}

// BatchResult is the outcome of RecordReadings, one result per input item
// in input order.
type BatchResult struct {
	TxID     string       `json:"txId"`
	Recorded int          `json:"recorded"`
	Results  []ItemResult `json:"results"`
}

// ReadingsRecordedEvent is the payload of the ReadingsRecorded event.
type ReadingsRecordedEvent struct {
	TxID       string   `json:"txId"`
	ReadingIDs []string `json:"readingIds"`
}

// Reading is the ledger record of one signed reading: metadata and hashes,
// never the value. ID is "<deviceId>:<seq>".
type Reading struct {
	DocType    string `json:"docType"`
	ID         string `json:"id"`
	DeviceID   string `json:"deviceId"`
	PatientID  string `json:"patientId"`
	Seq        uint64 `json:"seq"`
	Type       string `json:"type"`
	Unit       string `json:"unit"`
	MeasuredAt string `json:"measuredAt"`
	// DataHash is the hex SHA-256 of the payload the device signed.
	DataHash string `json:"dataHash"`
	// Signature is the base64 DER ECDSA signature over DataHash's digest.
	Signature  string `json:"signature"`
	CID        string `json:"cid"`
	CipherHash string `json:"cipherHash"`
	Size       int64  `json:"size"`
	TxID       string `json:"txId"`
	TxTime     string `json:"txTime"`
}

// ReadingReceipt is the gateway's answer for one reading (POST
// /v1/readings, and each item of a batch). Status is queued, exists,
// recorded (TxID and Block set) or rejected (Error set); Index is the
// item's position in a batch request.
type ReadingReceipt struct {
	Index     *int   `json:"index,omitempty"`
	ReadingID string `json:"readingId,omitempty"`
	DataHash  string `json:"dataHash,omitempty"`
	CID       string `json:"cid,omitempty"`
	Status    string `json:"status"`
	TxID      string `json:"txId,omitempty"`
	// Block is the block holding TxID (never 0: the genesis block holds
	// no readings).
	Block uint64     `json:"block,omitempty"`
	Error *ErrorBody `json:"error,omitempty"`
}

// BatchReceipt holds the per-item results of a batch request, in request
// order.
type BatchReceipt struct {
	Accepted int              `json:"accepted"`
	Rejected int              `json:"rejected"`
	Results  []ReadingReceipt `json:"results"`
}

// Failed returns the results whose item was refused.
func (b *BatchReceipt) Failed() []ReadingReceipt {
	var out []ReadingReceipt
	for _, r := range b.Results {
		if r.Error != nil || r.Status == StatusRejected {
			out = append(out, r)
		}
	}
	return out
}

// BatchRequest is the body of POST /v1/readings/batch: 1..MaxBatch signed
// reading envelopes, each verified on its own.
type BatchRequest struct {
	Readings []json.RawMessage `json:"readings"`
}
