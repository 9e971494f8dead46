package fhir_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/medprov/medprov/fhir"
	"github.com/medprov/medprov/fhir/fhirtest"
	"github.com/medprov/medprov/internal/testkit"
	"github.com/medprov/medprov/wire"
)

const base = "https://portal.example/fhir/R4"

var (
	txA = strings.Repeat("a1", 32)
	txB = strings.Repeat("b2", 32)
)

// released is a reading as a grant releases it.
func released(t *testing.T, dev string, seq uint64, typ, unit string, value any) wire.ReleasedReading {
	t.Helper()
	v, err := json.Marshal(value)
	require.NoError(t, err)
	payload := testkit.MustJSON(t, wire.ReadingPayload{DeviceID: dev, Seq: seq, Type: typ, Unit: unit, Value: v,
		MeasuredAt: "2030-03-10T11:00:00.5+01:00", Nonce: testkit.Nonce(t)})
	sum := sha256.Sum256(payload)
	return wire.ReleasedReading{ReadingID: wire.ReadingID(dev, seq), DeviceID: dev, DevicePublicKey: testkit.PublicPEM(t, testkit.MustKey(t)),
		Payload: payload, Signature: []byte{0x30, 0x44, 1, 2}, DataHash: hex.EncodeToString(sum[:]), CID: "bafkreiabc"}
}

func consent(status string) wire.Consent {
	c := wire.Consent{DocType: "consent", ID: "cns-1", PatientID: "pat_1", GranteeID: "res-1", Purpose: "study",
		DataTypes: []string{"heart_rate", "ecg"}, NotBefore: "2030-01-01T00:00:00Z", NotAfter: "2030-12-31T00:00:00Z",
		Status: wire.StatusActive, GrantedTx: txA, GrantedAt: "2030-01-01T00:00:00.000000000Z",
		History: []wire.ConsentChange{{TxID: txA, Timestamp: "2030-01-01T00:00:00Z", Status: wire.StatusActive}}}
	if status == wire.StatusRevoked {
		c.Status, c.RevokedTx, c.RevokedAt = status, txB, "2030-02-01T00:00:00.000000000Z"
		c.History = append(c.History, wire.ConsentChange{TxID: txB, Timestamp: "2030-02-01T00:00:00Z", Status: wire.StatusRevoked})
	}
	return c
}

func access(decision string) wire.AccessEvent {
	ev := wire.AccessEvent{DocType: "access", ID: "acc-1", ActorID: "res-1", PatientID: "pat_1", Purpose: "study",
		DataTypes: []string{"heart_rate"}, From: "2030-01-01T00:00:00Z", To: "2030-01-02T00:00:00Z", Decision: decision,
		TxID: txB, TxTime: "2030-01-05T00:00:00.000000000Z"}
	if decision == wire.DecisionGranted {
		ev.ConsentID, ev.ReadingIDs, ev.Count = "cns-1", []string{"dev_1:1", "dev_1:2"}, 2
		ev.Withheld = []wire.Withheld{{ReadingID: "dev_1:2", Reason: wire.WithheldErased}}
	} else {
		ev.Reason = wire.ReasonNoConsent
	}
	return ev
}

func provenance(withTx bool) wire.ProvenanceReport {
	r := wire.Reading{DocType: "reading", ID: "dev_1:1", DeviceID: "dev_1", PatientID: "pat_1", Seq: 1, Type: "heart_rate", Unit: "bpm",
		MeasuredAt: "2030-03-10T10:00:00.5Z", DataHash: strings.Repeat("c3", 32), Signature: "MEQCIA==", CID: "bafkreiabc",
		CipherHash: strings.Repeat("d4", 32), Size: 200, TxID: txA, TxTime: "2030-03-10T10:00:01.000000000Z"}
	p := wire.ProvenanceReport{Provenance: wire.Provenance{Reading: r}}
	if withTx {
		p.Tx = &wire.TxRef{TxID: txA, Block: 42, Valid: true}
	}
	return p
}

