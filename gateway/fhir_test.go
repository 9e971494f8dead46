package gateway_test

import (
	"crypto/ecdsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/medprov/medprov/client"
	"github.com/medprov/medprov/fhir"
	"github.com/medprov/medprov/fhir/fhirtest"
	"github.com/medprov/medprov/internal/testkit"
	"github.com/medprov/medprov/node"
	"github.com/medprov/medprov/wire"
)

// fhirWorld is a node with a patient whose device recorded readings, a
// researcher the patient consented to (heart rate, purpose study),
// another patient and a regulator.
type fhirWorld struct {
	s                                 *node.Node
	v                                 *fhirtest.Validator
	op, pat, other, researcher, regul *actorParty
	device                            string
	dk                                *ecdsa.PrivateKey // the device's key
	hashes                            map[string]string // reading id → dataHash (Observation id)
}

func newFHIRWorld(t *testing.T) *fhirWorld {
	t.Helper()
	s := newServer(t)
	w := &fhirWorld{s: s, v: fhirtest.New(t), hashes: map[string]string{},
		op: newActor(t, s, "fop", wire.RoleOperator), pat: newActor(t, s, "fpat", wire.RolePatient),
		other: newActor(t, s, "fother", wire.RolePatient), researcher: newActor(t, s, "fres", wire.RoleResearcher),
		regul: newActor(t, s, "freg", wire.RoleRegulator), device: "fdev_1"}
	dk := lcDevice(t, s, w.op, w.device, w.pat.id)
	w.dk = dk
	lcDevice(t, s, w.op, "fdev-other", w.other.id)
	now := time.Now().Add(-time.Minute)
	for i, r := range []struct {
		typ, unit string
		value     any
	}{
		{"heart_rate", "bpm", 71},
		{"heart_rate", "bpm", 72.5},
		{"spo2", "%", 97},
		{"blood_pressure", "mmHg", map[string]int{"systolic": 120, "diastolic": 80}},
		{"ecg", "mV", []float64{0.1, 0.4, -0.2}},
	} {
		w.reading(t, dk, uint64(i+1), r.typ, r.unit, r.value, now.Add(time.Duration(i)*time.Second))
	}
	mustStatus(t, post(t, s, "/v1/consents", w.pat.grant(t, w.researcher.id, "heart_rate"), nil), http.StatusCreated, nil)
	return w
}

// reading records a signed reading and remembers its dataHash.
func (w *fhirWorld) reading(t *testing.T, dk *ecdsa.PrivateKey, seq uint64, typ, unit string, value any, at time.Time) {
	t.Helper()
	p, err := client.NewReading(w.device, seq, typ, unit, value, at)
	require.NoError(t, err)
	env, err := client.SignReading(dk, p)
	require.NoError(t, err)
	var r wire.ReadingReceipt
	mustStatus(t, post(t, w.s, "/v1/readings?wait=commit", testkit.MustJSON(t, env), nil), http.StatusCreated, &r)
	w.hashes[r.ReadingID] = r.DataHash
}

// get reads a FHIR path as p (unsigned when p is nil), checks the media
// type, keeps the body for validation and decodes it into out.
func (w *fhirWorld) get(t *testing.T, p *actorParty, path string, want int, out any) *httptest.ResponseRecorder {
	t.Helper()
	var rec *httptest.ResponseRecorder
	if p == nil {
		rec = httptest.NewRecorder()
		w.s.Handler().ServeHTTP(rec, httptest.NewRequestWithContext(t.Context(), http.MethodGet, path, nil))
	} else {
		rec = p.get(t, w.s, path)
	}
	require.Equal(t, want, rec.Code, "GET %s: %s", path, rec.Body)
	assert.Equal(t, fhir.MediaType, rec.Header().Get("Content-Type"), "GET %s: media type", path)
	w.v.Add(t, path, rec.Body.Bytes())
	if out != nil {
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), out), "GET %s: body", path)
	}
	return rec
}

