package payload_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/medprov/medprov/payload"
	"github.com/medprov/medprov/wire"
)

const nonce = "AAECAwQFBgcICQoLDA0ODw=="

// fhirDoc is a FHIR Observation a device may sign: heart rate 71 bpm,
// seq 7 of dev-1.
const fhirDoc = `{"resourceType":"Observation",` +
	`"identifier":[{"system":"urn:medprov:seq","value":"7"}],` +
	`"status":"final",` +
	`"category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}],` +
	`"code":{"coding":[{"system":"http://loinc.org","code":"8867-4","display":"Heart rate"},{"system":"urn:medprov:reading-type","code":"heart_rate"}],"text":"Heart rate"},` +
	`"effectiveDateTime":"2026-03-01T10:00:00+01:00",` +
	`"device":{"reference":"Device/dev-1","type":"Device","identifier":{"system":"urn:medprov:device","value":"dev-1"}},` +
	`"valueQuantity":{"value":71,"unit":"bpm","system":"http://unitsofmeasure.org","code":"/min"},` +
	`"extension":[{"url":"urn:medprov:fhir:nonce","valueBase64Binary":"` + nonce + `"}]}`

// medprovDoc says what fhirDoc says, in the medprov form.
const medprovDoc = `{"deviceId":"dev-1","seq":7,"type":"heart_rate","unit":"/min","value":71,` +
	`"measuredAt":"2026-03-01T10:00:00+01:00","nonce":"` + nonce + `"}`

func TestParseReadsBothForms(t *testing.T) {
	want := wire.ReadingPayload{DeviceID: "dev-1", Seq: 7, Type: "heart_rate", Unit: "/min", Value: json.RawMessage("71"),
		MeasuredAt: "2026-03-01T10:00:00+01:00", Nonce: nonce}
	at := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	tests := []struct {
		name     string
		doc      string
		form     payload.Form
		unitText string
	}{
		{"the medprov reading JSON is read", medprovDoc, payload.FormMedprov, ""},
		{"a FHIR Observation is read as the same reading", fhirDoc, payload.FormFHIR, "bpm"},
		{"a FHIR Observation with the device by reference only is read", strings.Replace(fhirDoc,
			`,"type":"Device","identifier":{"system":"urn:medprov:device","value":"dev-1"}}`, `}`, 1), payload.FormFHIR, "bpm"},
		{"a FHIR Observation with the device by identifier only, no category, no unit text, is read", strings.NewReplacer(
			`"reference":"Device/dev-1","type":"Device",`, ``,
			`"unit":"bpm",`, ``,
			`"category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}],`, ``,
		).Replace(fhirDoc), payload.FormFHIR, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := payload.Parse([]byte(tt.doc))
			require.NoError(t, err)
			assert.Equal(t, want, got.ReadingPayload)
			assert.True(t, at.Equal(got.Measured), "measured %s", got.Measured)
			assert.Equal(t, tt.form, got.Form)
			assert.Equal(t, tt.unitText, got.UnitText)
		})
	}
}

