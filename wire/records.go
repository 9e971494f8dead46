package wire

// Actor is a registered person or organisation role holder. Its public key
// and its passkeys ([Passkey] records) authenticate every action it signs.
type Actor struct {
	DocType string `json:"docType"`
	ID      string `json:"id"`
	Role    string `json:"role"`
	// PublicKey is the PEM key of plain envelopes; "" for an actor
	// registered with a passkey, which signs with passkeys only (until it
	// rotates to a PEM key).
	PublicKey    string `json:"publicKey"`
	Org          string `json:"org"`
	Status       string `json:"status"`
	RegisteredTx string `json:"registeredTx"`
	RegisteredAt string `json:"registeredAt"`
	// RevokedTx, RevokedAt, RevokedBy (the revoking actor, or "org:<MSP
	// ID>" for an org admin) and RevokedReason are set once revoked.
	RevokedTx     string `json:"revokedTx,omitempty" metadata:",optional"`
	RevokedAt     string `json:"revokedAt,omitempty" metadata:",optional"`
	RevokedBy     string `json:"revokedBy,omitempty" metadata:",optional"`
	RevokedReason string `json:"revokedReason,omitempty" metadata:",optional"`
	// RotatedTx and RotatedAt name the last key rotation; earlier keys are
	// in the record's ledger history.
	RotatedTx string `json:"rotatedTx,omitempty" metadata:",optional"`
	RotatedAt string `json:"rotatedAt,omitempty" metadata:",optional"`
	// ErasedTx and ErasedAt are set once a patient erased its data.
	ErasedTx string `json:"erasedTx,omitempty" metadata:",optional"`
	ErasedAt string `json:"erasedAt,omitempty" metadata:",optional"`
}

// ActorInput registers an actor: the body of POST /v1/actors and the
// argument of RegisterActor. It carries exactly one credential: PublicKey,
// a PEM "PUBLIC KEY" (PKIX, ECDSA P-256), or Passkey, a WebAuthn
// credential from an enrolment ceremony.
type ActorInput struct {
	ID        string             `json:"id"`
	Role      string             `json:"role"`
	PublicKey string             `json:"publicKey,omitempty" metadata:",optional"`
	Passkey   *PasskeyCredential `json:"passkey,omitempty" metadata:",optional"`
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

// ConsentChange is one committed version of a consent, from the ledger's
// key history.
type ConsentChange struct {
	TxID      string `json:"txId"`
	Timestamp string `json:"timestamp"`
	Status    string `json:"status"`
	IsDelete  bool   `json:"isDelete"`
}

// Consent is a patient's permission for one grantee to use some data types
// for one purpose within a validity window. History is filled in consent
// lists only.
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
// denied. ReadingIDs are the readings a grant released; NextCursor, when
// set, continues the grant.
//
// A patient's request for its own readings (SelfAccess: ActorID ==
// PatientID) is granted without a consent, so its ConsentID is empty; a
// researcher's grant always names the consent that granted it.
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
	// Withheld lists granted readings the releasing gateway did not
	// release, with the reason, as recorded by RecordWithheld in
	// WithheldTx at WithheldAt.
	Withheld   []Withheld `json:"withheld,omitempty" metadata:",optional"`
	WithheldTx string     `json:"withheldTx,omitempty" metadata:",optional"`
	WithheldAt string     `json:"withheldAt,omitempty" metadata:",optional"`
}

// SelfAccess reports whether the event decided a patient's request for its
// own data. Actor ids are unique across roles and a patient's id is its
// patientId, so only the patient itself can be both; the ledger refuses a
// researcher naming itself as the patient. (Before patients could request
// access such a request was committed as a no_consent denial, which a
// patient's own request never is, so those events are not reported.)
func (e *AccessEvent) SelfAccess() bool {
	return e.ActorID == e.PatientID && e.Reason != ReasonNoConsent
}

// AuditEvent records one state-changing transaction; ID is its transaction
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

// EventFilter selects audit events. Empty fields match everything; From and
// To are RFC 3339 and inclusive.
type EventFilter struct {
	PatientID string `json:"patientId,omitempty"`
	ActorID   string `json:"actorId,omitempty"`
	Type      string `json:"type,omitempty"`
	From      string `json:"from,omitempty"`
	To        string `json:"to,omitempty"`
}

// ReadingPage is one page of a patient's readings. Bookmark is empty on
// the last page; pass it back to fetch the next one.
type ReadingPage struct {
	Items    []Reading `json:"items"`
	Bookmark string    `json:"bookmark"`
	Count    int       `json:"count"`
}

// AccessEventPage is one page of a patient's access log.
type AccessEventPage struct {
	Items    []AccessEvent `json:"items"`
	Bookmark string        `json:"bookmark"`
	Count    int           `json:"count"`
}

// AuditEventPage is one page of audit events.
type AuditEventPage struct {
	Items    []AuditEvent `json:"items"`
	Bookmark string       `json:"bookmark"`
	Count    int          `json:"count"`
}

// Provenance is everything the ledger knows about one reading: the record,
// its device, the patient's consents covering its type and the access
// events that released it.
type Provenance struct {
	Reading  Reading       `json:"reading"`
	Device   Device        `json:"device"`
	Consents []Consent     `json:"consents"`
	Accesses []AccessEvent `json:"accesses"`
}