// bundle is the part of a searchset the tests read.
type bundle struct {
	ResourceType string `json:"resourceType"`
	Type         string `json:"type"`
	Total        *int   `json:"total"`
	Link         []struct {
		Relation, URL string
	} `json:"link"`
	Entry []struct {
		FullURL  string          `json:"fullUrl"`
		Resource json.RawMessage `json:"resource"`
		Search   struct{ Mode string }
	} `json:"entry"`
}

func (b *bundle) link(rel string) string {
	for _, l := range b.Link {
		if l.Relation == rel {
			return l.URL
		}
	}
	return ""
}

// resources decodes the entries of the given search mode.
func (b *bundle) resources(t *testing.T, mode string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, e := range b.Entry {
		if e.Search.Mode != mode {
			continue
		}
		var m map[string]any
		require.NoError(t, json.Unmarshal(e.Resource, &m))
		out = append(out, m)
	}
	return out
}

// outcome is the part of an OperationOutcome the tests read.
type outcome struct {
	ResourceType string `json:"resourceType"`
	Issue        []struct {
		Code    string `json:"code"`
		Details struct {
			Coding []struct{ System, Code string }
		} `json:"details"`
	} `json:"issue"`
}

func (o *outcome) coded(system string) string {
	for _, i := range o.Issue {
		for _, c := range i.Details.Coding {
			if c.System == system {
				return c.Code
			}
		}
	}
	return ""
}

// pathOf is the path and query of an absolute link.
func pathOf(t *testing.T, link string) string {
	t.Helper()
	u, err := url.Parse(link)
	require.NoError(t, err, "link %q", link)
	return u.RequestURI()
}

