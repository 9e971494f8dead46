package fhir

import (
	r4 "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/medprov/medprov/fhir/readaccess"
)

// securityDoc is how every request but metadata authenticates.
const securityDoc = "Every request except metadata is authenticated as a medprov v1 read: " +
	"either a signed request, header X-Medprov-Signature = base64 of the actor's signed envelope of an http.get action " +
	"{action, actorId, issuedAt, nonce, method, path} over this request's own method and path with query " +
	"(ECDSA P-256 or a passkey), or the portal's session cookie. Authorisation is v1's: a patient reads its own " +
	"records, a regulator any patient's; researchers read Observations their consents grant, nothing else. " +
	"An Observation read releases readings only after the ledger decided and logged it: it must be signed " +
	"(a session cannot sign), and the signature is the access request the chaincode verifies."

// createDoc is how a device creates an Observation.
const createDoc = "FHIR ingest, for devices: the body is not a bare Observation but the device's signed envelope, " +
	"exactly as for POST /v1/readings: {\"payload\": base64 of the exact bytes of a FHIR R4 Observation, " +
	"\"signature\": base64 of the device's DER ECDSA P-256 signature over their SHA-256}. The Observation holds " +
	"status final, one identifier (system urn:medprov:seq, value the device's seq), device (identifier " +
	"urn:medprov:device|<deviceId>, or reference Device/<deviceId>), effectiveDateTime, code (one LOINC code of a " +
	"reading type medprov knows), valueQuantity (value, system http://unitsofmeasure.org, UCUM code, optional unit), " +
	"optional category, and one extension urn:medprov:fhir:nonce (valueBase64Binary, at least 16 random bytes); " +
	"nothing else. It takes the reading path of POST /v1/readings (signature, rate limit, pushback, sealing, " +
	"durable queue, batching onto the ledger), whose dataHash is the SHA-256 of the signed bytes and the " +
	"Observation's id. Ingest is asynchronous: 202 Accepted once the reading is durably queued; with ?wait=commit, " +
	"201 Created with Location once the ledger recorded it (202 if it did not in time); 200 OK for a reading " +
	"already submitted (the same bytes again). Each answers an OperationOutcome (information) naming the reading " +
	"id and its status. Errors: 400 invalid, 401 bad signature, 403 unknown or revoked device, 409 another " +
	"reading with the same seq, 413 too large, 429 or 503 with Retry-After (rate limit, pushback)."

// CapabilityDate is when what Capability states last changed.
const CapabilityDate = "2026-12-02"

