// Package payload reads the bytes a device signs, in either form a device
// may sign them: the medprov reading JSON ([wire.ReadingPayload]) or a FHIR
// R4 Observation (FHIR ingest). Every party that parses signed reading
// bytes (the gateway's ingest and release, its audit check, the FHIR read
// view, the client's offline verification) parses them here, so the two
// forms cannot be read differently by two of them.
//
// Both forms are decoded with [wire.DecodeStrict]. A document is a FHIR
// Observation iff it has a top-level "resourceType" member (the medprov
// form has none and refuses unknown members), so no bytes are accepted
// in both forms.
package payload

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/medprov/medprov/fhir/vocab"
	"github.com/medprov/medprov/wire"
)

// Form names the form a device signed a reading in.
type Form string

const (
	// FormMedprov is the medprov reading JSON, wire.ReadingPayload.
	FormMedprov Form = "medprov"
	// FormFHIR is a FHIR R4 Observation (see ParseFHIR).
	FormFHIR Form = "fhir"
)

// Reading is what signed reading bytes say, in the fields of the medprov
// form whichever form was signed.
type Reading struct {
	// ReadingPayload holds deviceId, seq, type, unit, value, measuredAt
	// (as signed) and nonce. For the FHIR form, Type is the medprov type
	// of the LOINC code, Unit the UCUM code and Value the quantity's
	// value as signed.
	wire.ReadingPayload
	// Measured is measuredAt parsed.
	Measured time.Time
	// Form is the form the bytes were signed in.
	Form Form
	// UnitText is the FHIR quantity's human-readable unit as signed, or ""
	// (always "" for the medprov form).
	UnitText string
}

// Parse reads signed reading bytes in either form. Any problem is a
// *wire.Error with CodeInvalid whose message names the element.
func Parse(b []byte) (Reading, error) {
	if isFHIR(b) {
		return ParseFHIR(b)
	}
	p, t, err := wire.ParseReadingPayload(b)
	if err != nil {
		return Reading{}, err
	}
	return Reading{ReadingPayload: p, Measured: t, Form: FormMedprov}, nil
}

// isFHIR reports whether b is a JSON object with a top-level member whose
// name is "resourceType" in any case (a case-folded one is then refused by
// ParseFHIR's strict decoding, not taken for the medprov form).
func isFHIR(b []byte) bool {
	var probe struct {
		ResourceType *json.RawMessage `json:"resourceType"`
	}
	return json.Unmarshal(b, &probe) == nil && probe.ResourceType != nil
}

// observation is the part of FHIR R4 Observation a device may sign;
// anything else is refused.
type observation struct {
	ResourceType      string       `json:"resourceType"`
	Identifier        []identifier `json:"identifier"`
	Status            string       `json:"status"`
	Category          []concept    `json:"category,omitempty"`
	Code              concept      `json:"code"`
	EffectiveDateTime string       `json:"effectiveDateTime"`
	Device            reference    `json:"device"`
	ValueQuantity     quantity     `json:"valueQuantity"`
	Extension         []extension  `json:"extension"`
}

type identifier struct {
	System string `json:"system"`
	Value  string `json:"value"`
}

type coding struct {
	System  string  `json:"system"`
	Code    string  `json:"code"`
	Display *string `json:"display,omitempty"`
}

type concept struct {
	Coding []coding `json:"coding"`
	Text   *string  `json:"text,omitempty"`
}

type reference struct {
	Reference  *string     `json:"reference,omitempty"`
	Type       *string     `json:"type,omitempty"`
	Identifier *identifier `json:"identifier,omitempty"`
}

type quantity struct {
	Value  json.RawMessage `json:"value"`
	Unit   *string         `json:"unit,omitempty"`
	System string          `json:"system"`
	Code   string          `json:"code"`
}

type extension struct {
	URL               string `json:"url"`
	ValueBase64Binary string `json:"valueBase64Binary"`
}

func invalid(format string, args ...any) error {
	return wire.Errorf(wire.CodeInvalid, "FHIR Observation: "+format, args...)
}