func TestFHIRAuthorisationIsV1s(t *testing.T) {
	w := newFHIRWorld(t)
	hr := w.hashes[w.device+":1"]
	tests := []struct {
		name string
		who  *actorParty
		path string
		want int
		code wire.Code // for errors
	}{
		{"metadata needs no signature", nil, "/fhir/R4/metadata", http.StatusOK, ""},
		{"an unsigned search is refused", nil, "/fhir/R4/Consent?patient=fpat", http.StatusUnauthorized, wire.CodeUnauthenticated},
		{"an unsigned read is refused", nil, "/fhir/R4/Observation/" + hr + "?purpose=study", http.StatusUnauthorized, wire.CodeUnauthenticated},
		{"a patient reads its consents", w.pat, "/fhir/R4/Consent?patient=Patient/fpat", http.StatusOK, ""},
		{"a patient cannot read another patient's consents", w.other, "/fhir/R4/Consent?patient=fpat", http.StatusForbidden, wire.CodeForbidden},
		{"a patient reads its audit events", w.pat, "/fhir/R4/AuditEvent?patient=fpat", http.StatusOK, ""},
		{"a patient cannot read another patient's audit events", w.other, "/fhir/R4/AuditEvent?patient=fpat", http.StatusForbidden, wire.CodeForbidden},
		{"a researcher cannot read audit events", w.researcher, "/fhir/R4/AuditEvent?patient=fpat", http.StatusForbidden, wire.CodeForbidden},
		{"a researcher cannot read consents", w.researcher, "/fhir/R4/Consent?patient=fpat", http.StatusForbidden, wire.CodeForbidden},
		{"a researcher cannot list devices", w.researcher, "/fhir/R4/Device?patient=fpat", http.StatusForbidden, wire.CodeForbidden},
		{"a patient cannot list another patient's devices", w.other, "/fhir/R4/Device?patient=fpat", http.StatusForbidden, wire.CodeForbidden},
		{"a patient cannot list the provenance of another patient's readings", w.other,
			"/fhir/R4/Provenance?target:Observation.patient=fpat", http.StatusForbidden, wire.CodeForbidden},
		{"a patient cannot read another patient's Observation", w.other, "/fhir/R4/Observation/" + hr + "?purpose=patrqt", http.StatusNotFound, wire.CodeNotFound},
		{"a regulator reads any patient's audit events", w.regul, "/fhir/R4/AuditEvent?patient=fpat", http.StatusOK, ""},
		{"a regulator cannot read Observations", w.regul, "/fhir/R4/Observation/" + hr + "?purpose=audit", http.StatusForbidden, wire.CodeForbidden},
		{"an unknown resource type is not found", w.pat, "/fhir/R4/Patient?patient=fpat", http.StatusNotFound, wire.CodeNotFound},
		{"a history is not served", w.pat, "/fhir/R4/Observation/" + hr + "/_history/1", http.StatusNotFound, wire.CodeNotFound},
		{"an unsupported search parameter is refused", w.pat, "/fhir/R4/Consent?patient=fpat&status=active", http.StatusBadRequest, wire.CodeInvalid},
		{"a search without its patient is refused", w.pat, "/fhir/R4/Consent", http.StatusBadRequest, wire.CodeInvalid},
		{"an Observation read without a purpose is refused", w.pat, "/fhir/R4/Observation/" + hr, http.StatusBadRequest, wire.CodeInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := w.get(t, tt.who, tt.path, tt.want, nil)
			if tt.code == "" {
				return
			}
			var oo outcome
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &oo))
			assert.Equal(t, "OperationOutcome", oo.ResourceType, "errors are OperationOutcomes")
			assert.Equal(t, string(tt.code), oo.coded("urn:medprov:error"), "the v1 error code")
		})
	}

	t.Run("a session cannot read Observations: it cannot sign the access request", func(t *testing.T) {
		rec := httptest.NewRecorder()
		req := httptest.NewRequestWithContext(t.Context(), http.MethodGet, "/fhir/R4/Observation/"+hr+"?purpose=study", nil)
		req.AddCookie(&http.Cookie{Name: wire.SessionCookie, Value: "not-a-live-session"})
		w.s.Handler().ServeHTTP(rec, req)
		assert.Equal(t, http.StatusUnauthorized, rec.Code, "%s", rec.Body)
		w.v.Add(t, "session read", rec.Body.Bytes())
	})
	t.Run("writes are refused", func(t *testing.T) {
		rec := post(t, w.s, "/fhir/R4/Consent", []byte(`{"resourceType":"Consent"}`), nil)
		assert.Equal(t, http.StatusMethodNotAllowed, rec.Code, "%s", rec.Body)
		w.v.Add(t, "POST Consent", rec.Body.Bytes())
	})
	t.Run("a replayed signed read is refused", func(t *testing.T) {
		h, err := client.SignedGetHeader(w.pat.key, w.pat.id, "/fhir/R4/Consent?patient=fpat", time.Now())
		require.NoError(t, err)
		for i, want := range []int{http.StatusOK, http.StatusUnauthorized} {
			req := httptest.NewRequestWithContext(t.Context(), http.MethodGet, "/fhir/R4/Consent?patient=fpat", nil)
			req.Header.Set(wire.SignatureHeader, h)
			rec := httptest.NewRecorder()
			w.s.Handler().ServeHTTP(rec, req)
			assert.Equal(t, want, rec.Code, "use %d: %s", i+1, rec.Body)
		}
	})
}

