package chaincode

// Roles an actor can hold.
const (
	RolePatient    = "patient"
	RoleOperator   = "operator"
	RoleResearcher = "researcher"
	RoleRegulator  = "regulator"
)

// Statuses of actors, devices and consents.
const (
	StatusActive  = "active"
	StatusRevoked = "revoked"
)

// Per-item statuses in a BatchResult.
const (
	ItemRecorded = "recorded"
	ItemExists   = "exists"
	ItemRejected = "rejected"
)

// Access decisions.
const (
	DecisionGranted = "granted"
	DecisionDenied  = "denied"
)

// Denial reasons of an access request, stable codes clients may branch on.
const (
	ReasonNoConsent            = "no_consent"
	ReasonConsentRevoked       = "consent_revoked"
	ReasonConsentNotYetValid   = "consent_not_yet_valid"
	ReasonConsentExpired       = "consent_expired"
	ReasonPurposeMismatch      = "purpose_mismatch"
	ReasonDataTypeNotConsented = "data_type_not_consented"
	ReasonRangeOutsideConsent  = "range_outside_consent"
)

// Signed action names (the "action" field of an action payload).
const (
	ActionDeviceRegister = "device.register"
	ActionDeviceRevoke   = "device.revoke"
	ActionConsentGrant   = "consent.grant"
	ActionConsentRevoke  = "consent.revoke"
	ActionAccessRequest  = "access.request"
)

// Audit event types.
const (
	AuditActorRegistered  = "actor.registered"
	AuditDeviceRegistered = "device.registered"
	AuditDeviceRevoked    = "device.revoked"
	AuditReadingsRecorded = "readings.recorded"
	AuditConsentGranted   = "consent.granted"
	AuditConsentRevoked   = "consent.revoked"
	AuditAccessGranted    = "access.granted"
	AuditAccessDenied     = "access.denied"
)

// Chaincode event names; exactly one is emitted per successful submit.
const (
	EventActorRegistered  = "ActorRegistered"
	EventDeviceRegistered = "DeviceRegistered"
	EventDeviceRevoked    = "DeviceRevoked"
	EventReadingsRecorded = "ReadingsRecorded"
	EventConsentGranted   = "ConsentGranted"
	EventConsentRevoked   = "ConsentRevoked"
	EventAccessDecided    = "AccessDecided"
)

// Limits of the interface.
const (
	// MaxBatch is the largest number of readings RecordReadings accepts.
	MaxBatch = 1000
	// MaxDataTypes bounds the data types of one consent or access request.
	MaxDataTypes = 32
	// DefaultAccessLimit is the number of reading ids a granted access
	// returns when the request names no limit; MaxAccessLimit is the largest.
	DefaultAccessLimit = 500
	MaxAccessLimit     = 1000
	// DefaultPageSize and MaxPageSize bound paged queries.
	DefaultPageSize = 100
	MaxPageSize     = 1000
)

// Actor is a registered person or organisation role holder. Its public key
// authenticates every action it signs.
type Actor struct {
	DocType      string `json:"docType"`
	ID           string `json:"id"`
	Role         string `json:"role"`
	PublicKey    string `json:"publicKey"`
	Org          string `json:"org"`
	Status       string `json:"status"`
	RegisteredTx string `json:"registeredTx"`
	RegisteredAt string `json:"registeredAt"`
}

// ActorInput is the argument of RegisterActor.
type ActorInput struct {
	ID        string `json:"id"`
	Role      string `json:"role"`
	PublicKey string `json:"publicKey"`
}

// Device is a registered device, bound to one patient and to the operator
// that registered it. Its key authenticates the readings it signs.
type Device struct {
	DocType      string `json:"docType"`
	ID           string `json:"id"`
	OperatorID   string `json:"operatorId"`
	PatientID    string `json:"patientId"`
	DeviceType   string `json:"deviceType"`
	PublicKey    string `json:"publicKey"`
	Status       string `json:"status"`
	RegisteredTx string `json:"registeredTx"`
	RegisteredAt string `json:"registeredAt"`
	RevokedTx    string `json:"revokedTx,omitempty" metadata:",optional"`
	RevokedAt    string `json:"revokedAt,omitempty" metadata:",optional"`
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
	DataHash   string `json:"dataHash"`
	Signature  string `json:"signature"`
	CID        string `json:"cid"`
	CipherHash string `json:"cipherHash"`
	Size       int64  `json:"size"`
	TxID       string `json:"txId"`
	TxTime     string `json:"txTime"`
}

