package chaincode

import (
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"

	"github.com/hyperledger/fabric-chaincode-go/v2/shim"
	"github.com/hyperledger/fabric-contract-api-go/v2/contractapi"

	"github.com/medprov/medprov/envelope"
	"github.com/medprov/medprov/wire"
)

// retiredPrefix marks a publicKey index entry whose key its actor rotated
// away from: the key stays claimed, so it can never be registered again.
const retiredPrefix = "retired:"

// RevokeActor revokes an actor from a signed actor.revoke action. The
// signer must be an active regulator or the target itself (anyone else is
// forbidden, whether or not the target exists); reason is a lower-case
// token. A revoked actor's key is refused for every later action and
// signed request; its record keeps revokedTx, revokedAt, revokedBy and
// revokedReason, and everything it did before stays on the ledger.
// Revoking twice is a conflict.
func (c *Contract) RevokeActor(ctx contractapi.TransactionContextInterface, envelopeJSON string) (*wire.Actor, error) {
	t, err := newTx(ctx)
	if err != nil {
		return nil, err
	}
	var p wire.ActorRevokeAction
	signer, err := t.authenticate(envelopeJSON, wire.ActionActorRevoke, "", &p)
	if err != nil {
		return nil, err
	}
	if !wire.ValidID(p.TargetID) {
		return nil, invalid("targetId is malformed")
	}
	if !wire.ValidToken(p.Reason) {
		return nil, invalid("reason must match ^[a-z0-9._-]{1,64}$")
	}
	if p.TargetID != signer.ID && signer.Role != wire.RoleRegulator {
		return nil, refuse(wire.CodeForbidden, "only a regulator or the actor itself may revoke actor %s", p.TargetID)
	}
	target := signer
	if p.TargetID != signer.ID {
		a, found, err := getActor(t.stub, p.TargetID)
		if err != nil {
			return nil, err
		}
		if !found {
			return nil, refuse(wire.CodeNotFound, "actor %s not found", p.TargetID)
		}
		target = a
	}
	return t.revokeActor(target, signer.ID, p.Reason)
}

// RevokeOrgActor revokes an actor as its org's admin: only a creator whose
// certificate carries OU "admin" may call it, and only for actors its MSP
// registered (another org's actor is forbidden). revokeJSON is
// {"id","reason"}; otherwise it works as RevokeActor, with revokedBy
// "org:<MSP ID>".
func (c *Contract) RevokeOrgActor(ctx contractapi.TransactionContextInterface, revokeJSON string) (*wire.Actor, error) {
	t, err := newTx(ctx)
	if err != nil {
		return nil, err
	}
	msp, err := adminMSP(t.stub, "revoke actors without a signed action")
	if err != nil {
		return nil, err
	}
	var in wire.ActorRevokeInput
	if err := wire.DecodeStrict([]byte(revokeJSON), &in); err != nil {
		return nil, invalid("malformed revocation: %s", wire.JSONProblem(err))
	}
	if !wire.ValidID(in.ID) {
		return nil, invalid("actor id is malformed")
	}
	if !wire.ValidToken(in.Reason) {
		return nil, invalid("reason must match ^[a-z0-9._-]{1,64}$")
	}
	target, found, err := getActor(t.stub, in.ID)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, refuse(wire.CodeNotFound, "actor %s not found", in.ID)
	}
	if target.Org != msp {
		return nil, refuse(wire.CodeForbidden, "actor %s belongs to another org", in.ID)
	}
	return t.revokeActor(target, "org:"+msp, in.Reason)
}

// revokeActor marks a revoked, writes its audit event and emits
// ActorRevoked.
func (t *tx) revokeActor(a *wire.Actor, by, reason string) (*wire.Actor, error) {
	if a.Status == wire.StatusRevoked {
		return nil, refuse(wire.CodeConflict, "actor %s already revoked", a.ID)
	}
	a.Status, a.RevokedTx, a.RevokedAt, a.RevokedBy, a.RevokedReason = wire.StatusRevoked, t.id, t.at, by, reason
	if err := t.putActor(a); err != nil {
		return nil, err
	}
	if err := t.writeAudit(wire.AuditActorRevoked, by, patientOf(a), a.ID, ""); err != nil {
		return nil, err
	}
	if err := setEvent(t.stub, wire.EventActorRevoked, a); err != nil {
		return nil, err
	}
	return a, nil
}

