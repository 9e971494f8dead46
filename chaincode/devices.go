package chaincode

import (
	"fmt"

	"github.com/hyperledger/fabric-chaincode-go/v2/shim"
	"github.com/hyperledger/fabric-contract-api-go/v2/contractapi"
	"github.com/medprov/medprov/envelope"
)

type deviceRegisterPayload struct {
	actionHeader
	DeviceID   string `json:"deviceId"`
	PatientID  string `json:"patientId"`
	DeviceType string `json:"deviceType"`
	PublicKey  string `json:"publicKey"`
}

type deviceRevokePayload struct {
	actionHeader
	DeviceID string `json:"deviceId"`
}

// RegisterDevice registers a device from a signed device.register action of
// an operator. The device is bound to an active patient actor and to the
// signing operator. Its key must be a PEM ECDSA P-256 key not registered to
// anyone else. A duplicate device id is a conflict.
func (c *Contract) RegisterDevice(ctx contractapi.TransactionContextInterface, envelopeJSON string) (*Device, error) {
	t, err := newTx(ctx)
	if err != nil {
		return nil, err
	}
	var p deviceRegisterPayload
	op, err := t.authenticate(envelopeJSON, ActionDeviceRegister, RoleOperator, &p)
	if err != nil {
		return nil, err
	}
	if !validID(p.DeviceID) {
		return nil, invalid("deviceId must match ^[A-Za-z0-9._-]{1,64}$")
	}
	if !validID(p.PatientID) {
		return nil, invalid("patientId is malformed")
	}
	if !validToken(p.DeviceType) {
		return nil, invalid("deviceType must match ^[a-z0-9._-]{1,64}$")
	}
	pub, err := envelope.ParsePublicKey([]byte(p.PublicKey))
	if err != nil {
		return nil, invalid("publicKey must be a PEM ECDSA P-256 public key (PKIX)")
	}
	patient, found, err := getActor(t.stub, p.PatientID)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, refuse(CodeNotFound, "patient %s not found", p.PatientID)
	}
	if patient.Role != RolePatient || patient.Status != StatusActive {
		return nil, invalid("actor %s is not an active patient", p.PatientID)
	}
	k, err := key(t.stub, objDevice, p.DeviceID)
	if err != nil {
		return nil, fmt.Errorf("device key: %w", err)
	}
	var existing Device
	dup, err := getJSON(t.stub, k, &existing)
	if err != nil {
		return nil, err
	}
	if dup {
		return nil, refuse(CodeConflict, "device %s already registered", p.DeviceID)
	}
	pemKey, err := claimPublicKey(t.stub, pub, "device:"+p.DeviceID)
	if err != nil {
		return nil, err
	}
	d := &Device{
		DocType: "device", ID: p.DeviceID, OperatorID: op.ID, PatientID: patient.ID,
		DeviceType: p.DeviceType, PublicKey: pemKey, Status: StatusActive,
		RegisteredTx: t.id, RegisteredAt: t.at,
	}
	if err := putJSON(t.stub, k, d); err != nil {
		return nil, err
	}
	if err := t.writeAudit(AuditDeviceRegistered, op.ID, []string{d.PatientID}, d.ID, ""); err != nil {
		return nil, err
	}
	if err := setEvent(t.stub, EventDeviceRegistered, d); err != nil {
		return nil, err
	}
	return d, nil
}

// RevokeDevice revokes a device from a signed device.revoke action of the
// operator that registered it. Readings the device signs afterwards are
// refused; readings already recorded stay. Revoking twice is a conflict.
func (c *Contract) RevokeDevice(ctx contractapi.TransactionContextInterface, envelopeJSON string) (*Device, error) {
	t, err := newTx(ctx)
	if err != nil {
		return nil, err
	}
	var p deviceRevokePayload
	op, err := t.authenticate(envelopeJSON, ActionDeviceRevoke, RoleOperator, &p)
	if err != nil {
		return nil, err
	}
	if !validID(p.DeviceID) {
		return nil, invalid("deviceId is malformed")
	}
	d, found, err := getDevice(t.stub, p.DeviceID)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, refuse(CodeNotFound, "device %s not found", p.DeviceID)
	}
	if d.OperatorID != op.ID {
		return nil, refuse(CodeForbidden, "only the operator that registered device %s may revoke it", d.ID)
	}
	if d.Status == StatusRevoked {
		return nil, refuse(CodeConflict, "device %s already revoked", d.ID)
	}
	d.Status, d.RevokedTx, d.RevokedAt = StatusRevoked, t.id, t.at
	k, err := key(t.stub, objDevice, d.ID)
	if err != nil {
		return nil, fmt.Errorf("device key: %w", err)
	}
	if err := putJSON(t.stub, k, d); err != nil {
		return nil, err
	}
	if err := t.writeAudit(AuditDeviceRevoked, op.ID, []string{d.PatientID}, d.ID, ""); err != nil {
		return nil, err
	}
	if err := setEvent(t.stub, EventDeviceRevoked, d); err != nil {
		return nil, err
	}
	return d, nil
}

// GetDevice returns the device with that id, or a not_found refusal.
func (c *Contract) GetDevice(ctx contractapi.TransactionContextInterface, id string) (*Device, error) {
	if !validID(id) {
		return nil, invalid("device id is malformed")
	}
	d, found, err := getDevice(ctx.GetStub(), id)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, refuse(CodeNotFound, "device %s not found", id)
	}
	return d, nil
}

func getDevice(stub shim.ChaincodeStubInterface, id string) (*Device, bool, error) {
	k, err := key(stub, objDevice, id)
	if err != nil {
		return nil, false, fmt.Errorf("device key: %w", err)
	}
	var d Device
	found, err := getJSON(stub, k, &d)
	if err != nil || !found {
		return nil, false, err
	}
	return &d, true, nil
}