// TestResourcesAreValidR4 maps every kind of ledger record and answer and
// validates each resource against HL7's R4 definitions.
func TestResourcesAreValidR4(t *testing.T) {
	v := fhirtest.New(t)
	obs := func(typ, unit string, value any) any {
		o, err := fhir.Observation(released(t, "dev_1", 1, typ, unit, value), "pat_1")
		require.NoError(t, err)
		return o
	}
	resources := []struct {
		name     string
		resource any
	}{
		{"heart rate", obs("heart_rate", "bpm", 72)},
		{"a decimal in an unknown unit", obs("glucose", "mg/dL", 5.5e1)},
		{"blood pressure components", obs("blood_pressure", "mmHg", map[string]int{"systolic": 120, "diastolic": 80})},
		{"an ecg waveform", obs("ecg", "mV", []float64{0.1, -0.2})},
		{"an object that is not numbers", obs("note", "{note}", map[string]any{"a": "b"})},
		{"an active consent", fhir.Consent(consent(wire.StatusActive))},
		{"a revoked consent", fhir.Consent(consent(wire.StatusRevoked))},
		{"a granted access with a withheld reading", fhir.AccessAuditEvent(access(wire.DecisionGranted)).Event},
		{"a denied access", fhir.AccessAuditEvent(access(wire.DecisionDenied)).Event},
		{"a consent grant", fhir.ConsentAuditEvents(consent(wire.StatusRevoked))[0].Event},
		{"a consent revocation", fhir.ConsentAuditEvents(consent(wire.StatusRevoked))[1].Event},
		{"provenance with its block", fhir.Provenance(provenance(true))},
		{"provenance without", fhir.Provenance(provenance(false))},
		{"an active device", fhir.Device(wire.Device{ID: "dev_1", OperatorID: "op-1", PatientID: "pat_1", DeviceType: "oximeter", Status: wire.StatusActive, RegisteredTx: txA})},
		{"a revoked device", fhir.Device(wire.Device{ID: "dev-2", OperatorID: "op-1", PatientID: "pat_1", DeviceType: "oximeter", Status: wire.StatusRevoked, RegisteredTx: txA, RevokedTx: txB})},
		{"the capability statement", fhir.Capability(base)},
		{"withheld readings", fhir.WithheldOutcome([]wire.Withheld{{ReadingID: "d:1", Reason: wire.WithheldErased}})},
	}
	for _, code := range []wire.Code{wire.CodeInvalid, wire.CodeUnauthenticated, wire.CodeForbidden, wire.CodeNotFound, wire.CodeConflict,
		wire.CodeMethodNotAllowed, wire.CodeTooLarge, wire.CodeRateLimited, wire.CodeInternal, wire.CodeUnavailable} {
		resources = append(resources, struct {
			name     string
			resource any
		}{"outcome " + string(code), fhir.Outcome(code, "message", "acc-1")})
	}
	var entries []fhir.Entry
	seen := map[string]bool{}
	for _, r := range resources {
		b, err := fhir.Marshal(r.resource)
		require.NoError(t, err, r.name)
		v.Add(t, r.name, b)
		var id struct{ ResourceType, ID string }
		require.NoError(t, json.Unmarshal(b, &id))
		if k := id.ResourceType + "/" + id.ID; !seen[k] { // fullUrls are unique in a Bundle
			seen[k] = true
			entries = append(entries, fhir.Entry{Resource: r.resource, Type: id.ResourceType, ID: id.ID})
		}
	}
	total := len(entries)
	set, err := fhir.Searchset(base, &total, fhir.PageLinks(base, "Consent", url.Values{"patient": {"pat_1"}}, 250, 100, 100), entries)
	require.NoError(t, err)
	b, err := fhir.Marshal(set)
	require.NoError(t, err)
	v.Add(t, "searchset", b)
	coll, err := fhir.Collection(base, "2030-01-01T00:00:00Z", entries)
	require.NoError(t, err)
	b, err = fhir.Marshal(coll)
	require.NoError(t, err)
	v.Add(t, "collection", b)
}

func TestObservationMapping(t *testing.T) {
	rr := released(t, "dev_1", 7, "heart_rate", "bpm", 72.50)
	o, err := fhir.Observation(rr, "pat_1")
	require.NoError(t, err)
	b, err := fhir.Marshal(o)
	require.NoError(t, err)
	got := string(b)
	for _, want := range []string{
		`"id":"` + rr.DataHash + `"`,
		`{"system":"urn:medprov:reading","value":"dev_1:7"}`,
		`{"system":"http://loinc.org","code":"8867-4","display":"Heart rate"}`,
		`{"system":"urn:medprov:reading-type","code":"heart_rate"}`,
		`"valueQuantity":{"value":72.5,"unit":"bpm","system":"http://unitsofmeasure.org","code":"/min"}`,
		`"effectiveDateTime":"2030-03-10T10:00:00.5Z"`,
		`"subject":{"type":"Patient","identifier":{"system":"urn:medprov:patient","value":"pat_1"}}`,
		`"reference":"Provenance/` + rr.DataHash + `"`,
		`"status":"final"`,
	} {
		assert.Contains(t, got, want)
	}
	_, err = fhir.Observation(wire.ReleasedReading{ReadingID: "d:1", Payload: []byte(`{"not":"a reading"}`)}, "p")
	assert.Error(t, err, "a payload that is no reading")
}