// RotateActorKey replaces an actor's key from a signed actor.rotate action,
// signed with the actor's current key (so a revoked actor cannot rotate).
// The new key must be a PEM ECDSA P-256 key never registered to any actor
// or device (conflict otherwise). From this transaction on only the new key
// authenticates the actor. The old key stays claimed in the publicKey index
// (marked retired), so it can never be registered again; earlier keys are
// in the actor record's ledger history and rotatedTx names the last
// rotation. Passkeys are credentials of their own: the action may be
// signed with one of the actor's passkeys (a passkey-only actor so gains a
// PEM key), and a rotation leaves them as they are. actor.rotate does not
// take a passkey credential yet; an org admin adds passkeys with
// RegisterPasskey.
func (c *Contract) RotateActorKey(ctx contractapi.TransactionContextInterface, envelopeJSON string) (*wire.Actor, error) {
	t, err := newTx(ctx)
	if err != nil {
		return nil, err
	}
	var p wire.ActorRotateAction
	a, err := t.authenticate(envelopeJSON, wire.ActionActorRotate, "", &p)
	if err != nil {
		return nil, err
	}
	pub, err := envelope.ParsePublicKey([]byte(p.PublicKey))
	if err != nil {
		return nil, invalid("publicKey must be a PEM ECDSA P-256 public key (PKIX)")
	}
	pemKey, err := claimPublicKey(t.stub, pub, "actor:"+a.ID)
	if err != nil {
		return nil, err
	}
	if a.PublicKey != "" { // "" for a passkey-only actor, which gains its first PEM key
		old, err := envelope.ParsePublicKey([]byte(a.PublicKey))
		if err != nil {
			return nil, fmt.Errorf("ledger key of actor %s: %w", a.ID, err)
		}
		oldIndex, err := publicKeyIndex(t.stub, old)
		if err != nil {
			return nil, err
		}
		if err := t.stub.PutState(oldIndex, []byte(retiredPrefix+"actor:"+a.ID)); err != nil {
			return nil, fmt.Errorf("write public key index: %w", err)
		}
	}
	a.PublicKey, a.RotatedTx, a.RotatedAt = pemKey, t.id, t.at
	if err := t.putActor(a); err != nil {
		return nil, err
	}
	if err := t.writeAudit(wire.AuditActorRotated, a.ID, patientOf(a), a.ID, ""); err != nil {
		return nil, err
	}
	if err := setEvent(t.stub, wire.EventActorRotated, a); err != nil {
		return nil, err
	}
	return a, nil
}

// ErasePatient records a patient's erasure from a signed patient.erase
// action of the patient (reason: a lower-case token). It writes an Erasure
// record, marks the patient's actor record (erasedTx, erasedAt), writes a
// patient.erased audit event and emits PatientErased, on which every
// gateway crypto-shreds the patient's keys. From this transaction on the
// ledger denies every access request for the patient (reason
// patient_erased), refuses new consents by the patient, new devices for the
// patient and readings from the patient's devices (forbidden). Readings
// already recorded keep their hashes, signatures and CIDs as evidence; the
// patient may still sign, e.g. to revoke consents or read its access log.
// Erasing twice is a conflict.
func (c *Contract) ErasePatient(ctx contractapi.TransactionContextInterface, envelopeJSON string) (*wire.Erasure, error) {
	t, err := newTx(ctx)
	if err != nil {
		return nil, err
	}
	var p wire.PatientEraseAction
	patient, err := t.authenticate(envelopeJSON, wire.ActionPatientErase, wire.RolePatient, &p)
	if err != nil {
		return nil, err
	}
	if !wire.ValidToken(p.Reason) {
		return nil, invalid("reason must match ^[a-z0-9._-]{1,64}$")
	}
	if patient.ErasedTx != "" {
		return nil, refuse(wire.CodeConflict, "patient %s already erased", patient.ID)
	}
	er := &wire.Erasure{DocType: "erasure", PatientID: patient.ID, Reason: p.Reason, ErasedTx: t.id, ErasedAt: t.at}
	k, err := key(t.stub, objErasure, patient.ID)
	if err != nil {
		return nil, fmt.Errorf("erasure key: %w", err)
	}
	if err := putJSON(t.stub, k, er); err != nil {
		return nil, err
	}
	patient.ErasedTx, patient.ErasedAt = t.id, t.at
	if err := t.putActor(patient); err != nil {
		return nil, err
	}
	if err := t.writeAudit(wire.AuditPatientErased, patient.ID, []string{patient.ID}, patient.ID, ""); err != nil {
		return nil, err
	}
	if err := setEvent(t.stub, wire.EventPatientErased, er); err != nil {
		return nil, err
	}
	return er, nil
}