func TestParseRefusesMalformedFHIR(t *testing.T) {
	tests := []struct {
		name string
		doc  string
	}{
		{"an unknown element is refused", strings.Replace(fhirDoc, `"status":"final"`, `"status":"final","subject":{"reference":"Patient/p"}`, 1)},
		{"an unknown member inside an element is refused", strings.Replace(fhirDoc, `"code":"/min"`, `"code":"/min","comparator":"<"`, 1)},
		{"a duplicate member is refused", strings.Replace(fhirDoc, `"status":"final"`, `"status":"final","status":"final"`, 1)},
		{"a case-folded resourceType is refused", strings.Replace(fhirDoc, `"resourceType"`, `"ResourceType"`, 1)},
		{"another resource type is refused", strings.Replace(fhirDoc, `"resourceType":"Observation"`, `"resourceType":"Device"`, 1)},
		{"a status other than final is refused", strings.Replace(fhirDoc, `"final"`, `"preliminary"`, 1)},
		{"null is refused", strings.Replace(fhirDoc, `"text":"Heart rate"`, `"text":null`, 1)},
		{"an empty string is refused", strings.Replace(fhirDoc, `"text":"Heart rate"`, `"text":""`, 1)},
		{"a missing nonce is refused", strings.Replace(fhirDoc, `,"extension":[{"url":"urn:medprov:fhir:nonce","valueBase64Binary":"`+nonce+`"}]`, ``, 1)},
		{"a short nonce is refused", strings.Replace(fhirDoc, nonce, "AAECAw==", 1)},
		{"a second extension is refused", strings.Replace(fhirDoc, `"extension":[`, `"extension":[{"url":"urn:x","valueBase64Binary":"`+nonce+`"},`, 1)},
		{"a missing seq is refused", strings.Replace(fhirDoc, `"identifier":[{"system":"urn:medprov:seq","value":"7"}],`, ``, 1)},
		{"a seq with a leading zero is refused", strings.Replace(fhirDoc, `"value":"7"`, `"value":"07"`, 1)},
		{"a seq above 2^53-1 is refused", strings.Replace(fhirDoc, `"value":"7"`, `"value":"9007199254740992"`, 1)},
		{"a second identifier is refused", strings.Replace(fhirDoc, `"identifier":[`, `"identifier":[{"system":"urn:medprov:seq","value":"8"},`, 1)},
		{"a device reference and identifier that disagree are refused", strings.Replace(fhirDoc, `"Device/dev-1"`, `"Device/dev-2"`, 1)},
		{"a missing device is refused", strings.Replace(fhirDoc, `"device":{"reference":"Device/dev-1","type":"Device","identifier":{"system":"urn:medprov:device","value":"dev-1"}},`, ``, 1)},
		{"a LOINC code medprov does not map is refused", strings.Replace(fhirDoc, `"8867-4"`, `"1234-5"`, 1)},
		{"two LOINC codes are refused", strings.Replace(fhirDoc, `"coding":[{"system":"http://loinc.org"`, `"coding":[{"system":"http://loinc.org","code":"59408-5"},{"system":"http://loinc.org"`, 1)},
		{"a medprov type that is not the LOINC code's is refused", strings.Replace(fhirDoc, `"code":"heart_rate"`, `"code":"spo2"`, 1)},
		{"a category that is not the code's is refused", strings.Replace(fhirDoc, `"vital-signs"`, `"laboratory"`, 1)},
		{"a panel is refused", strings.Replace(strings.Replace(fhirDoc, `"8867-4"`, `"85354-9"`, 1), `"code":"heart_rate"`, `"code":"blood_pressure"`, 1)},
		{"a unit that is not the code's type's is refused", strings.Replace(fhirDoc, `"unit":"bpm","system":"http://unitsofmeasure.org","code":"/min"`, `"system":"http://unitsofmeasure.org","code":"kg"`, 1)},
		{"a unit text that does not stand for its code is refused", strings.Replace(fhirDoc, `"unit":"bpm"`, `"unit":"kg"`, 1)},
		{"a unit outside UCUM is refused", strings.Replace(fhirDoc, `"system":"http://unitsofmeasure.org"`, `"system":"urn:x"`, 1)},
		{"a value that is no number is refused", strings.Replace(fhirDoc, `"value":71`, `"value":"71"`, 1)},
		{"a date without a time is refused", strings.Replace(fhirDoc, `"2026-03-01T10:00:00+01:00"`, `"2026-03-01"`, 1)},
		{"a time before 2000 is refused", strings.Replace(fhirDoc, `"2026-03-01T10:00:00+01:00"`, `"1970-01-01T00:00:00Z"`, 1)},
		{"data after the resource is refused", fhirDoc + "{}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := payload.Parse([]byte(tt.doc))
			var we *wire.Error
			require.ErrorAs(t, err, &we)
			assert.Equal(t, wire.CodeInvalid, we.Code)
		})
	}
}

func TestParseRefusesMixedForms(t *testing.T) {
	tests := []struct {
		name string
		doc  string
	}{
		{"a medprov reading with a resourceType is refused", strings.Replace(medprovDoc, `{`, `{"resourceType":"Observation",`, 1)},
		{"a FHIR Observation without resourceType is refused", strings.Replace(fhirDoc, `"resourceType":"Observation",`, ``, 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := payload.Parse([]byte(tt.doc))
			var we *wire.Error
			require.ErrorAs(t, err, &we)
			assert.Equal(t, wire.CodeInvalid, we.Code)
		})
	}
}

func TestFHIRIsReadBack(t *testing.T) {
	tests := []struct {
		name, typ, unit, value string
		wantUnit               string
	}{
		{"heart rate in bpm", "heart_rate", "bpm", "64", "/min"},
		{"temperature in Cel", "temperature", "Cel", "36.8", "Cel"},
		{"temperature in degF", "temperature", "degF", "98.2", "[degF]"},
		{"glucose in mmol/L", "glucose", "mmol/L", "5.4", "mmol/L"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := wire.ReadingPayload{DeviceID: "dev_1", Seq: 3, Type: tt.typ, Unit: tt.unit, Value: json.RawMessage(tt.value),
				MeasuredAt: "2026-03-01T09:00:00Z", Nonce: nonce}
			b, err := payload.FHIR(p)
			require.NoError(t, err)
			got, err := payload.Parse(b)
			require.NoError(t, err)
			assert.Equal(t, payload.FormFHIR, got.Form)
			want := p
			want.Unit = tt.wantUnit
			assert.Equal(t, want, got.ReadingPayload)
			assert.Equal(t, tt.unit, got.UnitText)
		})
	}
	_, err := payload.FHIR(wire.ReadingPayload{DeviceID: "dev-1", Seq: 1, Type: "ecg", Unit: "mV", Value: json.RawMessage("[1]"),
		MeasuredAt: "2026-03-01T09:00:00Z", Nonce: nonce})
	assert.Error(t, err, "a type without a LOINC code has no FHIR form")
}
