package chaincode

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/medprov/medprov/consent"
	"github.com/medprov/medprov/wire"

	"github.com/hyperledger/fabric-chaincode-go/v2/shim"
	"github.com/hyperledger/fabric-contract-api-go/v2/contractapi"
)

// GrantConsent records a consent from a signed consent.grant action. The
// signer is the patient: a signer in any other role is forbidden, and a
// patientId field, if present, must name the signer. The grantee must be an
// active researcher; purpose and each of 1..MaxDataTypes distinct data types
// match ^[a-z0-9._-]{1,64}$; notBefore < notAfter and notAfter is after the
// transaction time. The consent id is "cns-" + the first 24 hex digits of the
// transaction id. An erased patient (ErasePatient) grants nothing
// (forbidden).
func (c *Contract) GrantConsent(ctx contractapi.TransactionContextInterface, envelopeJSON string) (*wire.Consent, error) {
	t, err := newTx(ctx)
	if err != nil {
		return nil, err
	}
	var p wire.ConsentGrantAction
	patient, err := t.authenticate(envelopeJSON, wire.ActionConsentGrant, wire.RolePatient, &p)
	if err != nil {
		return nil, err
	}
	if p.PatientID != "" && p.PatientID != patient.ID {
		return nil, refuse(wire.CodeForbidden, "consent may only be granted by the patient themself")
	}
	if patient.ErasedTx != "" {
		return nil, refuse(wire.CodeForbidden, "patient %s erased their data: no new consent", patient.ID)
	}
	if !wire.ValidID(p.GranteeID) {
		return nil, invalid("granteeId is malformed")
	}
	if !wire.ValidToken(p.Purpose) {
		return nil, invalid("purpose must match ^[a-z0-9._-]{1,64}$")
	}
	if err := checkDataTypes(p.DataTypes); err != nil {
		return nil, err
	}
	nb, err := parseTime("notBefore", p.NotBefore)
	if err != nil {
		return nil, err
	}
	na, err := parseTime("notAfter", p.NotAfter)
	if err != nil {
		return nil, err
	}
	if !nb.Before(na) {
		return nil, invalid("notBefore must be before notAfter")
	}
	if !na.After(t.time) {
		return nil, invalid("notAfter must be after the transaction time")
	}
	grantee, found, err := getActor(t.stub, p.GranteeID)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, refuse(wire.CodeNotFound, "grantee %s not found", p.GranteeID)
	}
	if grantee.Role != wire.RoleResearcher || grantee.Status != wire.StatusActive {
		return nil, invalid("grantee %s is not an active researcher", p.GranteeID)
	}
	if len(t.id) < 24 {
		return nil, fmt.Errorf("transaction id %q too short for a consent id", t.id)
	}
	cn := &wire.Consent{
		DocType: "consent", ID: "cns-" + t.id[:24], PatientID: patient.ID, GranteeID: grantee.ID,
		Purpose: p.Purpose, DataTypes: p.DataTypes, NotBefore: p.NotBefore, NotAfter: p.NotAfter,
		Status: wire.StatusActive, GrantedTx: t.id, GrantedAt: t.at,
	}
	k, err := key(t.stub, objConsent, cn.ID)
	if err != nil {
		return nil, fmt.Errorf("consent key: %w", err)
	}
	if err := putJSON(t.stub, k, cn); err != nil {
		return nil, err
	}
	if err := putIndex(t.stub, objConsentByPatient, cn.PatientID, cn.GranteeID, cn.ID); err != nil {
		return nil, err
	}
	if err := t.writeAudit(wire.AuditConsentGranted, patient.ID, []string{patient.ID}, cn.ID, ""); err != nil {
		return nil, err
	}
	if err := setEvent(t.stub, wire.EventConsentGranted, cn); err != nil {
		return nil, err
	}
	return cn, nil
}

// checkDataTypes requires 1..MaxDataTypes distinct tokens.
func checkDataTypes(types []string) error {
	if len(types) == 0 || len(types) > wire.MaxDataTypes {
		return invalid("dataTypes must hold 1..%d entries", wire.MaxDataTypes)
	}
	seen := make(map[string]bool, len(types))
	for _, dt := range types {
		if !wire.ValidToken(dt) {
			return invalid("each data type must match ^[a-z0-9._-]{1,64}$")
		}
		if seen[dt] {
			return invalid("dataTypes must be distinct")
		}
		seen[dt] = true
	}
	return nil
}

