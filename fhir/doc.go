// Package fhir is medprov's HL7 FHIR R4 view: it maps the ledger's
// records (consents, access events, readings, their provenance, devices)
// to FHIR resources, builds the searchset and collection Bundles, the
// CapabilityStatement and OperationOutcomes the gateway answers under
// /fhir/R4, reads the search parameters it supports, and exports a
// patient's records as one collection Bundle through any FHIR reader.
//
// FHIR is another view of the same data, never a side door: the gateway
// authenticates FHIR requests exactly as v1 reads (a signed GET over the
// FHIR request's own method and path, or the portal's session) and reads
// through the same authorising code paths as v1; this package holds no
// authorisation of its own. Observation reads release plaintext only after
// the ledger granted and logged them (see package readaccess).
//
// Resources are built with the generated R4 models of
// github.com/samply/golang-fhir-models, plain Go structs with FHIR's JSON
// names and code enums. Resource ids: an Observation and its Provenance
// are identified by the reading's dataHash; other resources by their
// ledger id (vocab.ResourceID). Patients and actors are referenced
// logically, by identifier (vocab.SystemPatient, vocab.SystemActor): they
// are pseudonyms, and the server serves no Patient resources.
package fhir
