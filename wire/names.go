package wire

import "time"

// Roles an actor can hold.
const (
	RolePatient    = "patient"
	RoleOperator   = "operator"
	RoleResearcher = "researcher"
	RoleRegulator  = "regulator"
)

// ValidRole reports whether role is one an actor can be registered with.
func ValidRole(role string) bool {
	switch role {
	case RolePatient, RoleOperator, RoleResearcher, RoleRegulator:
		return true
	}
	return false
}

// Statuses of actors, devices and consents.
const (
	StatusActive  = "active"
	StatusRevoked = "revoked"
)

// Statuses of one reading: "queued" (durably accepted by a gateway, not yet
// in a block), "recorded" (committed by this request's transaction or
// earlier), "exists" (an identical reading is already held) and "rejected"
// (refused, with an error code).
const (
	StatusQueued   = "queued"
	StatusRecorded = "recorded"
	StatusExists   = "exists"
	StatusRejected = "rejected"
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

// Signed action names: the "action" member of an action payload.
const (
	ActionDeviceRegister = "device.register"
	ActionDeviceRevoke   = "device.revoke"
	ActionConsentGrant   = "consent.grant"
	ActionConsentRevoke  = "consent.revoke"
	ActionAccessRequest  = "access.request"
	ActionHTTPGet        = "http.get"
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

// Chaincode transaction names. Submit transactions change the ledger;
// the Get and List ones are evaluate-only queries.
const (
	FnRegisterActor  = "RegisterActor"
	FnRegisterDevice = "RegisterDevice"
	FnRevokeDevice   = "RevokeDevice"
	FnRecordReadings = "RecordReadings"
	FnGrantConsent   = "GrantConsent"
	FnRevokeConsent  = "RevokeConsent"
	FnRequestAccess  = "RequestAccess"
	// FnRequestAccessByRead decides the access request a signed FHIR
	// Observation read (an http.get envelope) stands for (fhir/readaccess).
	FnRequestAccessByRead = "RequestAccessByRead"

	FnGetActor       = "GetActor"
	FnGetDevice      = "GetDevice"
	FnGetReading     = "GetReading"
	FnGetConsent     = "GetConsent"
	FnGetAccessEvent = "GetAccessEvent"
	FnListReadings   = "ListReadings"
	FnListConsents   = "ListConsents"
	FnGetAccessLog   = "GetAccessLog"
	FnListEvents     = "ListEvents"
	FnGetProvenance  = "GetProvenance"
	// FnGetReadingByHash finds a reading by its dataHash, the id of its
	// FHIR Observation.
	FnGetReadingByHash = "GetReadingByHash"
)

// EvaluateFunctions lists the read-only chaincode transactions.
func EvaluateFunctions() []string {
	return []string{
		FnGetActor, FnGetDevice, FnGetReading, FnGetConsent, FnGetAccessEvent,
		FnListReadings, FnListConsents, FnGetAccessLog, FnListEvents, FnGetProvenance,
		FnGetRelyingParty, FnGetPasskey, FnListPasskeys,
		FnListDevices, FnListActors, FnGetDeviceStats,
		FnGetReadingByHash,
	}
}

// SignatureHeader carries a signed GET's envelope: base64 of the JSON
// envelope of an http.get action payload.
const SignatureHeader = "X-Medprov-Signature"

// Limits of the interface.
const (
	// MaxBatch is the most readings one RecordReadings transaction or one
	// batch request holds.
	MaxBatch = 1000
	// MaxDataTypes bounds the data types of one consent or access request.
	MaxDataTypes = 32
	// DefaultAccessLimit is the number of readings a granted access
	// releases when the request names no limit; MaxAccessLimit is the most.
	DefaultAccessLimit = 500
	MaxAccessLimit     = 1000
	// DefaultPageSize and MaxPageSize bound paged queries.
	DefaultPageSize = 100
	MaxPageSize     = 1000
	// MaxSeq is the largest reading seq: 2^53-1, the largest integer every
	// JSON library reads exactly.
	MaxSeq = 1<<53 - 1
	// NonceBytes is the least number of random bytes in a reading's nonce
	// (128 bits), so its hash cannot be brute-forced from the ledger.
	NonceBytes = 16
	// IssuedAtWindow is how far a signed action's issuedAt may lie from the
	// ledger's transaction time (or the gateway's clock), either way.
	IssuedAtWindow = 5 * time.Minute
)
