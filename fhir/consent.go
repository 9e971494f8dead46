package fhir

import (
	r4 "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/medprov/medprov/fhir/vocab"
	"github.com/medprov/medprov/wire"
)

// Code systems of a Consent (IHE PCF's choices for a privacy consent).
const (
	systemConsentScope    = "http://terminology.hl7.org/CodeSystem/consentscope"
	systemActCode         = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
	systemParticipation   = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
	loincPatientConsent   = "59284-0"
	displayPatientConsent = "Patient Consent"
)

// Consent maps a medprov consent to a FHIR Consent: a patient-privacy
// consent, active until revoked (then inactive), by which the patient
// permits the grantee (provision.actor, information recipient) to use the
// listed data types (provision.code: LOINC where one exists, and the
// medprov type) for the purpose (provision.purpose) within the consent's
// window (provision.period). The ledger transactions that granted and
// revoked it are in its ExtLedger extension.
func Consent(c wire.Consent) *r4.Consent {
	status := r4.ConsentStateActive
	if c.Status != wire.StatusActive {
		status = r4.ConsentStateInactive
	}
	codes := make([]r4.CodeableConcept, 0, len(c.DataTypes))
	for _, t := range c.DataTypes {
		codes = append(codes, TypeConcept(t))
	}
	return &r4.Consent{
		Id:         ptr(vocab.ResourceID(c.ID)),
		Identifier: []r4.Identifier{*identifier(vocab.SystemConsent, c.ID)},
		Status:     status,
		Scope:      concept(systemConsentScope, "patient-privacy", "Privacy Consent"),
		Category:   []r4.CodeableConcept{concept(vocab.SystemLOINC, loincPatientConsent, displayPatientConsent)},
		Patient:    patientRef(c.PatientID),
		DateTime:   ptr(instant(c.GrantedAt)),
		Performer:  []r4.Reference{*patientRef(c.PatientID)},
		PolicyRule: ptr(concept(systemActCode, "OPTIN", "opt-in")),
		Provision: &r4.ConsentProvision{
			Type:   ptr(r4.ConsentProvisionTypePermit),
			Period: &r4.Period{Start: ptr(instant(c.NotBefore)), End: ptr(instant(c.NotAfter))},
			Actor: []r4.ConsentProvisionActor{{
				Role:      concept(systemParticipation, "IRCP", "information recipient"),
				Reference: *actorRef(c.GranteeID),
			}},
			Purpose: []r4.Coding{coding(vocab.SystemPurpose, c.Purpose, "")},
			Code:    codes,
		},
		Extension: []r4.Extension{ledgerExt(c.GrantedTx, c.RevokedTx)},
	}
}