// ReadingInput is one item of a RecordReadings batch.
type ReadingInput struct {
	DeviceID   string `json:"deviceId"`
	Seq        uint64 `json:"seq"`
	Type       string `json:"type"`
	Unit       string `json:"unit"`
	MeasuredAt string `json:"measuredAt"`
	DataHash   string `json:"dataHash"`
	Signature  string `json:"signature"`
	CID        string `json:"cid"`
	CipherHash string `json:"cipherHash"`
	Size       int64  `json:"size"`
}

// BatchInput is the argument of RecordReadings.
type BatchInput struct {
	Readings []ReadingInput `json:"readings"`
}

// ItemResult is the outcome of one batch item. TxID is the transaction that
// holds the reading (this one if recorded, the original one if it exists).
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

// ConsentChange is one version of a consent record in its history.
type ConsentChange struct {
	TxID      string `json:"txId"`
	Timestamp string `json:"timestamp"`
	Status    string `json:"status"`
	IsDelete  bool   `json:"isDelete"`
}

// Consent is a patient's permission for one grantee to use some data types
// for one purpose within a validity window. History is filled by
// ListConsents only.
type Consent struct {
	DocType   string          `json:"docType"`
	ID        string          `json:"id"`
	PatientID string          `json:"patientId"`
	GranteeID string          `json:"granteeId"`
	Purpose   string          `json:"purpose"`
	DataTypes []string        `json:"dataTypes"`
	NotBefore string          `json:"notBefore"`
	NotAfter  string          `json:"notAfter"`
	Status    string          `json:"status"`
	GrantedTx string          `json:"grantedTx"`
	GrantedAt string          `json:"grantedAt"`
	RevokedTx string          `json:"revokedTx,omitempty" metadata:",optional"`
	RevokedAt string          `json:"revokedAt,omitempty" metadata:",optional"`
	History   []ConsentChange `json:"history,omitempty" metadata:",optional"`
}

// AccessEvent is the committed decision on one access request, granted or
// denied.
type AccessEvent struct {
	DocType    string   `json:"docType"`
	ID         string   `json:"id"`
	ActorID    string   `json:"actorId"`
	PatientID  string   `json:"patientId"`
	Purpose    string   `json:"purpose"`
	DataTypes  []string `json:"dataTypes"`
	From       string   `json:"from"`
	To         string   `json:"to"`
	Decision   string   `json:"decision"`
	Reason     string   `json:"reason,omitempty" metadata:",optional"`
	ConsentID  string   `json:"consentId,omitempty" metadata:",optional"`
	ReadingIDs []string `json:"readingIds,omitempty" metadata:",optional"`
	Count      int      `json:"count"`
	NextCursor string   `json:"nextCursor,omitempty" metadata:",optional"`
	TxID       string   `json:"txId"`
	TxTime     string   `json:"txTime"`
}

// AuditEvent records one state-changing transaction. ID is the transaction
// id. ActorID is the signing actor, or "org:<MSP ID>" for transactions
// authenticated by the Fabric identity only (actor registration, reading
// batches).
type AuditEvent struct {
	DocType    string   `json:"docType"`
	ID         string   `json:"id"`
	Type       string   `json:"type"`
	ActorID    string   `json:"actorId"`
	PatientIDs []string `json:"patientIds"`
	SubjectID  string   `json:"subjectId"`
	Decision   string   `json:"decision,omitempty" metadata:",optional"`
	TxID       string   `json:"txId"`
	TxTime     string   `json:"txTime"`
}

// EventFilter is the filter argument of ListEvents. Empty fields match
// everything; from and to are RFC 3339 and inclusive.
type EventFilter struct {
	PatientID string `json:"patientId,omitempty"`
	ActorID   string `json:"actorId,omitempty"`
	Type      string `json:"type,omitempty"`
	From      string `json:"from,omitempty"`
	To        string `json:"to,omitempty"`
}

// ReadingPage is a page of ListReadings.
type ReadingPage struct {
	Items    []Reading `json:"items"`
	Bookmark string    `json:"bookmark"`
	Count    int       `json:"count"`
}

// AccessEventPage is a page of GetAccessLog.
type AccessEventPage struct {
	Items    []AccessEvent `json:"items"`
	Bookmark string        `json:"bookmark"`
	Count    int           `json:"count"`
}

// AuditEventPage is a page of ListEvents.
type AuditEventPage struct {
	Items    []AuditEvent `json:"items"`
	Bookmark string       `json:"bookmark"`
	Count    int          `json:"count"`
}

// Provenance is everything the ledger knows about one reading: the record,
// its device, the patient's consents covering its type and the access events
// that released it.
type Provenance struct {
	Reading  Reading       `json:"reading"`
	Device   Device        `json:"device"`
	Consents []Consent     `json:"consents"`
	Accesses []AccessEvent `json:"accesses"`
}