// ParseFHIR reads a FHIR R4 Observation a device signed. It holds exactly
// these elements, each once, and nothing else (no null, no empty string):
//   - resourceType "Observation", status "final";
//   - identifier: exactly one, system "urn:medprov:seq" (vocab.SystemSeq),
//     value the device's seq in decimal without leading zeros;
//   - device: the device, as identifier {system "urn:medprov:device",
//     value deviceId} or as reference "Device/<deviceId>" (when deviceId
//     is a FHIR id), or both if they agree (type, if given, "Device");
//   - effectiveDateTime: RFC 3339 with seconds and a time zone (measuredAt);
//   - code: exactly one LOINC coding of a reading type in fhir/vocab whose
//     value is one number (not a panel), optionally a medprov reading-type
//     coding naming the same type, display and text;
//   - category (optional): observation-category codings, each the type's;
//   - valueQuantity: value (a JSON number), system "http://unitsofmeasure.org",
//     code a UCUM unit the type may be in (vocab.UnitFits), and optionally
//     unit, a human-readable unit that must stand for the same code;
//   - extension: exactly one, url "urn:medprov:fhir:nonce" (vocab.ExtNonce)
//     with valueBase64Binary the nonce (base64 of at least 16 bytes).
//
// Any problem is a *wire.Error with CodeInvalid naming the element.
func ParseFHIR(b []byte) (Reading, error) {
	var o observation
	if err := wire.DecodeStrict(b, &o); err != nil {
		return Reading{}, invalid("only resourceType, identifier, status, category, code, effectiveDateTime, device, valueQuantity and extension may be given: %s", wire.JSONProblem(err))
	}
	if hasNull(b) {
		return Reading{}, invalid("null is not FHIR JSON")
	}
	r := Reading{Form: FormFHIR}
	switch {
	case o.ResourceType != "Observation":
		return Reading{}, invalid(`resourceType must be "Observation"`)
	case o.Status != "final":
		return Reading{}, invalid(`status must be "final"`)
	}
	seq, err := seqOf(o.Identifier)
	if err != nil {
		return Reading{}, err
	}
	r.Seq = seq
	if r.DeviceID, err = deviceOf(o.Device); err != nil {
		return Reading{}, err
	}
	rt, err := typeOf(o.Code, o.Category)
	if err != nil {
		return Reading{}, err
	}
	r.Type = rt.Type
	if r.Unit, r.UnitText, r.Value, err = valueOf(o.ValueQuantity, rt); err != nil {
		return Reading{}, err
	}
	if len(o.Extension) != 1 || o.Extension[0].URL != vocab.ExtNonce || !wire.ValidReadingNonce(o.Extension[0].ValueBase64Binary) {
		return Reading{}, invalid("extension must be exactly one %s with valueBase64Binary of at least %d random bytes", vocab.ExtNonce, wire.NonceBytes)
	}
	r.Nonce = o.Extension[0].ValueBase64Binary
	if o.EffectiveDateTime == "" {
		return Reading{}, invalid("effectiveDateTime is required")
	}
	r.MeasuredAt = o.EffectiveDateTime
	// The medprov form's own checks (seq bound, grammar of ids, tokens and
	// units, the measuredAt bounds) apply to what the Observation says.
	canon, err := json.Marshal(r.ReadingPayload)
	if err != nil {
		return Reading{}, invalid("cannot be read as a reading")
	}
	if _, r.Measured, err = wire.ParseReadingPayload(canon); err != nil {
		var we *wire.Error
		if errors.As(err, &we) {
			return Reading{}, invalid("%s", strings.Replace(we.Message, "measuredAt", "effectiveDateTime", 1))
		}
		return Reading{}, err
	}
	return r, nil
}

// seqOf reads the one seq identifier.
func seqOf(ids []identifier) (uint64, error) {
	if len(ids) != 1 || ids[0].System != vocab.SystemSeq {
		return 0, invalid("identifier must be exactly one, system %s, value the device's seq", vocab.SystemSeq)
	}
	v := ids[0].Value
	seq, err := strconv.ParseUint(v, 10, 64)
	if err != nil || strconv.FormatUint(seq, 10) != v || seq > wire.MaxSeq {
		return 0, invalid("identifier value must be the seq in decimal (0..2^53-1, no sign or leading zeros)")
	}
	return seq, nil
}

// deviceOf reads the device reference.
func deviceOf(d reference) (string, error) {
	const want = "device must be identifier {system " + vocab.SystemDevice + ", value <deviceId>} or reference Device/<deviceId>, or both agreeing"
	if d.Type != nil && *d.Type != "Device" {
		return "", invalid(want)
	}
	var id string
	if d.Identifier != nil {
		if d.Identifier.System != vocab.SystemDevice || !wire.ValidID(d.Identifier.Value) {
			return "", invalid(want)
		}
		id = d.Identifier.Value
	}
	if d.Reference != nil {
		ref := *d.Reference
		if id != "" {
			if ref != "Device/"+vocab.ResourceID(id) {
				return "", invalid(want)
			}
			return id, nil
		}
		rid, ok := strings.CutPrefix(ref, "Device/")
		if !ok || !wire.ValidID(rid) || vocab.ResourceID(rid) != rid {
			return "", invalid(want)
		}
		id = rid
	}
	if id == "" {
		return "", invalid(want)
	}
	return id, nil
}

