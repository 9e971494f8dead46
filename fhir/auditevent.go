package fhir

import (
	"strings"

	r4 "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/medprov/medprov/fhir/vocab"
	"github.com/medprov/medprov/wire"
)

// Code systems of an AuditEvent (IHE BALP's choices).
const (
	systemAuditEventType    = "http://terminology.hl7.org/CodeSystem/audit-event-type"
	systemRestfulInteract   = "http://hl7.org/fhir/restful-interaction"
	systemSecurityRoleType  = "http://terminology.hl7.org/CodeSystem/extra-security-role-type"
	systemSecuritySource    = "http://terminology.hl7.org/CodeSystem/security-source-type"
	systemAuditEntityType   = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
	systemObjectRole        = "http://terminology.hl7.org/CodeSystem/object-role"
	roleCodePatient         = "1"
	roleCodeDomainResource  = "4"
	roleCodeSecurityResouce = "13"
	roleCodeQuery           = "24"
)

// Audited is one AuditEvent with what searches filter it by.
type Audited struct {
	Event *r4.AuditEvent
	// Recorded is when the ledger recorded it (RFC 3339, as the ledger
	// writes it); ActorID is who acted.
	Recorded, ActorID string
}

// AccessAuditEvent maps an access decision, granted or denied, to a FHIR
// AuditEvent in IHE BALP's query pattern: a RESTful search (action E) by
// the requesting actor (agent, requestor, information recipient, with the
// purpose of use), recorded by the ledger (source) at the transaction
// time; entities: the patient, the request (the access id, data types and
// window), the consent that decided it and each reading released or
// withheld; outcome 0 when granted, 4 with the reason when denied. The id
// is the deciding transaction's.
func AccessAuditEvent(ev wire.AccessEvent) Audited {
	outcome, desc := r4.AuditEventOutcome0, ""
	if ev.Decision != wire.DecisionGranted {
		outcome, desc = r4.AuditEventOutcome4, "denied: "+ev.Reason
	}
	purpose := concept(vocab.SystemPurpose, ev.Purpose, "")
	entities := []r4.AuditEventEntity{
		patientEntity(ev.PatientID),
		{
			What:        &r4.Reference{Identifier: identifier(vocab.SystemAccess, ev.ID)},
			Type:        ptr(coding(systemAuditEntityType, "2", "System Object")),
			Role:        ptr(coding(systemObjectRole, roleCodeQuery, "Query")),
			Description: ptr("data types " + strings.Join(ev.DataTypes, ",") + " measured " + ev.From + " to " + ev.To),
		},
		txEntity(ev.TxID),
	}
	if ev.ConsentID != "" {
		entities = append(entities, r4.AuditEventEntity{
			What: &r4.Reference{Reference: ptr("Consent/" + vocab.ResourceID(ev.ConsentID)), Type: ptr("Consent"), Identifier: identifier(vocab.SystemConsent, ev.ConsentID)},
			Type: ptr(coding(systemAuditEntityType, "2", "System Object")),
			Role: ptr(coding(systemObjectRole, roleCodeSecurityResouce, "Security Resource")),
		})
	}
	withheld := map[string]string{}
	for _, w := range ev.Withheld {
		withheld[w.ReadingID] = w.Reason
	}
	for _, id := range ev.ReadingIDs {
		e := r4.AuditEventEntity{
			What: &r4.Reference{Identifier: identifier(vocab.SystemReading, id)},
			Type: ptr(coding(systemAuditEntityType, "2", "System Object")),
			Role: ptr(coding(systemObjectRole, roleCodeDomainResource, "Domain Resource")),
		}
		if why, ok := withheld[id]; ok {
			e.Description = ptr("withheld: " + why)
		}
		entities = append(entities, e)
	}
	a := &r4.AuditEvent{
		Id:             ptr(vocab.ResourceID(ev.TxID)),
		Type:           coding(systemAuditEventType, "rest", "RESTful Operation"),
		Subtype:        []r4.Coding{coding(systemRestfulInteract, "search-type", "search type")},
		Action:         ptr(r4.AuditEventActionE),
		Recorded:       instant(ev.TxTime),
		Outcome:        &outcome,
		PurposeOfEvent: []r4.CodeableConcept{purpose},
		Agent: []r4.AuditEventAgent{{
			Type:         ptr(concept(systemSecurityRoleType, "humanuser", "human user")),
			Role:         []r4.CodeableConcept{concept(systemParticipation, "IRCP", "information recipient")},
			Who:          actorRef(ev.ActorID),
			Requestor:    true,
			PurposeOfUse: []r4.CodeableConcept{purpose},
		}},
		Source: ledgerSource(),
		Entity: entities,
	}
	if desc != "" {
		a.OutcomeDesc = ptr(desc)
	}
	return Audited{Event: a, Recorded: ev.TxTime, ActorID: ev.ActorID}
}

