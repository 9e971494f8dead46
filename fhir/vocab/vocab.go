// Package vocab is the FHIR vocabulary medprov speaks: the identifier and
// code systems of medprov's own ids and tokens, the LOINC code, UCUM unit
// and observation category of each reading type that has them, and how
// ledger ids become FHIR resource ids. The FHIR views (package fhir) and
// the chaincode (which derives an access request from a signed FHIR
// Observation read, package readaccess) share it, so both read a code the
// same way. It is deterministic and imports no other medprov package.
package vocab

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"
)

// Code and identifier systems of other authorities.
const (
	SystemLOINC = "http://loinc.org"
	SystemUCUM  = "http://unitsofmeasure.org"
	// SystemObservationCategory is HL7's observation category code system.
	SystemObservationCategory = "http://terminology.hl7.org/CodeSystem/observation-category"
)

// Identifier and code systems of medprov's own ids and tokens. Their
// values are exactly the ledger's: a reading id "<deviceId>:<seq>", a
// pseudonymous patient id, a transaction id, a reading type token.
const (
	SystemReading     = "urn:medprov:reading"
	SystemReadingType = "urn:medprov:reading-type"
	SystemPatient     = "urn:medprov:patient"
	SystemActor       = "urn:medprov:actor"
	SystemDevice      = "urn:medprov:device"
	SystemDeviceType  = "urn:medprov:device-type"
	SystemConsent     = "urn:medprov:consent"
	SystemAccess      = "urn:medprov:access"
	SystemTx          = "urn:medprov:tx"
	SystemPurpose     = "urn:medprov:purpose"
	// SystemError codes OperationOutcome details with the v1 error codes
	// (wire.Code); SystemWithheld with the reasons a granted reading was
	// withheld.
	SystemError    = "urn:medprov:error"
	SystemWithheld = "urn:medprov:withheld"
	// SystemReadingStatus codes the status of a reading a device posted
	// (queued, exists, recorded) in the OperationOutcome that answers it.
	SystemReadingStatus = "urn:medprov:reading-status"
)

// The elements of an Observation a device signs (FHIR ingest, package
// payload) that carry what FHIR has no element for.
const (
	// SystemSeq is the identifier system of the device's seq: the
	// Observation's one identifier is {"system":"urn:medprov:seq",
	// "value":"<seq>"}, the seq in decimal without leading zeros.
	SystemSeq = "urn:medprov:seq"
	// ExtNonce is the extension carrying the reading's nonce:
	// {"url":"urn:medprov:fhir:nonce","valueBase64Binary":"<nonce>"}, standard
	// base64 of at least 16 random bytes, so the hash of the signed bytes
	// cannot be brute-forced from the ledger.
	ExtNonce = "urn:medprov:fhir:nonce"
)

// Category codes of HL7's observation category code system.
const (
	CategoryVitalSigns = "vital-signs"
	CategoryLaboratory = "laboratory"
	CategoryActivity   = "activity"
)

// ReadingType is what FHIR knows of a medprov reading type.
type ReadingType struct {
	// Type is the medprov token, e.g. "heart_rate".
	Type string
	// LOINC and Display name the type's LOINC code.
	LOINC, Display string
	// UCUM is the unit a value of this type is usually in (informative:
	// an Observation carries the unit its device signed).
	UCUM string
	// Category is an observation-category code.
	Category string
	// Components names the LOINC codes of the members of an object value,
	// e.g. blood pressure {"systolic":120,"diastolic":80}.
	Components map[string]Component
}

// Component is the LOINC code of one member of an object value.
type Component struct{ LOINC, Display string }

