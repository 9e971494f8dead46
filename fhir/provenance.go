package fhir

import (
	"strconv"

	r4 "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/medprov/medprov/fhir/vocab"
	"github.com/medprov/medprov/wire"
)

// Code systems of a Provenance.
const (
	systemParticipantType = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
	systemDataOperation   = "http://terminology.hl7.org/CodeSystem/v3-DataOperation"
	// systemSignatureType is ASTM E1762-95's signature types, FHIR's
	// Signature.type value set.
	systemSignatureType = "urn:iso-astm:E1762-95:2013"
)

// Provenance maps a reading's provenance to a FHIR Provenance of its
// Observation (the same id, the reading's dataHash): the device that
// signed it as author, the ledger transaction (and block) that recorded
// it, and the device's signature over the SHA-256 of the exact payload
// bytes (Provenance.signature; the bytes travel in the Observation's
// ExtSignedReading).
func Provenance(p wire.ProvenanceReport) *r4.Provenance {
	r := p.Reading
	display := "ledger transaction " + r.TxID
	ledger := ledgerExt(r.TxID, "")
	if p.Tx != nil {
		display += " in block " + strconv.FormatUint(p.Tx.Block, 10)
		block := int(min(p.Tx.Block, uint64(1<<31-1)))
		ledger.Extension = append(ledger.Extension,
			r4.Extension{Url: "block", ValueUnsignedInt: &block},
			r4.Extension{Url: "valid", ValueBoolean: ptr(p.Tx.Valid)})
	}
	ledger.Extension = append(ledger.Extension, extString("dataHash", r.DataHash), extString("cid", r.CID))
	return &r4.Provenance{
		Id: ptr(r.DataHash),
		Target: []r4.Reference{{
			Reference: ptr("Observation/" + r.DataHash), Type: ptr("Observation"),
			Identifier: identifier(vocab.SystemReading, r.ID),
		}},
		OccurredDateTime: ptr(instant(r.MeasuredAt)),
		Recorded:         instant(r.TxTime),
		Activity:         ptr(concept(systemDataOperation, "CREATE", "create")),
		Agent: []r4.ProvenanceAgent{{
			Type: ptr(concept(systemParticipantType, "author", "Author")),
			Who:  *deviceRef(r.DeviceID),
		}},
		Entity: []r4.ProvenanceEntity{{Role: r4.ProvenanceEntityRoleSource, What: *txRef(r.TxID, display)}},
		Signature: []r4.Signature{{
			Type:         []r4.Coding{coding(systemSignatureType, "1.2.840.10065.1.12.1.1", "Author's Signature")},
			When:         instant(r.MeasuredAt),
			Who:          *deviceRef(r.DeviceID),
			TargetFormat: ptr("application/json"),
			Data:         ptr(r.Signature),
		}},
		Extension: []r4.Extension{ledger},
	}
}
