package client

import (
	"encoding/json"
	"time"
)

// Roles an actor can be registered with.
const (
	RolePatient    = "patient"
	RoleOperator   = "operator"
	RoleResearcher = "researcher"
	RoleRegulator  = "regulator"
)

// Access decisions recorded by the ledger.
const (
	DecisionGranted = "granted"
	DecisionDenied  = "denied"
)

// Statuses returned for an ingested reading.
const (
	StatusQueued   = "queued"
	StatusExists   = "exists"
	StatusRecorded = "recorded"
	StatusRejected = "rejected"
)

// ActorRegistration is the body of an admin's actor registration.
type ActorRegistration struct {
	ID   string `json:"id"`
	Role string `json:"role"`
	// PublicKey is the actor's PEM "PUBLIC KEY" (PKIX, ECDSA P-256).
	PublicKey string `json:"publicKey"`
}

// Actor is an actor record as the ledger holds it.
type Actor struct {
	DocType      string `json:"docType,omitempty"`
	ID           string `json:"id"`
	Role         string `json:"role"`
	PublicKey    string `json:"publicKey"`
	Org          string `json:"org,omitempty"`
	Status       string `json:"status"`
	RegisteredTx string `json:"registeredTx,omitempty"`
	RegisteredAt string `json:"registeredAt,omitempty"`
}

// Device is a device record as the ledger holds it.
type Device struct {
	DocType      string `json:"docType,omitempty"`
	ID           string `json:"id"`
	OperatorID   string `json:"operatorId"`
	PatientID    string `json:"patientId"`
	DeviceType   string `json:"deviceType"`
	PublicKey    string `json:"publicKey"`
	Status       string `json:"status"`
	RegisteredTx string `json:"registeredTx,omitempty"`
	RegisteredAt string `json:"registeredAt,omitempty"`
	RevokedTx    string `json:"revokedTx,omitempty"`
	RevokedAt    string `json:"revokedAt,omitempty"`
}

// Reading is a reading record as the ledger holds it: metadata, hashes and
// the device signature, never the value.
type Reading struct {
	DocType    string `json:"docType,omitempty"`
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
	TxID       string `json:"txId,omitempty"`
	TxTime     string `json:"txTime,omitempty"`
}

// ConsentChange is one committed version of a consent, from the ledger's
// key history.
type ConsentChange struct {
	TxID      string `json:"txId"`
	Timestamp string `json:"timestamp"`
	Status    string `json:"status"`
	IsDelete  bool   `json:"isDelete"`
}

// Consent is a consent record; History is present in consent lists.
type Consent struct {
	DocType   string          `json:"docType,omitempty"`
	ID        string          `json:"id"`
	PatientID string          `json:"patientId"`
	GranteeID string          `json:"granteeId"`
	Purpose   string          `json:"purpose"`
	DataTypes []string        `json:"dataTypes"`
	NotBefore string          `json:"notBefore"`
	NotAfter  string          `json:"notAfter"`
	Status    string          `json:"status"`
	GrantedTx string          `json:"grantedTx,omitempty"`
	GrantedAt string          `json:"grantedAt,omitempty"`
	RevokedTx string          `json:"revokedTx,omitempty"`
	RevokedAt string          `json:"revokedAt,omitempty"`
	History   []ConsentChange `json:"history,omitempty"`
}

// AccessEvent is the ledger's record of one access decision, granted or
// denied.
type AccessEvent struct {
	DocType    string   `json:"docType,omitempty"`
	ID         string   `json:"id"`
	ActorID    string   `json:"actorId"`
	PatientID  string   `json:"patientId"`
	Purpose    string   `json:"purpose"`
	DataTypes  []string `json:"dataTypes,omitempty"`
	From       string   `json:"from,omitempty"`
	To         string   `json:"to,omitempty"`
	Decision   string   `json:"decision"`
	Reason     string   `json:"reason,omitempty"`
	ConsentID  string   `json:"consentId,omitempty"`
	ReadingIDs []string `json:"readingIds,omitempty"`
	Count      int      `json:"count"`
	NextCursor string   `json:"nextCursor,omitempty"`
	TxID       string   `json:"txId"`
	TxTime     string   `json:"txTime"`
}

// AuditEvent is the ledger's audit record of one state-changing transaction.
type AuditEvent struct {
	DocType    string   `json:"docType,omitempty"`
	ID         string   `json:"id"`
	Type       string   `json:"type"`
	ActorID    string   `json:"actorId"`
	PatientIDs []string `json:"patientIds,omitempty"`
	SubjectID  string   `json:"subjectId,omitempty"`
	Decision   string   `json:"decision,omitempty"`
	TxID       string   `json:"txId"`
	TxTime     string   `json:"txTime"`
}

// Page is one page of a paged listing. Bookmark is empty on the last page;
// pass it back in PageRequest to fetch the next one.
type Page[T any] struct {
	Items    []T    `json:"items"`
	Bookmark string `json:"bookmark"`
	Count    int    `json:"count"`
}

// PageRequest selects a page. Zero values mean the server's defaults
// (first page, 100 items).
type PageRequest struct {
	PageSize int
	Bookmark string
}