func TestFHIRObservationReadIsALoggedAccess(t *testing.T) {
	w := newFHIRWorld(t)
	from := url.QueryEscape("ge" + time.Now().Add(-time.Hour).UTC().Format(time.RFC3339))
	to := url.QueryEscape("le" + time.Now().Add(time.Minute).UTC().Format(time.RFC3339))
	window := "&date=" + from + "&date=" + to

	t.Run("a researcher's granted search releases Observations, logged first", func(t *testing.T) {
		var b bundle
		w.get(t, w.researcher, "/fhir/R4/Observation?patient=fpat&code=http://loinc.org|8867-4&purpose=study"+window, http.StatusOK, &b)
		obs := b.resources(t, "match")
		require.Len(t, obs, 2, "two heart rate readings")
		require.NotNil(t, b.Total)
		assert.Equal(t, 2, *b.Total, "total")
		o := obs[0]
		assert.Equal(t, w.hashes[w.device+":1"], o["id"], "the id is the reading's dataHash")
		assert.Contains(t, mustJSON(t, o["code"]), `"code":"8867-4"`, "LOINC heart rate")
		assert.Contains(t, mustJSON(t, o["valueQuantity"]), `"code":"/min"`, "UCUM unit")
		assert.Contains(t, mustJSON(t, o["identifier"]), w.device+":1", "the reading id")
		assert.Contains(t, mustJSON(t, o["subject"]), `"value":"fpat"`, "the pseudonymous patient")
		assert.Contains(t, mustJSON(t, o["device"]), w.device, "the device")
		assert.Contains(t, mustJSON(t, o["extension"]), "Provenance/"+w.hashes[w.device+":1"], "the link to its Provenance")

		var log wire.AccessEventPage
		mustStatus(t, w.pat.get(t, w.s, "/v1/patients/fpat/access-log"), http.StatusOK, &log)
		require.NotEmpty(t, log.Items)
		last := log.Items[len(log.Items)-1]
		assert.Equal(t, [3]string{"fres", wire.DecisionGranted, "study"}, [3]string{last.ActorID, last.Decision, last.Purpose}, "the read is in the access log")
		assert.ElementsMatch(t, []string{w.device + ":1", w.device + ":2"}, last.ReadingIDs, "with the readings it released")
	})
	t.Run("a researcher's search outside its consent is denied and logged", func(t *testing.T) {
		var oo outcome
		w.get(t, w.researcher, "/fhir/R4/Observation?patient=fpat&code=59408-5&purpose=study"+window, http.StatusForbidden, &oo)
		acc := oo.coded("urn:medprov:access")
		require.NotEmpty(t, acc, "the denial names its access event")
		var log wire.AccessEventPage
		mustStatus(t, w.regul.get(t, w.s, "/v1/patients/fpat/access-log"), http.StatusOK, &log)
		last := log.Items[len(log.Items)-1]
		assert.Equal(t, [3]string{acc, wire.DecisionDenied, wire.ReasonDataTypeNotConsented}, [3]string{last.ID, last.Decision, last.Reason})
	})
	t.Run("a denied search by identifier answers as for no reading, and is logged", func(t *testing.T) {
		var denied, none bundle
		w.get(t, w.researcher, "/fhir/R4/Observation?identifier="+url.QueryEscape("urn:medprov:reading|"+w.device+":3")+"&purpose=study", http.StatusOK, &denied)
		w.get(t, w.researcher, "/fhir/R4/Observation?identifier="+url.QueryEscape(w.device+":99")+"&purpose=study", http.StatusOK, &none)
		require.NotNil(t, denied.Total)
		assert.Equal(t, [2]int{0, 0}, [2]int{*denied.Total, *none.Total}, "an existing reading denied and a missing one look alike")
		var log wire.AccessEventPage
		mustStatus(t, w.regul.get(t, w.s, "/v1/patients/fpat/access-log"), http.StatusOK, &log)
		last := log.Items[len(log.Items)-1]
		assert.Equal(t, [3]string{"fres", wire.DecisionDenied, "spo2"}, [3]string{last.ActorID, last.Decision, last.DataTypes[0]}, "the denial is logged")
	})
	t.Run("a read by id returns the Observation", func(t *testing.T) {
		var o map[string]any
		w.get(t, w.researcher, "/fhir/R4/Observation/"+w.hashes[w.device+":2"]+"?purpose=study", http.StatusOK, &o)
		assert.Equal(t, "Observation", o["resourceType"])
		assert.Equal(t, w.hashes[w.device+":2"], o["id"])
	})
	t.Run("the patient reads all its readings, paged by the next link", func(t *testing.T) {
		path := "/fhir/R4/Observation?patient=fpat&code=8867-4,59408-5,85354-9,urn:medprov:reading-type|ecg&purpose=patrqt&_count=2"
		var seen []map[string]any
		for page := 0; path != "" && page < 5; page++ {
			var b bundle
			w.get(t, w.pat, path, http.StatusOK, &b)
			if assert.NotNil(t, b.Total, "page %d total", page) {
				assert.Equal(t, 5, *b.Total, "page %d total", page)
			}
			seen = append(seen, b.resources(t, "match")...)
			path = ""
			if next := b.link("next"); next != "" {
				path = pathOf(t, next)
			}
		}
		require.Len(t, seen, 5, "every reading, once")
		byType := map[string]map[string]any{}
		for _, o := range seen {
			byType[mustJSON(t, o["code"])] = o
		}
		var bp, ecg map[string]any
		for code, o := range byType {
			switch {
			case strings.Contains(code, "85354-9"):
				bp = o
			case strings.Contains(code, `"ecg"`):
				ecg = o
			}
		}
		require.NotNil(t, bp, "blood pressure")
		assert.Contains(t, mustJSON(t, bp["component"]), "8480-6", "systolic component")
		require.NotNil(t, ecg, "ecg")
		assert.Equal(t, "[0.1,0.4,-0.2]", ecg["valueString"], "a waveform stays its JSON")
	})
}

