package wire

// TxRef locates a committed transaction.
type TxRef struct {
	TxID      string `json:"txId"`
	Block     uint64 `json:"block"`
	Timestamp string `json:"timestamp,omitempty"`
	// Valid is false for a transaction that was ordered but invalidated.
	Valid bool `json:"valid"`
}

// ProvenanceReport is the answer of GET /v1/readings/{id}/provenance: the
// ledger's Provenance and, when the ledger can locate it, the transaction
// that wrote the reading.
type ProvenanceReport struct {
	Provenance
	Tx *TxRef `json:"tx,omitempty"`
}

// ConsentReceipt answers a consent grant (201) or revocation (200).
type ConsentReceipt struct {
	ConsentID string  `json:"consentId"`
	TxID      string  `json:"txId"`
	Block     uint64  `json:"block"`
	Consent   Consent `json:"consent"`
}

// ConsentList is a patient's consents, each with its history.
type ConsentList struct {
	Items []Consent `json:"items"`
	Count int       `json:"count"`
}

// ReleasedReading is one reading released to a researcher: the exact bytes
// the device signed, its signature and the ledger's hash and CID. Anyone
// can check it: SHA-256(Payload) is DataHash and Signature verifies over it
// with the device's registered key.
type ReleasedReading struct {
	ReadingID string `json:"readingId"`
	// DeviceID and DevicePublicKey (PEM) name the device and the key the
	// ledger registered for it, so the receiver can check Signature
	// itself.
	DeviceID        string `json:"deviceId"`
	DevicePublicKey string `json:"devicePublicKey"`
	// Payload is the exact bytes the device signed: the reading JSON or a
	// FHIR Observation (both read by package payload).
	Payload []byte `json:"payload"`
	// Signature is the device's DER ECDSA signature over SHA-256(Payload).
	Signature []byte `json:"signature"`
	DataHash  string `json:"dataHash"`
	CID       string `json:"cid"`
}

// Withheld names a granted reading the gateway could not release, and why:
// "erased", "evidence_mismatch", "ciphertext_missing" or "unavailable".
type Withheld struct {
	ReadingID string `json:"readingId"`
	Reason    string `json:"reason"`
}

// AccessGrant answers a granted access request (200), after the decision
// committed. NextCursor is set when more readings match; request again
// with it as the cursor. ConsentID is empty when a patient was granted its
// own readings, which need no consent.
type AccessGrant struct {
	AccessID   string            `json:"accessId"`
	Decision   string            `json:"decision"`
	TxID       string            `json:"txId"`
	Block      uint64            `json:"block"`
	ConsentID  string            `json:"consentId"`
	Count      int               `json:"count"`
	Readings   []ReleasedReading `json:"readings"`
	Withheld   []Withheld        `json:"withheld,omitempty"`
	NextCursor string            `json:"nextCursor,omitempty"`
}

// AccessDenial answers a denied access request (403): the error, and the
// committed decision that recorded the denial.
type AccessDenial struct {
	Error    ErrorBody `json:"error"`
	AccessID string    `json:"accessId"`
	Decision string    `json:"decision"`
	Reason   string    `json:"reason"`
	TxID     string    `json:"txId"`
}

// Check is one named verification step and its outcome.
type Check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail,omitempty"`
}

// Verification is the outcome of verifying one reading end to end: OK is
// true only if every check ran and passed.
type Verification struct {
	ReadingID string  `json:"readingId"`
	OK        bool    `json:"ok"`
	Checks    []Check `json:"checks"`
}

// ErrorResponse is the body of every error answer.
type ErrorResponse struct {
	Error ErrorBody `json:"error"`
}