// TxRef locates a committed transaction.
type TxRef struct {
	TxID      string `json:"txId"`
	Block     uint64 `json:"block"`
	Timestamp string `json:"timestamp,omitempty"`
	Valid     *bool  `json:"valid,omitempty"`
}

// Provenance is everything the ledger knows about one reading: its record,
// the device that signed it, the consents covering it, the accesses that
// released it and, when the gateway adds it, the transaction that wrote it.
type Provenance struct {
	Reading  Reading       `json:"reading"`
	Device   Device        `json:"device"`
	Consents []Consent     `json:"consents"`
	Accesses []AccessEvent `json:"accesses"`
	Tx       *TxRef        `json:"tx,omitempty"`
}

// ReadingReceipt acknowledges one reading. Status is "queued" (accepted,
// not yet in a block), "exists" (an identical reading is already held) or
// "recorded" (committed; TxID and Block are set).
type ReadingReceipt struct {
	ReadingID string `json:"readingId"`
	DataHash  string `json:"dataHash"`
	CID       string `json:"cid"`
	Status    string `json:"status"`
	TxID      string `json:"txId,omitempty"`
	Block     uint64 `json:"block,omitempty"`
}

// ErrorBody is the machine-readable part of an error response.
type ErrorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// BatchItemResult is the outcome of one reading of a batch, by its index in
// the request. Error is set when the item was refused.
type BatchItemResult struct {
	Index     int        `json:"index"`
	ReadingID string     `json:"readingId,omitempty"`
	Status    string     `json:"status"`
	DataHash  string     `json:"dataHash,omitempty"`
	CID       string     `json:"cid,omitempty"`
	TxID      string     `json:"txId,omitempty"`
	Block     uint64     `json:"block,omitempty"`
	Error     *ErrorBody `json:"error,omitempty"`
}

// BatchReceipt holds the per-item results of a batch, in request order.
type BatchReceipt struct {
	Accepted int               `json:"accepted"`
	Rejected int               `json:"rejected"`
	Results  []BatchItemResult `json:"results"`
}

// Failed returns the results whose item was refused.
func (b *BatchReceipt) Failed() []BatchItemResult {
	var out []BatchItemResult
	for _, r := range b.Results {
		if r.Error != nil || r.Status == StatusRejected {
			out = append(out, r)
		}
	}
	return out
}

// ConsentGrant is what a patient consents to.
type ConsentGrant struct {
	GranteeID string
	Purpose   string
	DataTypes []string
	NotBefore time.Time
	NotAfter  time.Time
}

// ConsentReceipt acknowledges a consent grant or revocation.
type ConsentReceipt struct {
	ConsentID string `json:"consentId"`
	TxID      string `json:"txId"`
	Status    string `json:"status,omitempty"`
}

// UnmarshalJSON accepts both the receipt form {"consentId","txId"} and a
// full Consent record, so callers get the id and transaction either way.
func (r *ConsentReceipt) UnmarshalJSON(b []byte) error {
	var v struct {
		ConsentID string `json:"consentId"`
		TxID      string `json:"txId"`
		Status    string `json:"status"`
		ID        string `json:"id"`
		GrantedTx string `json:"grantedTx"`
		RevokedTx string `json:"revokedTx"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*r = ConsentReceipt{ConsentID: v.ConsentID, TxID: v.TxID, Status: v.Status}
	if r.ConsentID == "" {
		r.ConsentID = v.ID
	}
	if r.TxID == "" {
		r.TxID = v.RevokedTx
	}
	if r.TxID == "" {
		r.TxID = v.GrantedTx
	}
	return nil
}

// AccessRequest is what a researcher asks for. Cursor continues a previous
// grant (its NextCursor); Limit caps the readings released (server default
// when zero).
type AccessRequest struct {
	PatientID string
	Purpose   string
	DataTypes []string
	From      time.Time
	To        time.Time
	Cursor    string
	Limit     int
}

// ReleasedReading is one reading released to a researcher: the exact bytes
// the device signed, its signature and the ledger's hash and CID.
// Verify it with VerifyReleasedReading before trusting it.
type ReleasedReading struct {
	ReadingID string `json:"readingId"`
	// Payload is the plaintext reading JSON the device signed.
	Payload []byte `json:"payload"`
	// Signature is the device's DER ECDSA signature over SHA-256(Payload).
	Signature []byte `json:"signature"`
	DataHash  string `json:"dataHash"`
	CID       string `json:"cid"`
}

// AccessGrant is a granted access decision with the released readings.
// NextCursor is set when more readings match; request again with it.
type AccessGrant struct {
	AccessID   string            `json:"accessId"`
	Decision   string            `json:"decision"`
	TxID       string            `json:"txId,omitempty"`
	Readings   []ReleasedReading `json:"readings"`
	NextCursor string            `json:"nextCursor,omitempty"`
}

// Check is one named verification step and its outcome.
type Check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail,omitempty"`
}

// Verification is the outcome of verifying one reading: OK is true only if
// every check passed.
type Verification struct {
	ReadingID string  `json:"readingId"`
	OK        bool    `json:"ok"`
	Checks    []Check `json:"checks"`
}