func TestFHIRSearches(t *testing.T) {
	w := newFHIRWorld(t)
	// A researcher's read, so that the patient's log holds an access.
	mustStatus(t, post(t, w.s, "/v1/access", w.researcher.access(t, "fpat", "heart_rate"), nil), http.StatusOK, nil)

	t.Run("consents", func(t *testing.T) {
		var b bundle
		w.get(t, w.pat, "/fhir/R4/Consent?patient=fpat", http.StatusOK, &b)
		cs := b.resources(t, "match")
		require.Len(t, cs, 1)
		assert.Equal(t, "active", cs[0]["status"])
		assert.Contains(t, mustJSON(t, cs[0]["provision"]), `"code":"study"`, "purpose")
		assert.Contains(t, mustJSON(t, cs[0]["provision"]), `"code":"8867-4"`, "data type as LOINC")
		assert.Contains(t, mustJSON(t, cs[0]["extension"]), `"url":"txId"`, "the granting transaction")
	})
	t.Run("audit events: the consent's grant and the access, filtered by agent and date", func(t *testing.T) {
		var all, byRes, none bundle
		w.get(t, w.regul, "/fhir/R4/AuditEvent?patient=fpat", http.StatusOK, &all)
		require.NotNil(t, all.Total)
		assert.Equal(t, 2, *all.Total, "grant and access")
		w.get(t, w.regul, "/fhir/R4/AuditEvent?patient=fpat&agent=fres", http.StatusOK, &byRes)
		evs := byRes.resources(t, "match")
		require.Len(t, evs, 1, "the researcher's access")
		assert.Equal(t, "0", evs[0]["outcome"], "granted")
		assert.Contains(t, mustJSON(t, evs[0]["purposeOfEvent"]), "study")
		w.get(t, w.regul, "/fhir/R4/AuditEvent?patient=fpat&date=le2001-01-01", http.StatusOK, &none)
		assert.Equal(t, 0, *none.Total, "nothing recorded before 2001")
	})
	t.Run("audit events page with _count and _offset", func(t *testing.T) {
		var p1, p2 bundle
		w.get(t, w.pat, "/fhir/R4/AuditEvent?patient=fpat&_count=1", http.StatusOK, &p1)
		require.Len(t, p1.Entry, 1)
		next := p1.link("next")
		require.NotEmpty(t, next, "a next link")
		w.get(t, w.pat, pathOf(t, next), http.StatusOK, &p2)
		require.Len(t, p2.Entry, 1)
		assert.NotEqual(t, p1.Entry[0].FullURL, p2.Entry[0].FullURL, "the next page holds the next event")
		assert.Empty(t, p2.link("next"), "no page after the last")
	})
	t.Run("devices", func(t *testing.T) {
		var b bundle
		w.get(t, w.pat, "/fhir/R4/Device?patient=fpat", http.StatusOK, &b)
		ds := b.resources(t, "match")
		require.Len(t, ds, 1)
		assert.Contains(t, mustJSON(t, ds[0]["identifier"]), w.device, "the device id")
		assert.NotEqual(t, w.device, ds[0]["id"], "an id with '_' is no FHIR id: hashed")
	})
	t.Run("provenance by target and of a patient's readings", func(t *testing.T) {
		var one, all, hidden bundle
		h := w.hashes[w.device+":3"]
		w.get(t, w.pat, "/fhir/R4/Provenance?target=Observation/"+h, http.StatusOK, &one)
		ps := one.resources(t, "match")
		require.Len(t, ps, 1)
		assert.Equal(t, h, ps[0]["id"])
		assert.Contains(t, mustJSON(t, ps[0]["signature"]), `"data":`, "the device's signature")
		assert.Contains(t, mustJSON(t, ps[0]["extension"]), `"url":"block"`, "the recording block")
		w.get(t, w.regul, "/fhir/R4/Provenance?target:Observation.patient=fpat&_count=2", http.StatusOK, &all)
		require.NotNil(t, all.Total)
		assert.Equal(t, 5, *all.Total)
		assert.Len(t, all.Entry, 2, "one page")
		w.get(t, w.researcher, "/fhir/R4/Provenance?target=Observation/"+h, http.StatusOK, &hidden)
		assert.Equal(t, 0, *hidden.Total, "a researcher sees no provenance, as in v1")
	})
	t.Run("the capability statement lists what is served", func(t *testing.T) {
		var cs struct {
			Rest []struct {
				Resource []struct {
					Type        string
					Interaction []struct{ Code string }
				}
			}
		}
		w.get(t, nil, "/fhir/R4/metadata", http.StatusOK, &cs)
		require.Len(t, cs.Rest, 1)
		got := map[string][]string{}
		for _, r := range cs.Rest[0].Resource {
			for _, i := range r.Interaction {
				got[r.Type] = append(got[r.Type], i.Code)
			}
		}
		assert.Equal(t, map[string][]string{
			"Consent": {"search-type"}, "AuditEvent": {"search-type"}, "Provenance": {"search-type"},
			"Device": {"search-type"}, "Observation": {"read", "search-type", "create"},
		}, got)
	})
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	return string(testkit.MustJSON(t, v))
}

