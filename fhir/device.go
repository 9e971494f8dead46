package fhir

import (
	r4 "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/medprov/medprov/fhir/vocab"
	"github.com/medprov/medprov/wire"
)

// Device maps a registered device to a FHIR Device: its id and
// identifier, status (active until revoked, then inactive), type, the
// patient it is bound to and the operator that registered it (owner), and
// the ledger transactions that registered and revoked it.
func Device(d wire.Device) *r4.Device {
	status := r4.FHIRDeviceStatusActive
	if d.Status != wire.StatusActive {
		status = r4.FHIRDeviceStatusInactive
	}
	return &r4.Device{
		Id:         ptr(vocab.ResourceID(d.ID)),
		Identifier: []r4.Identifier{*identifier(vocab.SystemDevice, d.ID)},
		Status:     &status,
		Type:       &r4.CodeableConcept{Coding: []r4.Coding{coding(vocab.SystemDeviceType, d.DeviceType, "")}, Text: ptr(d.DeviceType)},
		Patient:    patientRef(d.PatientID),
		Owner:      actorRef(d.OperatorID),
		Extension:  []r4.Extension{ledgerExt(d.RegisteredTx, d.RevokedTx)},
	}
}