func TestPageLinks(t *testing.T) {
	q := url.Values{"patient": {"p"}, "_offset": {"100"}, "_count": {"50"}}
	tests := []struct {
		name                 string
		total, offset, count int
		want                 map[string]string
	}{
		{"a middle page", 250, 100, 100, map[string]string{
			"self": "_count=100&_offset=100&patient=p", "first": "_count=100&patient=p", "previous": "_count=100&patient=p",
			"next": "_count=100&_offset=200&patient=p", "last": "_count=100&_offset=200&patient=p"}},
		{"the only page", 3, 0, 100, map[string]string{
			"self": "_count=100&patient=p", "first": "_count=100&patient=p", "last": "_count=100&patient=p"}},
		{"no matches", 0, 0, 10, map[string]string{
			"self": "_count=10&patient=p", "first": "_count=10&patient=p", "last": "_count=10&patient=p"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := map[string]string{}
			for _, l := range fhir.PageLinks(base, "Consent", q, tt.total, tt.offset, tt.count) {
				got[l.Relation] = strings.TrimPrefix(l.Url, base+"/Consent?")
			}
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestParseSearch(t *testing.T) {
	tests := []struct {
		name    string
		query   string
		ok      bool
		count   int
		offset  int
		allowed []string
	}{
		{"defaults", "patient=p", true, fhir.DefaultCount, 0, []string{"patient"}},
		{"count and offset", "patient=p&_count=5&_offset=10&_format=json", true, 5, 10, []string{"patient"}},
		{"two dates", "patient=p&date=ge2030-01-01&date=le2030-02-01", true, fhir.DefaultCount, 0, []string{"patient", "date"}},
		{"an unknown parameter", "patient=p&x=1", false, 0, 0, []string{"patient"}},
		{"a parameter twice", "patient=p&patient=q", false, 0, 0, []string{"patient"}},
		{"a count too large", "patient=p&_count=1001", false, 0, 0, []string{"patient"}},
		{"a negative offset", "patient=p&_offset=-1", false, 0, 0, []string{"patient"}},
		{"xml", "patient=p&_format=xml", false, 0, 0, []string{"patient"}},
		{"a malformed query", "patient=%zz", false, 0, 0, []string{"patient"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := fhir.ParseSearch(tt.query, tt.allowed...)
			if !tt.ok {
				var we *wire.Error
				require.ErrorAs(t, err, &we)
				assert.Equal(t, wire.CodeInvalid, we.Code)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, [2]int{tt.count, tt.offset}, [2]int{s.Count, s.Offset})
		})
	}
}

// pagedReader answers searchsets of one resource per page.
type pagedReader struct {
	t     *testing.T
	pages map[string]string // path → body
	asked []string
}

func (r *pagedReader) Get(_ context.Context, p string) ([]byte, error) {
	r.asked = append(r.asked, p)
	b, ok := r.pages[p]
	if !ok {
		return nil, &fhir.OutcomeError{Status: http.StatusNotFound, Message: "no such page " + p}
	}
	return []byte(b), nil
}

func TestExportPatient(t *testing.T) {
	cons, err := fhir.Marshal(fhir.Consent(consent(wire.StatusActive)))
	require.NoError(t, err)
	ev, err := fhir.Marshal(fhir.AccessAuditEvent(access(wire.DecisionDenied)).Event)
	require.NoError(t, err)
	ev2, err := fhir.Marshal(fhir.ConsentAuditEvents(consent(wire.StatusActive))[0].Event)
	require.NoError(t, err)
	prov, err := fhir.Marshal(fhir.Provenance(provenance(true)))
	require.NoError(t, err)
	page := func(res []byte, next string) string {
		s := `{"resourceType":"Bundle","type":"searchset","entry":[{"resource":` + string(res) + `}]`
		if next != "" {
			s += `,"link":[{"relation":"next","url":"https://gw.example/prefix/fhir/R4/` + next + `"}]`
		}
		return s + "}"
	}
	r := &pagedReader{t: t, pages: map[string]string{
		"/fhir/R4/Consent?patient=pat_1&_count=1000":                         page(cons, ""),
		"/fhir/R4/AuditEvent?patient=pat_1&_count=1000":                      page(ev, "AuditEvent?_offset=1&patient=pat_1"),
		"/fhir/R4/AuditEvent?_offset=1&patient=pat_1":                        page(ev2, "AuditEvent?_offset=2&patient=pat_1"),
		"/fhir/R4/AuditEvent?_offset=2&patient=pat_1":                        page(ev, ""),
		"/fhir/R4/Provenance?target%3AObservation.patient=pat_1&_count=1000": page(prov, ""),
	}}
	b, err := fhir.ExportPatient(t.Context(), r, base, "pat_1", time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	require.NoError(t, err, "asked %v", r.asked)
	var coll struct {
		Type  string
		Entry []struct {
			FullURL  string `json:"fullUrl"`
			Resource struct{ ResourceType string }
		}
	}
	require.NoError(t, json.Unmarshal(b, &coll))
	assert.Equal(t, "collection", coll.Type)
	var types []string
	for _, e := range coll.Entry {
		types = append(types, e.Resource.ResourceType)
		assert.True(t, strings.HasPrefix(e.FullURL, base+"/"+e.Resource.ResourceType+"/"), e.FullURL)
	}
	assert.Equal(t, []string{"Consent", "AuditEvent", "AuditEvent", "Provenance"}, types, "every page followed, each resource once")
	fhirtest.New(t).Add(t, "export", b)

	_, err = fhir.ExportPatient(t.Context(), &pagedReader{t: t}, base, "pat_1", time.Now())
	var oe *fhir.OutcomeError
	assert.ErrorAs(t, err, &oe, "a refused search fails the export")
	_, err = fhir.ExportPatient(t.Context(), r, base, "not a patient", time.Now())
	assert.Error(t, err, "a malformed patient id")
}

func TestSignedReaderSignsEachRead(t *testing.T) {
	key := testkit.MustKey(t)
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = append(seen, r.URL.RequestURI())
		h := r.Header.Get(wire.SignatureHeader)
		if h == "" {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"login","diagnostics":"sign it"}]}`))
			return
		}
		w.Header().Set("Content-Type", fhir.MediaType)
		_, _ = w.Write([]byte(`{"resourceType":"Bundle","type":"searchset"}`))
	}))
	t.Cleanup(srv.Close)
	r, err := fhir.NewSignedReader(srv.URL+"/gw", "reg-1", key, srv.Client())
	require.NoError(t, err)
	b, err := r.Get(t.Context(), "/fhir/R4/Consent?patient=p")
	require.NoError(t, err)
	assert.JSONEq(t, `{"resourceType":"Bundle","type":"searchset"}`, string(b))
	assert.Equal(t, []string{"/gw/fhir/R4/Consent?patient=p"}, seen, "the base URL's path prefixes the read")

	unsigned, err := fhir.NewSignedReader(srv.URL, "reg-1", nil, srv.Client())
	require.NoError(t, err)
	_, err = unsigned.Get(t.Context(), "/fhir/R4/Consent?patient=p")
	assert.Error(t, err, "no key, no read")
	_, err = fhir.NewSignedReader("ftp://x", "reg-1", key, nil)
	assert.Error(t, err, "not an http URL")
}

func ExampleTypeConcept() {
	b, err := json.Marshal(fhir.TypeConcept("spo2"))
	if err != nil {
		panic(err)
	}
	fmt.Println(string(b))
	// Output: {"coding":[{"system":"http://loinc.org","code":"59408-5","display":"Oxygen saturation in Arterial blood by Pulse oximetry"},{"system":"urn:medprov:reading-type","code":"spo2"}],"text":"Oxygen saturation in Arterial blood by Pulse oximetry"}
}

func ExampleOutcome() {
	b, err := fhir.Marshal(fhir.Outcome(wire.CodeForbidden, "access denied: no_consent", "acc-0123"))
	if err != nil {
		panic(err)
	}
	fmt.Println(string(b))
	// Output: {"issue":[{"severity":"error","code":"forbidden","details":{"coding":[{"system":"urn:medprov:error","code":"forbidden"},{"system":"urn:medprov:access","code":"acc-0123"}],"text":"access denied: no_consent"},"diagnostics":"access denied: no_consent"}],"resourceType":"OperationOutcome"}
}