// FuzzFHIR throws arbitrary FHIR paths, queries and signature headers at
// the FHIR routes, seeded with valid signed reads: whatever arrives, the
// answer is FHIR JSON, an error is an OperationOutcome, and nothing is a
// 500 or a panic.
func FuzzFHIR(f *testing.F) {
	s := newServer(f)
	pat := &actorParty{id: "pat", key: register(f, s, "pat", wire.RolePatient)}
	for _, p := range []string{
		"Consent?patient=pat", "AuditEvent?patient=pat&date=ge2030-01-01&agent=x", "Provenance?target=Observation/" + strings.Repeat("a", 64),
		"Provenance?target:Observation.patient=pat&_count=1", "Device?patient=Patient/pat&_offset=3", "metadata",
		"Observation?patient=pat&code=8867-4&purpose=patrqt&date=2030-01-01", "Observation/" + strings.Repeat("b", 64) + "?purpose=x",
	} {
		h, err := client.SignedGetHeader(pat.key, pat.id, "/fhir/R4/"+p, time.Now())
		require.NoError(f, err)
		f.Add(p, h)
		f.Add(p, "")
	}
	f.Fuzz(func(t *testing.T, p, sig string) {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://gw/fhir/R4/"+p, nil)
		if err != nil || strings.ContainsAny(p, " \r\n\t#") {
			return
		}
		if sig != "" && !strings.ContainsAny(sig, "\r\n\x00") {
			req.Header.Set(wire.SignatureHeader, sig)
		}
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, req)
		if rec.Code >= 500 {
			require.Equal(t, http.StatusServiceUnavailable, rec.Code, "a server error: %s", rec.Body)
		}
		if rec.Code == http.StatusNotFound && rec.Header().Get("Content-Type") != fhir.MediaType {
			return // a path no FHIR route matches (e.g. /fhir/R4/a/b/c): v1's not found
		}
		require.Equal(t, fhir.MediaType, rec.Header().Get("Content-Type"), "%d %s", rec.Code, rec.Body)
		var body struct {
			ResourceType string            `json:"resourceType"`
			Issue        []json.RawMessage `json:"issue"`
		}
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body), "%s", rec.Body)
		if rec.Code >= 400 {
			require.Equal(t, "OperationOutcome", body.ResourceType, "%s", rec.Body)
			require.NotEmpty(t, body.Issue, "%s", rec.Body)
		}
	})
}