// RevokeConsent revokes a consent from a signed consent.revoke action of its
// patient. Revoking twice is a conflict. Access requests decided after the
// revocation are denied; earlier decisions stand.
func (c *Contract) RevokeConsent(ctx contractapi.TransactionContextInterface, envelopeJSON string) (*wire.Consent, error) {
	t, err := newTx(ctx)
	if err != nil {
		return nil, err
	}
	var p wire.ConsentRevokeAction
	patient, err := t.authenticate(envelopeJSON, wire.ActionConsentRevoke, wire.RolePatient, &p)
	if err != nil {
		return nil, err
	}
	cn, found, err := getConsent(t.stub, p.ConsentID)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, refuse(wire.CodeNotFound, "consent %s not found", p.ConsentID)
	}
	if cn.PatientID != patient.ID {
		return nil, refuse(wire.CodeForbidden, "only the patient of consent %s may revoke it", cn.ID)
	}
	if cn.Status == wire.StatusRevoked {
		return nil, refuse(wire.CodeConflict, "consent %s already revoked", cn.ID)
	}
	cn.Status, cn.RevokedTx, cn.RevokedAt = wire.StatusRevoked, t.id, t.at
	k, err := key(t.stub, objConsent, cn.ID)
	if err != nil {
		return nil, fmt.Errorf("consent key: %w", err)
	}
	if err := putJSON(t.stub, k, cn); err != nil {
		return nil, err
	}
	if err := t.writeAudit(wire.AuditConsentRevoked, patient.ID, []string{patient.ID}, cn.ID, ""); err != nil {
		return nil, err
	}
	if err := setEvent(t.stub, wire.EventConsentRevoked, cn); err != nil {
		return nil, err
	}
	return cn, nil
}

// GetConsent returns the consent with that id (without history), or a
// not_found refusal.
func (c *Contract) GetConsent(ctx contractapi.TransactionContextInterface, id string) (*wire.Consent, error) {
	cn, found, err := getConsent(ctx.GetStub(), id)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, refuse(wire.CodeNotFound, "consent %s not found", id)
	}
	return cn, nil
}

func getConsent(stub shim.ChaincodeStubInterface, id string) (*wire.Consent, bool, error) {
	if !wire.ValidID(id) {
		return nil, false, invalid("consent id is malformed")
	}
	k, err := key(stub, objConsent, id)
	if err != nil {
		return nil, false, fmt.Errorf("consent key: %w", err)
	}
	var cn wire.Consent
	found, err := getJSON(stub, k, &cn)
	if err != nil || !found {
		return nil, false, err
	}
	return &cn, true, nil
}

// patientConsents returns the patient's consents (granteeID "" = all
// grantees), oldest grant first.
func patientConsents(stub shim.ChaincodeStubInterface, patientID, granteeID string) ([]wire.Consent, error) {
	prefix := []string{patientID}
	if granteeID != "" {
		prefix = append(prefix, granteeID)
	}
	keys, err := partialKeys(stub, objConsentByPatient, prefix)
	if err != nil {
		return nil, err
	}
	out := make([]wire.Consent, 0, len(keys))
	for _, attrs := range keys {
		cn, found, err := getConsent(stub, attrs[2])
		if err != nil {
			return nil, err
		}
		if !found {
			return nil, fmt.Errorf("index names missing consent %s", attrs[2])
		}
		out = append(out, *cn)
	}
	consent.Order(out)
	return out, nil
}

// ListConsents returns every consent of the patient, oldest grant first,
// each with its full history (every committed version, oldest first).
func (c *Contract) ListConsents(ctx contractapi.TransactionContextInterface, patientID string) ([]wire.Consent, error) {
	stub := ctx.GetStub()
	if !wire.ValidID(patientID) {
		return nil, invalid("patientId is malformed")
	}
	consents, err := patientConsents(stub, patientID, "")
	if err != nil {
		return nil, err
	}
	for i := range consents {
		h, err := consentHistory(stub, consents[i].ID)
		if err != nil {
			return nil, err
		}
		consents[i].History = h
	}
	return consents, nil
}

func consentHistory(stub shim.ChaincodeStubInterface, id string) ([]wire.ConsentChange, error) {
	k, err := key(stub, objConsent, id)
	if err != nil {
		return nil, fmt.Errorf("consent key: %w", err)
	}
	it, err := stub.GetHistoryForKey(k)
	if err != nil {
		return nil, fmt.Errorf("consent history: %w", err)
	}
	defer it.Close()
	out := []wire.ConsentChange{}
	for it.HasNext() {
		m, err := it.Next()
		if err != nil {
			return nil, fmt.Errorf("iterate consent history: %w", err)
		}
		ch := wire.ConsentChange{TxID: m.TxId, IsDelete: m.IsDelete}
		if m.Timestamp != nil {
			ch.Timestamp = formatTime(m.Timestamp.AsTime())
		}
		if !m.IsDelete {
			var v struct {
				Status string `json:"status"`
			}
			if err := json.Unmarshal(m.Value, &v); err != nil {
				return nil, fmt.Errorf("decode consent history: %w", err)
			}
			ch.Status = v.Status
		}
		out = append(out, ch)
	}
	// Fabric returns history newest first. Order oldest first by timestamp;
	// a consent only moves from active to revoked, which breaks ties.
	rank := func(c wire.ConsentChange) int {
		if c.Status == wire.StatusActive {
			return 0
		}
		return 1
	}
	slices.SortStableFunc(out, func(a, b wire.ConsentChange) int {
		return cmp.Or(cmp.Compare(a.Timestamp, b.Timestamp), cmp.Compare(rank(a), rank(b)))
	})
	return out, nil
}