// readingTypes are the reading types with a LOINC code. One medprov token
// per code, so that a LOINC code in a search names exactly one data type
// (the one a consent lists); other types are searched by their medprov
// code.
var readingTypes = []ReadingType{
	{Type: "heart_rate", LOINC: "8867-4", Display: "Heart rate", UCUM: "/min", Category: CategoryVitalSigns},
	{Type: "spo2", LOINC: "59408-5", Display: "Oxygen saturation in Arterial blood by Pulse oximetry", UCUM: "%", Category: CategoryVitalSigns},
	{Type: "temperature", LOINC: "8310-5", Display: "Body temperature", UCUM: "Cel", Category: CategoryVitalSigns},
	{Type: "respiratory_rate", LOINC: "9279-1", Display: "Respiratory rate", UCUM: "/min", Category: CategoryVitalSigns},
	{Type: "body_weight", LOINC: "29463-7", Display: "Body weight", UCUM: "kg", Category: CategoryVitalSigns},
	{Type: "blood_pressure", LOINC: "85354-9", Display: "Blood pressure panel with all children optional", UCUM: "mm[Hg]", Category: CategoryVitalSigns,
		Components: map[string]Component{
			"systolic":  {LOINC: "8480-6", Display: "Systolic blood pressure"},
			"diastolic": {LOINC: "8462-4", Display: "Diastolic blood pressure"},
		}},
	{Type: "glucose", LOINC: "2339-0", Display: "Glucose [Mass/volume] in Blood", UCUM: "mg/dL", Category: CategoryLaboratory},
	{Type: "steps", LOINC: "55423-8", Display: "Number of steps in unspecified time Pedometer", UCUM: "{steps}", Category: CategoryActivity},
}

// TypeOf returns what FHIR knows of a medprov reading type; false for a
// type without a LOINC code.
func TypeOf(typ string) (ReadingType, bool) {
	for _, rt := range readingTypes {
		if rt.Type == typ {
			return rt, true
		}
	}
	return ReadingType{}, false
}

// TypeOfLOINC returns the reading type a LOINC code stands for.
func TypeOfLOINC(code string) (ReadingType, bool) {
	for _, rt := range readingTypes {
		if rt.LOINC == code {
			return rt, true
		}
	}
	return ReadingType{}, false
}

// ReadingTypes returns every reading type with a LOINC code.
func ReadingTypes() []ReadingType {
	out := make([]ReadingType, len(readingTypes))
	copy(out, readingTypes)
	return out
}

// otherUnits are the UCUM codes a type's value may be in besides its UCUM.
var otherUnits = map[string][]string{
	"temperature": {"[degF]"},
	"body_weight": {"g", "[lb_av]"},
	"glucose":     {"mmol/L"},
}

// UnitFits reports whether a value of type rt may be in the UCUM code
// unit: the type's own UCUM, or one of the few others it is measured in
// (temperature in [degF], body weight in g or [lb_av], glucose in
// mmol/L).
func UnitFits(rt ReadingType, unit string) bool {
	return unit == rt.UCUM || slices.Contains(otherUnits[rt.Type], unit)
}

// ucum maps the units devices write to their UCUM codes.
var ucum = map[string]string{
	"/min": "/min", "bpm": "/min", "beats/min": "/min", "breaths/min": "/min", "rpm": "/min",
	"%":   "%",
	"Cel": "Cel", "°C": "Cel", "degC": "Cel",
	"[degF]": "[degF]", "°F": "[degF]", "degF": "[degF]",
	"mg/dL": "mg/dL", "mmol/L": "mmol/L",
	"mm[Hg]": "mm[Hg]", "mmHg": "mm[Hg]",
	"kg": "kg", "g": "g", "[lb_av]": "[lb_av]", "lb": "[lb_av]",
	"{steps}": "{steps}", "steps": "{steps}",
	"ms": "ms", "s": "s", "mV": "mV", "uV": "uV", "µV": "uV",
}

// UCUM returns the UCUM code of a device's unit, or false when the unit is
// not one medprov knows.
func UCUM(unit string) (string, bool) {
	c, ok := ucum[unit]
	return c, ok
}

// hashedPrefix starts a resource id derived from a hash (ResourceID).
const hashedPrefix = "sha256-"

// ResourceID returns the FHIR resource id of a ledger id. A ledger id that
// is already a FHIR id ([A-Za-z0-9-.]{1,64}) is kept; any other (one with
// '_', say) becomes "sha256-" and the first 57 hex digits of its SHA-256.
// A ledger id that itself looks like such a hash is hashed too, so no two
// ledger ids share a resource id. A hashed id cannot be turned back: such
// resources are found by their identifier.
func ResourceID(id string) string {
	if ValidResourceID(id) && !hashedForm(id) {
		return id
	}
	sum := sha256.Sum256([]byte(id))
	return hashedPrefix + hex.EncodeToString(sum[:])[:64-len(hashedPrefix)]
}

func hashedForm(s string) bool {
	rest, ok := strings.CutPrefix(s, hashedPrefix)
	return ok && len(rest) == 64-len(hashedPrefix)
}

// ValidResourceID reports whether s is a FHIR id: 1 to 64 letters,
// digits, '-' and '.'.
func ValidResourceID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}