// RecordWithheld records on an access event the granted readings the
// releasing gateway withheld, and why (erased, evidence_mismatch,
// ciphertext_missing, unavailable), so that an auditor sees them in the
// access log, the readings' provenance and the audit trail
// (readings.withheld, actor "org:<MSP ID>"). Any identity of the org may
// submit it (in practice the gateway, after release). withheldJSON is a
// WithheldInput: the access event must exist and be a grant (forbidden
// otherwise), every reading must be one it granted (forbidden), listed once
// with a known reason (invalid). An access event's withheld readings are
// recorded once (conflict after).
func (c *Contract) RecordWithheld(ctx contractapi.TransactionContextInterface, withheldJSON string) (*wire.AccessEvent, error) {
	t, err := newTx(ctx)
	if err != nil {
		return nil, err
	}
	org, err := orgActor(t.stub)
	if err != nil {
		return nil, err
	}
	var in wire.WithheldInput
	if err := wire.DecodeStrict([]byte(withheldJSON), &in); err != nil {
		return nil, invalid("malformed withheld readings: %s", wire.JSONProblem(err))
	}
	if len(in.Withheld) == 0 || len(in.Withheld) > wire.MaxAccessLimit {
		return nil, invalid("withheld holds 1..%d readings", wire.MaxAccessLimit)
	}
	ev, found, err := getAccess(t.stub, in.AccessID)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, refuse(wire.CodeNotFound, "access event %s not found", in.AccessID)
	}
	if ev.Decision != wire.DecisionGranted {
		return nil, refuse(wire.CodeForbidden, "access %s was denied: it granted no readings", ev.ID)
	}
	if len(ev.Withheld) > 0 {
		return nil, refuse(wire.CodeConflict, "withheld readings of access %s already recorded", ev.ID)
	}
	granted := make(map[string]bool, len(ev.ReadingIDs))
	for _, id := range ev.ReadingIDs {
		granted[id] = true
	}
	seen := make(map[string]bool, len(in.Withheld))
	for _, w := range in.Withheld {
		if !wire.ValidWithheldReason(w.Reason) {
			return nil, invalid("reason must be erased, evidence_mismatch, ciphertext_missing or unavailable")
		}
		if seen[w.ReadingID] {
			return nil, invalid("reading %s is listed twice", w.ReadingID)
		}
		seen[w.ReadingID] = true
		if !granted[w.ReadingID] {
			return nil, refuse(wire.CodeForbidden, "access %s did not grant reading %s", ev.ID, w.ReadingID)
		}
	}
	ev.Withheld, ev.WithheldTx, ev.WithheldAt = in.Withheld, t.id, t.at
	k, err := key(t.stub, objAccess, ev.ID)
	if err != nil {
		return nil, fmt.Errorf("access key: %w", err)
	}
	if err := putJSON(t.stub, k, ev); err != nil {
		return nil, err
	}
	if err := t.writeAudit(wire.AuditReadingsWithheld, org, []string{ev.PatientID}, ev.ID, ""); err != nil {
		return nil, err
	}
	if err := setEvent(t.stub, wire.EventReadingsWithheld, ev); err != nil {
		return nil, err
	}
	return ev, nil
}

// isErased reports whether the patient erased its data.
func isErased(stub shim.ChaincodeStubInterface, patientID string) (bool, error) {
	k, err := key(stub, objErasure, patientID)
	if err != nil {
		return false, fmt.Errorf("erasure key: %w", err)
	}
	b, err := stub.GetState(k)
	if err != nil {
		return false, fmt.Errorf("read erasure: %w", err)
	}
	return len(b) != 0, nil
}

func (t *tx) putActor(a *wire.Actor) error {
	k, err := key(t.stub, objActor, a.ID)
	if err != nil {
		return fmt.Errorf("actor key: %w", err)
	}
	return putJSON(t.stub, k, a)
}

// patientOf returns the actor's id as the audit event's patients when it is
// a patient, so the patient's own trail shows changes to its identity.
func patientOf(a *wire.Actor) []string {
	if a.Role == wire.RolePatient {
		return []string{a.ID}
	}
	return nil
}

// publicKeyIndex returns the publicKey index key of pub.
func publicKeyIndex(stub shim.ChaincodeStubInterface, pub *ecdsa.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("marshal public key: %w", err)
	}
	sum := sha256.Sum256(der)
	k, err := key(stub, objPublicKey, hex.EncodeToString(sum[:]))
	if err != nil {
		return "", fmt.Errorf("public key index: %w", err)
	}
	return k, nil
}