// typeOf reads the code (and category) as a medprov reading type.
func typeOf(code concept, category []concept) (vocab.ReadingType, error) {
	if code.Text != nil && *code.Text == "" {
		return vocab.ReadingType{}, invalid("code.text must not be empty")
	}
	var rt vocab.ReadingType
	var loinc, typ int
	var named string
	for _, c := range code.Coding {
		if c.Display != nil && *c.Display == "" {
			return vocab.ReadingType{}, invalid("a coding's display must not be empty")
		}
		switch c.System {
		case vocab.SystemLOINC:
			loinc++
			t, ok := vocab.TypeOfLOINC(c.Code)
			if !ok {
				return vocab.ReadingType{}, invalid("code names a LOINC code medprov does not map to a reading type")
			}
			rt = t
		case vocab.SystemReadingType:
			typ++
			named = c.Code
		default:
			return vocab.ReadingType{}, invalid("code.coding systems must be %s or %s", vocab.SystemLOINC, vocab.SystemReadingType)
		}
	}
	switch {
	case loinc != 1 || typ > 1:
		return vocab.ReadingType{}, invalid("code must hold exactly one LOINC coding (and at most one medprov reading type)")
	case typ == 1 && named != rt.Type:
		return vocab.ReadingType{}, invalid("code's medprov reading type is not its LOINC code's")
	case len(rt.Components) > 0:
		return vocab.ReadingType{}, invalid("code is a panel; only reading types with one value may be signed as FHIR")
	}
	for _, cc := range category {
		if len(cc.Coding) == 0 || cc.Text != nil {
			return vocab.ReadingType{}, invalid("category must be codings of %s", vocab.SystemObservationCategory)
		}
		for _, c := range cc.Coding {
			if c.System != vocab.SystemObservationCategory || c.Code != rt.Category || c.Display != nil && *c.Display == "" {
				return vocab.ReadingType{}, invalid("category must be the code's (%s %s)", vocab.SystemObservationCategory, rt.Category)
			}
		}
	}
	return rt, nil
}

// valueOf reads the quantity: the UCUM code, the unit as written, and the
// value.
func valueOf(q quantity, rt vocab.ReadingType) (code, text string, value json.RawMessage, err error) {
	var n json.Number
	if len(q.Value) == 0 || !wire.ValidValue(q.Value) || q.Value[0] == '[' || q.Value[0] == '{' || json.Unmarshal(q.Value, &n) != nil {
		return "", "", nil, invalid("valueQuantity.value must be a number")
	}
	if q.System != vocab.SystemUCUM || q.Code == "" {
		return "", "", nil, invalid("valueQuantity must carry system %s and a UCUM code", vocab.SystemUCUM)
	}
	if c, ok := vocab.UCUM(q.Code); !ok || c != q.Code || !vocab.UnitFits(rt, q.Code) {
		return "", "", nil, invalid("valueQuantity.code is not a UCUM unit of %s", rt.Display)
	}
	if q.Unit != nil {
		if c, ok := vocab.UCUM(*q.Unit); !ok || c != q.Code {
			return "", "", nil, invalid("valueQuantity.unit does not stand for its code")
		}
		text = *q.Unit
	}
	return q.Code, text, q.Value, nil
}

// hasNull reports whether the JSON document b (already decoded strictly)
// holds a null anywhere.
func hasNull(b []byte) bool {
	d := json.NewDecoder(bytes.NewReader(b))
	for {
		t, err := d.Token()
		if err == io.EOF {
			return false
		}
		if err != nil || t == nil {
			return true
		}
	}
}

// FHIR returns a FHIR R4 Observation that ParseFHIR reads as p, for a
// device to sign instead of p's medprov form: p.Type must have a LOINC
// code in fhir/vocab (not a panel), p.Unit must be a unit vocab.UCUM
// knows that fits the type (written as the quantity's unit, its UCUM code
// as code) and p.Value a number. Its elements are in the order ParseFHIR
// documents.
func FHIR(p wire.ReadingPayload) ([]byte, error) {
	rt, ok := vocab.TypeOf(p.Type)
	if !ok {
		return nil, invalid("reading type %q has no LOINC code", p.Type)
	}
	code, ok := vocab.UCUM(p.Unit)
	if !ok {
		return nil, invalid("unit %q has no UCUM code medprov knows", p.Unit)
	}
	o := observation{
		ResourceType: "Observation",
		Identifier:   []identifier{{System: vocab.SystemSeq, Value: strconv.FormatUint(p.Seq, 10)}},
		Status:       "final",
		Code: concept{Coding: []coding{
			{System: vocab.SystemLOINC, Code: rt.LOINC, Display: &rt.Display},
			{System: vocab.SystemReadingType, Code: rt.Type},
		}},
		EffectiveDateTime: p.MeasuredAt,
		Device: reference{Reference: ptr("Device/" + vocab.ResourceID(p.DeviceID)), Type: ptr("Device"),
			Identifier: &identifier{System: vocab.SystemDevice, Value: p.DeviceID}},
		ValueQuantity: quantity{Value: p.Value, Unit: &p.Unit, System: vocab.SystemUCUM, Code: code},
		Extension:     []extension{{URL: vocab.ExtNonce, ValueBase64Binary: p.Nonce}},
	}
	if rt.Category != "" {
		o.Category = []concept{{Coding: []coding{{System: vocab.SystemObservationCategory, Code: rt.Category}}}}
	}
	b, err := json.Marshal(o)
	if err != nil {
		return nil, invalid("cannot encode: %v", err)
	}
	if _, err := ParseFHIR(b); err != nil {
		return nil, err
	}
	return b, nil
}

func ptr[T any](v T) *T { return &v }