// ConsentAuditEvents maps each committed change of a consent (its grant,
// and its revocation) to a FHIR AuditEvent: a RESTful create (grant) or
// update (revoke) of the Consent by the patient, recorded by the ledger,
// with the patient, the Consent and the transaction as entities. The id
// is the changing transaction's.
func ConsentAuditEvents(c wire.Consent) []Audited {
	changes := c.History
	if len(changes) == 0 { // a consent read without its history
		changes = []wire.ConsentChange{{TxID: c.GrantedTx, Timestamp: c.GrantedAt, Status: wire.StatusActive}}
		if c.RevokedTx != "" {
			changes = append(changes, wire.ConsentChange{TxID: c.RevokedTx, Timestamp: c.RevokedAt, Status: wire.StatusRevoked})
		}
	}
	out := make([]Audited, 0, len(changes))
	for i, ch := range changes {
		action, sub, subDisplay := r4.AuditEventActionC, "create", "create"
		if i > 0 || ch.Status != wire.StatusActive {
			action, sub, subDisplay = r4.AuditEventActionU, "update", "update"
		}
		a := &r4.AuditEvent{
			Id:       ptr(vocab.ResourceID(ch.TxID)),
			Type:     coding(systemAuditEventType, "rest", "RESTful Operation"),
			Subtype:  []r4.Coding{coding(systemRestfulInteract, sub, subDisplay)},
			Action:   ptr(action),
			Recorded: instant(ch.Timestamp),
			Outcome:  ptr(r4.AuditEventOutcome0),
			Agent: []r4.AuditEventAgent{{
				Type:      ptr(concept(systemSecurityRoleType, "humanuser", "human user")),
				Who:       actorRef(c.PatientID),
				Requestor: true,
			}},
			Source: ledgerSource(),
			Entity: []r4.AuditEventEntity{
				patientEntity(c.PatientID),
				{
					What:        &r4.Reference{Reference: ptr("Consent/" + vocab.ResourceID(c.ID)), Type: ptr("Consent"), Identifier: identifier(vocab.SystemConsent, c.ID)},
					Type:        ptr(coding(systemAuditEntityType, "2", "System Object")),
					Role:        ptr(coding(systemObjectRole, roleCodeDomainResource, "Domain Resource")),
					Description: ptr("consent " + ch.Status),
				},
				txEntity(ch.TxID),
			},
		}
		out = append(out, Audited{Event: a, Recorded: ch.Timestamp, ActorID: c.PatientID})
	}
	return out
}

func patientEntity(id string) r4.AuditEventEntity {
	return r4.AuditEventEntity{
		What: patientRef(id),
		Type: ptr(coding(systemAuditEntityType, "1", "Person")),
		Role: ptr(coding(systemObjectRole, roleCodePatient, "Patient")),
	}
}

func txEntity(txID string) r4.AuditEventEntity {
	return r4.AuditEventEntity{
		What: txRef(txID, "ledger transaction"),
		Type: ptr(coding(systemAuditEntityType, "2", "System Object")),
	}
}

func ledgerSource() r4.AuditEventSource {
	return r4.AuditEventSource{
		Observer: r4.Reference{Display: ptr(ledgerObserver)},
		Type:     []r4.Coding{coding(systemSecuritySource, "4", "Application Server")},
	}
}
