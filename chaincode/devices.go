package chaincode

import (
	"fmt"

	"github.com/medprov/medprov/wire"

	"github.com/hyperledger/fabric-chaincode-go/v2/shim"
	"github.com/hyperledger/fabric-contract-api-go/v2/contractapi"

	"github.com/medprov/medprov/envelope"
)

// RegisterDevice registers a device from a signed device.register action of
// an operator. The device is bound to an active patient actor that has not
// erased its data and to the signing operator. Its key must be a PEM ECDSA
// P-256 key not registered to anyone else. A duplicate device id is a
// conflict.
func (c *Contract) RegisterDevice(ctx contractapi.TransactionContextInterface, envelopeJSON string) (*wire.Device, error) {
	t, err := newTx(ctx)
	if err != nil {
		return nil, err
	}
	var p wire.DeviceRegisterAction
	op, err := t.authenticate(envelopeJSON, wire.ActionDeviceRegister, wire.RoleOperator, &p)
	if err != nil {
		return nil, err
	}
	if !wire.ValidID(p.DeviceID) {
		return nil, invalid("deviceId must match %s", wire.IDPattern)
	}
	if !wire.ValidID(p.PatientID) {
		return nil, invalid("patientId is malformed")
	}
	if !wire.ValidToken(p.DeviceType) {
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
		return nil, refuse(wire.CodeNotFound, "patient %s not found", p.PatientID)
	}
	if patient.Role != wire.RolePatient || patient.Status != wire.StatusActive || patient.ErasedTx != "" {
		return nil, invalid("actor %s is not an active patient", p.PatientID)
	}
	k, err := key(t.stub, objDevice, p.DeviceID)
	if err != nil {
		return nil, fmt.Errorf("device key: %w", err)
	}
	var existing wire.Device
	dup, err := getJSON(t.stub, k, &existing)
	if err != nil {
		return nil, err
	}
	if dup {
		return nil, refuse(wire.CodeConflict, "device %s already registered", p.DeviceID)
	}
	pemKey, err := claimPublicKey(t.stub, pub, "device:"+p.DeviceID)
	if err != nil {
		return nil, err
	}
	d := &wire.Device{
		DocType: "device", ID: p.DeviceID, OperatorID: op.ID, PatientID: patient.ID,
		DeviceType: p.DeviceType, PublicKey: pemKey, Status: wire.StatusActive,
		RegisteredTx: t.id, RegisteredAt: t.at,
	}
	if err := putJSON(t.stub, k, d); err != nil {
		return nil, err
	}
	if err := t.writeAudit(wire.AuditDeviceRegistered, op.ID, []string{d.PatientID}, d.ID, ""); err != nil {
		return nil, err
	}
	if err := setEvent(t.stub, wire.EventDeviceRegistered, d); err != nil {
		return nil, err
	}
	return d, nil
}

// RevokeDevice revokes a device from a signed device.revoke action of the
// operator that registered it. Readings the device signs afterwards are
// refused; readings already recorded stay. Revoking twice is a conflict.
func (c *Contract) RevokeDevice(ctx contractapi.TransactionContextInterface, envelopeJSON string) (*wire.Device, error) {
	t, err := newTx(ctx)
	if err != nil {
		return nil, err
	}
	var p wire.DeviceRevokeAction
	op, err := t.authenticate(envelopeJSON, wire.ActionDeviceRevoke, wire.RoleOperator, &p)
	if err != nil {
		return nil, err
	}
	if !wire.ValidID(p.DeviceID) {
		return nil, invalid("deviceId is malformed")
	}
	d, found, err := getDevice(t.stub, p.DeviceID)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, refuse(wire.CodeNotFound, "device %s not found", p.DeviceID)
	}
	if d.OperatorID != op.ID {
		return nil, refuse(wire.CodeForbidden, "only the operator that registered device %s may revoke it", d.ID)
	}
	if d.Status == wire.StatusRevoked {
		return nil, refuse(wire.CodeConflict, "device %s already revoked", d.ID)
	}
	d.Status, d.RevokedTx, d.RevokedAt = wire.StatusRevoked, t.id, t.at
	k, err := key(t.stub, objDevice, d.ID)
	if err != nil {
		return nil, fmt.Errorf("device key: %w", err)
	}
	if err := putJSON(t.stub, k, d); err != nil {
		return nil, err
	}
	if err := t.writeAudit(wire.AuditDeviceRevoked, op.ID, []string{d.PatientID}, d.ID, ""); err != nil {
		return nil, err
	}
	if err := setEvent(t.stub, wire.EventDeviceRevoked, d); err != nil {
		return nil, err
	}
	return d, nil
}

// GetDevice returns the device with that id, or a not_found refusal.
func (c *Contract) GetDevice(ctx contractapi.TransactionContextInterface, id string) (*wire.Device, error) {
	if !wire.ValidID(id) {
		return nil, invalid("device id is malformed")
	}
	d, found, err := getDevice(ctx.GetStub(), id)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, refuse(wire.CodeNotFound, "device %s not found", id)
	}
	return d, nil
}

func getDevice(stub shim.ChaincodeStubInterface, id string) (*wire.Device, bool, error) {
	k, err := key(stub, objDevice, id)
	if err != nil {
		return nil, false, fmt.Errorf("device key: %w", err)
	}
	var d wire.Device
	found, err := getJSON(stub, k, &d)
	if err != nil || !found {
		return nil, false, err
	}
	return &d, true, nil
}
