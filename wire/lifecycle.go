package wire

// Identity lifecycle: revoking an actor, rotating its key, erasing a
// patient, and recording granted readings the gateway withheld.

// Signed action names of the identity lifecycle.
const (
	// ActionActorRevoke revokes an actor (signer: a regulator, or the
	// actor itself). An org admin revokes its org's actors without a
	// signed action (ActorRevokeInput).
	ActionActorRevoke = "actor.revoke"
	// ActionActorRotate replaces the signer's key (signer: the actor
	// itself, with its current key).
	ActionActorRotate = "actor.rotate"
	// ActionPatientErase erases the signing patient's data.
	ActionPatientErase = "patient.erase"
)

// ReasonPatientErased is the denial reason of an access request for an
// erased patient: the ledger denies it whatever the consents say.
const ReasonPatientErased = "patient_erased"

// Reasons a granted reading was withheld at release (Withheld.Reason).
const (
	// WithheldErased: the patient's keys were crypto-shredded.
	WithheldErased = "erased"
	// WithheldEvidenceMismatch: the stored ciphertext or the decrypted
	// payload does not match the ledger record (CID, cipherHash, dataHash,
	// device signature, or deviceId/seq/type/unit/measuredAt).
	WithheldEvidenceMismatch = "evidence_mismatch"
	// WithheldCiphertextMissing: the blob store does not hold the CID.
	WithheldCiphertextMissing = "ciphertext_missing"
	// WithheldUnavailable: the reading could not be released for another
	// reason (its ledger record or device key could not be read).
	WithheldUnavailable = "unavailable"
)

// ValidWithheldReason reports whether s is one of the Withheld* reasons.
func ValidWithheldReason(s string) bool {
	switch s {
	case WithheldErased, WithheldEvidenceMismatch, WithheldCiphertextMissing, WithheldUnavailable:
		return true
	}
	return false
}

// Audit event types of the identity lifecycle.
const (
	AuditActorRevoked     = "actor.revoked"
	AuditActorRotated     = "actor.rotated"
	AuditPatientErased    = "patient.erased"
	AuditReadingsWithheld = "readings.withheld"
)

// Chaincode event names of the identity lifecycle. ActorRevoked and
// ActorRotated carry the Actor as written; PatientErased the Erasure;
// ReadingsWithheld the AccessEvent with its Withheld list.
const (
	EventActorRevoked     = "ActorRevoked"
	EventActorRotated     = "ActorRotated"
	EventPatientErased    = "PatientErased"
	EventReadingsWithheld = "ReadingsWithheld"
)

// Chaincode transactions of the identity lifecycle (all submit).
const (
	// FnRevokeActor takes a signed actor.revoke envelope.
	FnRevokeActor = "RevokeActor"
	// FnRevokeOrgActor takes an ActorRevokeInput from an org admin
	// identity; it revokes actors of the admin's own org only.
	FnRevokeOrgActor = "RevokeOrgActor"
	// FnRotateActorKey takes a signed actor.rotate envelope.
	FnRotateActorKey = "RotateActorKey"
	// FnErasePatient takes a signed patient.erase envelope.
	FnErasePatient = "ErasePatient"
	// FnRecordWithheld takes a WithheldInput from an org identity (the
	// gateway that released the access).
	FnRecordWithheld = "RecordWithheld"
)

// ActorRevokeAction is the payload of actor.revoke. The signer is a
// regulator or the target itself. Reason is a lower-case token
// (^[a-z0-9._-]{1,64}$, e.g. "key-compromised"), never free text: it is
// written to the ledger.
type ActorRevokeAction struct {
	ActionHeader
	TargetID string `json:"targetId"`
	Reason   string `json:"reason"`
}

// ActorRotateAction is the payload of actor.rotate, signed with the
// actor's current key. PublicKey is the new PEM "PUBLIC KEY" (ECDSA P-256),
// registered to no actor or device before.
type ActorRotateAction struct {
	ActionHeader
	PublicKey string `json:"publicKey"`
}

// PatientEraseAction is the payload of patient.erase (signer: the patient).
// Reason is a lower-case token, as for actor.revoke.
type PatientEraseAction struct {
	ActionHeader
	Reason string `json:"reason"`
}

// ActorRevokeInput is an org admin's revocation: the argument of
// RevokeOrgActor. At the gateway the id comes from the path and the body
// is AdminRevokeRequest.
type ActorRevokeInput struct {
	ID     string `json:"id"`
	Reason string `json:"reason"`
}

// AdminRevokeRequest is the body of POST /v1/actors/{id}/revoke sent with
// the admin token instead of a signed envelope.
type AdminRevokeRequest struct {
	Reason string `json:"reason"`
}

// Erasure is the ledger's record that a patient's data was erased
// (crypto-shredded by the gateways that hold its keys). The readings'
// hashes, signatures and CIDs stay on the ledger as evidence.
type Erasure struct {
	DocType   string `json:"docType"`
	PatientID string `json:"patientId"`
	Reason    string `json:"reason"`
	ErasedTx  string `json:"erasedTx"`
	ErasedAt  string `json:"erasedAt"`
}

// WithheldInput is the argument of RecordWithheld: granted readings of one
// access event that the gateway did not release, and why. 1..MaxAccessLimit
// distinct readings, each granted by that access event.
type WithheldInput struct {
	AccessID string     `json:"accessId"`
	Withheld []Withheld `json:"withheld"`
}

// ActorReceipt answers an actor revocation or key rotation (200): the actor
// as written and the transaction that wrote it.
type ActorReceipt struct {
	ActorID string `json:"actorId"`
	TxID    string `json:"txId"`
	Block   uint64 `json:"block"`
	Actor   Actor  `json:"actor"`
}

// ErasureReceipt answers a patient erasure (200). KeysShredded reports
// whether this gateway destroyed the patient's keys before answering; when
// false, the gateway shreds them when it handles the PatientErased event
// (retrying until it succeeds), and the ledger already denies every access.
type ErasureReceipt struct {
	PatientID    string  `json:"patientId"`
	TxID         string  `json:"txId"`
	Block        uint64  `json:"block"`
	Erasure      Erasure `json:"erasure"`
	KeysShredded bool    `json:"keysShredded"`
}
