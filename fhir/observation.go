package fhir

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	r4 "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/medprov/medprov/fhir/vocab"
	"github.com/medprov/medprov/payload"
	"github.com/medprov/medprov/wire"
)

// Observation maps a reading released to the caller (the exact payload its
// device signed, with the ledger's evidence) to a FHIR Observation of
// patientID: id the reading's dataHash, identifier its reading id, code
// its LOINC code where one exists and its medprov type, the value with
// its UCUM unit, effective at measuredAt, the device and the patient
// (pseudonymous), and extensions linking its Provenance and carrying the
// signed bytes, so a receiver can check the reading itself. A reading the
// device signed as a FHIR Observation (package payload) reads back with
// what it signed: its code, its value and unit as written, its UCUM code.
func Observation(rr wire.ReleasedReading, patientID string) (*r4.Observation, error) {
	p, err := payload.Parse(rr.Payload)
	if err != nil {
		return nil, fmt.Errorf("fhir: released payload of %s: %w", rr.ReadingID, err)
	}
	o := &r4.Observation{
		Id:                ptr(rr.DataHash),
		Identifier:        []r4.Identifier{*identifier(vocab.SystemReading, rr.ReadingID)},
		Status:            r4.ObservationStatusFinal,
		Code:              TypeConcept(p.Type),
		Subject:           patientRef(patientID),
		EffectiveDateTime: ptr(p.Measured.UTC().Format(time.RFC3339Nano)),
		Device:            deviceRef(p.DeviceID),
		Extension: []r4.Extension{
			{Url: ExtProvenance, ValueReference: &r4.Reference{Reference: ptr("Provenance/" + rr.DataHash), Type: ptr("Provenance")}},
			{Url: ExtSignedReading, Extension: []r4.Extension{
				{Url: "payload", ValueBase64Binary: ptr(base64.StdEncoding.EncodeToString(rr.Payload))},
				{Url: "signature", ValueBase64Binary: ptr(base64.StdEncoding.EncodeToString(rr.Signature))},
				extString("dataHash", rr.DataHash),
				extString("cid", rr.CID),
				extString("devicePublicKey", rr.DevicePublicKey),
			}},
		},
	}
	rt, known := vocab.TypeOf(p.Type)
	if known && rt.Category != "" {
		o.Category = []r4.CodeableConcept{concept(vocab.SystemObservationCategory, rt.Category, "")}
	}
	setValue(o, p, rt)
	return o, nil
}

// TypeConcept is the code of a reading type: its LOINC code where one
// exists, and its medprov type.
func TypeConcept(typ string) r4.CodeableConcept {
	cc := r4.CodeableConcept{Text: ptr(typ)}
	if rt, ok := vocab.TypeOf(typ); ok {
		cc.Coding = append(cc.Coding, coding(vocab.SystemLOINC, rt.LOINC, rt.Display))
		cc.Text = ptr(rt.Display)
	}
	cc.Coding = append(cc.Coding, coding(vocab.SystemReadingType, typ, ""))
	return cc
}

// quantity is a value in the device's unit, with its UCUM code when
// medprov knows one.
func quantity(v json.Number, unit string) *r4.Quantity {
	q := &r4.Quantity{Value: &v, Unit: ptr(unit)}
	if code, ok := vocab.UCUM(unit); ok {
		q.System, q.Code = ptr(vocab.SystemUCUM), ptr(code)
	}
	return q
}

// unitOf is the unit an Observation shows: the human-readable unit a
// FHIR-signed reading wrote, else the reading's unit.
func unitOf(p payload.Reading) string {
	if p.UnitText != "" {
		return p.UnitText
	}
	return p.Unit
}

// setValue sets the Observation's value: a number as a Quantity; an
// object of numbers as components (LOINC-coded where known); anything
// else as its JSON text.
func setValue(o *r4.Observation, p payload.Reading, rt vocab.ReadingType) {
	if n, ok := number(p.Value); ok {
		o.ValueQuantity = quantity(n, unitOf(p))
		return
	}
	var members map[string]json.RawMessage
	if json.Unmarshal(p.Value, &members) == nil && len(members) > 0 {
		comps := make([]r4.ObservationComponent, 0, len(members))
		for _, k := range slices.Sorted(maps.Keys(members)) {
			n, ok := number(members[k])
			if !ok {
				comps = nil
				break
			}
			cc := r4.CodeableConcept{Text: ptr(k)}
			if c, ok := rt.Components[k]; ok {
				cc.Coding = []r4.Coding{coding(vocab.SystemLOINC, c.LOINC, c.Display)}
			}
			comps = append(comps, r4.ObservationComponent{Code: cc, ValueQuantity: quantity(n, p.Unit)})
		}
		if comps != nil {
			o.Component = comps
			return
		}
	}
	var compact bytes.Buffer
	if json.Compact(&compact, p.Value) != nil {
		compact.Reset()
		compact.Write(p.Value)
	}
	o.ValueString = ptr(compact.String())
}

// number reports whether raw is a JSON number, and returns it as written.
func number(raw json.RawMessage) (json.Number, bool) {
	s := strings.TrimSpace(string(raw))
	var n json.Number
	if s == "" || (s[0] != '-' && (s[0] < '0' || s[0] > '9')) || json.Unmarshal([]byte(s), &n) != nil {
		return "", false
	}
	return n, true
}