// Capability returns the server's CapabilityStatement at base (absolute
// FHIR base URL; "" to leave it out): exactly the resources, interactions
// and search parameters the gateway serves.
func Capability(base string) *r4.CapabilityStatement {
	sp := func(name string, typ r4.SearchParamType, doc string) r4.CapabilityStatementRestResourceSearchParam {
		return r4.CapabilityStatementRestResourceSearchParam{Name: name, Type: typ, Documentation: ptr(doc)}
	}
	search := r4.CapabilityStatementRestResourceInteraction{Code: r4.TypeRestfulInteractionSearchType}
	resources := []r4.CapabilityStatementRestResource{
		{
			Type: r4.ResourceTypeConsent, Interaction: []r4.CapabilityStatementRestResourceInteraction{search},
			Documentation: ptr("A patient's consents (IHE PCF style privacy consents), readable by the patient and regulators."),
			SearchParam: []r4.CapabilityStatementRestResourceSearchParam{
				sp(ParamPatient, r4.SearchParamTypeReference, "Required. The patient's id, or Patient/<id>."),
			},
		},
		{
			Type: r4.ResourceTypeAuditEvent, Interaction: []r4.CapabilityStatementRestResourceInteraction{search},
			Documentation: ptr("Every access decision on a patient's data, granted and denied, and every consent change, " +
				"in IHE BALP's patterns; readable by the patient and regulators (not researchers)."),
			SearchParam: []r4.CapabilityStatementRestResourceSearchParam{
				sp(ParamPatient, r4.SearchParamTypeReference, "Required. The patient's id, or Patient/<id>."),
				sp(ParamDate, r4.SearchParamTypeDate, "When recorded: ge and le bounds, or a day (YYYY-MM-DD) or instant."),
				sp(ParamAgent, r4.SearchParamTypeReference, "The acting actor's id."),
			},
		},
		{
			Type: r4.ResourceTypeProvenance, Interaction: []r4.CapabilityStatementRestResourceInteraction{search},
			Documentation: ptr("A reading's provenance: its device (author), recording transaction and block, and the device's signature; " +
				"readable by the patient and regulators."),
			SearchParam: []r4.CapabilityStatementRestResourceSearchParam{
				sp(ParamTarget, r4.SearchParamTypeReference, "Observation/<id> (comma-separated for several); or, chained, "+
					ParamTargetPatient+"=<patient id> for every reading of a patient."),
			},
		},
		{
			Type: r4.ResourceTypeDevice, Interaction: []r4.CapabilityStatementRestResourceInteraction{search},
			Documentation: ptr("The devices bound to a patient; readable by the patient, regulators and the devices' operator."),
			SearchParam: []r4.CapabilityStatementRestResourceSearchParam{
				sp(ParamPatient, r4.SearchParamTypeReference, "Required. The patient's id, or Patient/<id>."),
			},
		},
		{
			Type: r4.ResourceTypeObservation,
			Interaction: []r4.CapabilityStatementRestResourceInteraction{
				{Code: r4.TypeRestfulInteractionRead, Documentation: ptr("Observation/<id>?purpose=<purpose>; id is the reading's dataHash.")},
				search,
				{Code: r4.TypeRestfulInteractionCreate, Documentation: ptr(createDoc)},
			},
			Documentation: ptr("Readings, created by devices (create: a signed FHIR Observation) and released as in v1: the signed read is the access request, decided by the patient's consent " +
				"(a patient's own readings need none) and logged on the ledger before anything is released. " +
				"Codes are LOINC where one exists, and the medprov reading type; units UCUM. A searchset carries total only " +
				"when it holds every match; further pages follow the next link, a new signed read."),
			SearchParam: []r4.CapabilityStatementRestResourceSearchParam{
				sp(readaccess.ParamPatient, r4.SearchParamTypeReference, "The patient's id, or Patient/<id>; with code."),
				sp(readaccess.ParamCode, r4.SearchParamTypeToken, "Required with patient. LOINC codes (http://loinc.org|8867-4) or medprov reading types (urn:medprov:reading-type|ecg), comma-separated."),
				sp(readaccess.ParamDate, r4.SearchParamTypeDate, "Measured: ge and le bounds, or a day or instant. Without, the window is unbounded, which no consent covers."),
				sp(readaccess.ParamPurpose, r4.SearchParamTypeToken, "Required on every Observation read: the purpose of use the patient's consent names."),
				sp(readaccess.ParamID, r4.SearchParamTypeToken, "One reading by its Observation id."),
				sp(readaccess.ParamIdentifier, r4.SearchParamTypeToken, "One reading by its reading id, urn:medprov:reading|<deviceId>:<seq>."),
			},
		},
	}
	cs := &r4.CapabilityStatement{
		Name:        ptr("MedprovFHIR"),
		Title:       ptr("medprov FHIR R4 view"),
		Status:      r4.PublicationStatusActive,
		Date:        CapabilityDate,
		Description: ptr("FHIR R4 view of the medprov provenance ledger: consents, audit events, provenance, devices and readings."),
		Kind:        r4.CapabilityStatementKindInstance,
		Software:    &r4.CapabilityStatementSoftware{Name: "medprov"},
		Implementation: &r4.CapabilityStatementImplementation{
			Description: "medprov gateway",
		},
		FhirVersion: r4.FHIRVersion4_0_1,
		Format:      []string{"json", MediaType},
		Rest: []r4.CapabilityStatementRest{{
			Mode:     r4.RestfulCapabilityModeServer,
			Security: &r4.CapabilityStatementRestSecurity{Cors: ptr(false), Description: ptr(securityDoc)},
			Resource: resources,
			SearchParam: []r4.CapabilityStatementRestResourceSearchParam{
				sp(ParamCount, r4.SearchParamTypeNumber, "Page size, 1..1000 (default 100); for Observation, the readings released at most."),
				sp(ParamOffset, r4.SearchParamTypeNumber, "Where the page starts (paging links carry it); Observation pages follow _cursor instead."),
			},
		}},
	}
	if base != "" {
		cs.Implementation.Url = ptr(base)
	}
	return cs
}
