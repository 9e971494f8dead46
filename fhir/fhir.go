package fhir

import (
	"encoding/json"
	"fmt"
	"time"

	r4 "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/medprov/medprov/fhir/readaccess"
	"github.com/medprov/medprov/fhir/vocab"
)

// MediaType is the media type of every FHIR answer.
const MediaType = "application/fhir+json"

// BasePath is the FHIR base under the gateway's URL.
const BasePath = readaccess.BasePath

// Extensions medprov adds to FHIR resources.
const (
	// ExtLedger (complex) names the ledger transaction that recorded a
	// resource: txId, block and valid (for a reading), and for a
	// consent or device its revocation's revokedTxId.
	ExtLedger = "urn:medprov:fhir:ledger"
	// ExtSignedReading (complex) carries what a reader needs to check an
	// Observation against the ledger on its own: payload (the exact bytes
	// the device signed), signature (DER ECDSA over their SHA-256),
	// dataHash, cid and devicePublicKey (PEM).
	ExtSignedReading = "urn:medprov:fhir:signed-reading"
	// ExtProvenance references an Observation's Provenance.
	ExtProvenance = "urn:medprov:fhir:provenance"
)

// ledgerObserver is the AuditEvent observer: the ledger recorded every
// event.
const ledgerObserver = "medprov ledger"

// Marshal encodes a resource as FHIR JSON.
func Marshal(resource any) ([]byte, error) {
	b, err := json.Marshal(resource)
	if err != nil {
		return nil, fmt.Errorf("fhir: encode %T: %w", resource, err)
	}
	return b, nil
}

func ptr[T any](v T) *T { return &v }

// instant normalises an RFC 3339 time from the ledger to a FHIR instant
// (UTC); a value that does not parse is returned as it is.
func instant(s string) string {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return s
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func coding(system, code, display string) r4.Coding {
	c := r4.Coding{System: ptr(system), Code: ptr(code)}
	if display != "" {
		c.Display = ptr(display)
	}
	return c
}

func concept(system, code, display string) r4.CodeableConcept {
	return r4.CodeableConcept{Coding: []r4.Coding{coding(system, code, display)}}
}

func identifier(system, value string) *r4.Identifier {
	return &r4.Identifier{System: ptr(system), Value: ptr(value)}
}

// patientRef references a patient by its pseudonymous id.
func patientRef(id string) *r4.Reference {
	return &r4.Reference{Type: ptr("Patient"), Identifier: identifier(vocab.SystemPatient, id)}
}

// actorRef references an actor (researcher, regulator, operator, or a
// patient acting) by its id.
func actorRef(id string) *r4.Reference {
	return &r4.Reference{Identifier: identifier(vocab.SystemActor, id)}
}

// deviceRef references a device's Device resource, with its id.
func deviceRef(id string) *r4.Reference {
	return &r4.Reference{Reference: ptr("Device/" + vocab.ResourceID(id)), Type: ptr("Device"), Identifier: identifier(vocab.SystemDevice, id)}
}

// txRef references a ledger transaction by its id.
func txRef(txID, display string) *r4.Reference {
	r := &r4.Reference{Identifier: identifier(vocab.SystemTx, txID)}
	if display != "" {
		r.Display = ptr(display)
	}
	return r
}

func extString(url, v string) r4.Extension { return r4.Extension{Url: url, ValueString: ptr(v)} }

// ledgerExt is the ExtLedger extension of a transaction, and of the one
// that revoked the record, if any.
func ledgerExt(txID, revokedTx string) r4.Extension {
	e := r4.Extension{Url: ExtLedger, Extension: []r4.Extension{extString("txId", txID)}}
	if revokedTx != "" {
		e.Extension = append(e.Extension, extString("revokedTxId", revokedTx))
	}
	return e
}
