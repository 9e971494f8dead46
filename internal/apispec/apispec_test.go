package apispec_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/medprov/medprov/gateway"
	"github.com/medprov/medprov/internal/apispec"
)

// Hand-written wire bodies, as the gateway sends and receives them.
const (
	readingEnvelope = `{"payload":"eyJkZXZpY2VJZCI6ImhyLW1vbml0b3ItNyIsInNlcSI6NDIsInR5cGUiOiJoZWFydF9yYXRlIiwidW5pdCI6ImJwbSIsInZhbHVlIjo3MiwibWVhc3VyZWRBdCI6IjIwMjYtMDUtMDFUMDk6MzA6MDBaIiwibm9uY2UiOiJhRVVPVFdhSVV2ZEwwMC9LaUY5SVR3PT0ifQ==","signature":"MEYCIQDraR9bivhpzpuASlS0Su5A/0Jxs5BS7ftwjur7rGNHEgIhAPFUJtEvg2oDbPV8j15rsLBYQe2X+J7pTR6GARRap+2/"}`
	dataHash        = "761d493fbe64297d46c7008e55ec728e96bd8648fe8fb2128e1f6448d51ead6b"
	cid             = "bafkreie5m3ufqj7gkq4c2v5n3ykz7l2xwq6h4a3t5x7o2lq3mfy6d4h2ry"
	txID            = "9c8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b"
	queued          = `{"readingId":"hr-monitor-7:42","dataHash":"` + dataHash + `","cid":"` + cid + `","status":"queued"}`
	recorded        = `{"readingId":"hr-monitor-7:42","dataHash":"` + dataHash + `","cid":"` + cid + `","status":"recorded","txId":"` + txID + `","block":17}`
	pemKey          = "-----BEGIN PUBLIC KEY-----\\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEH3s1XxkNLdAuxvaxV42ua5Ww4WRz\\nKUSnnza9VzlD/0/S67qOrvEkhYUCzSJCTheYDbWmYZRQz6pKEnxx/7XfxQ==\\n-----END PUBLIC KEY-----\\n"
	actorIn         = `{"id":"pat-1","role":"patient","publicKey":"` + pemKey + `"}`
	actor           = `{"docType":"actor","id":"pat-1","role":"patient","publicKey":"` + pemKey + `","org":"HospitalMSP","status":"active","registeredTx":"` + txID + `","registeredAt":"2026-05-01T09:30:00.000000000Z"}`
	readingRecord   = `{"docType":"reading","id":"hr-monitor-7:42","deviceId":"hr-monitor-7","patientId":"pat-1","seq":42,"type":"heart_rate","unit":"bpm","measuredAt":"2026-05-01T09:30:00Z","dataHash":"` + dataHash + `","signature":"MEYCIQDraR9b","cid":"` + cid + `","cipherHash":"` + dataHash + `","size":197,"txId":"` + txID + `","txTime":"2026-05-01T09:30:01.000000000Z"}`
	deviceRecord    = `{"docType":"device","id":"hr-monitor-7","operatorId":"op-1","patientId":"pat-1","deviceType":"hr-monitor","publicKey":"` + pemKey + `","status":"active","registeredTx":"` + txID + `","registeredAt":"2026-05-01T09:29:00.000000000Z"}`
	provenance      = `{"reading":` + readingRecord + `,"device":` + deviceRecord + `,"consents":[],"accesses":[],"tx":{"txId":"` + txID + `","block":17,"timestamp":"2026-05-01T09:30:01Z","valid":true}}`
	batchQueued     = `{"accepted":1,"rejected":1,"results":[{"index":0,"readingId":"hr-monitor-7:42","dataHash":"` + dataHash + `","cid":"` + cid + `","status":"queued"},{"index":1,"status":"rejected","error":{"code":"unauthenticated","message":"device signature does not verify"}}]}`
	denial          = `{"error":{"code":"forbidden","message":"access denied: purpose_mismatch"},"accessId":"acc-8e2f3a4b5c6d7e8f9a0b1c2d","decision":"denied","reason":"purpose_mismatch","txId":"` + txID + `"}`
)

func errorBody(code, msg string) string {
	return fmt.Sprintf(`{"error":{"code":%q,"message":%q}}`, code, msg)
}

// answer is what the fake gateway sends back.
type answer struct {
	status int
	ctype  string
	header map[string]string
	body   string
}

// fakeGateway answers every request with the answer set for it and records
// the request body it received.
type fakeGateway struct {
	mu  sync.Mutex
	ans answer
	got []byte
}

func (f *fakeGateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	f.mu.Lock()
	a := f.ans
	f.got = b
	f.mu.Unlock()
	if a.ctype != "" {
		w.Header().Set("Content-Type", a.ctype)
	}
	for k, v := range a.header {
		w.Header().Set(k, v)
	}
	w.WriteHeader(a.status)
	_, _ = io.WriteString(w, a.body) // a short write shows up as the client's error
}

func (f *fakeGateway) set(a answer) {
	f.mu.Lock()
	f.ans = a
	f.mu.Unlock()
}

// recordingTB captures what assertions report instead of failing the test.
type recordingTB struct {
	testing.TB
	mu     sync.Mutex
	errors []string
}

func (r *recordingTB) Helper() {}

func (r *recordingTB) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}

func (r *recordingTB) reported() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.errors...)
}

const jsonCT = "application/json; charset=utf-8"

// exchange is one request of the table and the fake gateway's answer.
type exchange struct {
	name   string
	method string
	target string
	body   string
	header map[string]string
	ans    answer
	// want is the sentinel the mismatch must wrap; nil when it conforms.
	want error
}

func request(t *testing.T, base string, ex exchange) *http.Request {
	t.Helper()
	var body io.Reader
	if ex.body != "" {
		body = strings.NewReader(ex.body)
	}
	req, err := http.NewRequestWithContext(t.Context(), ex.method, base+ex.target, body)
	require.NoError(t, err)
	if ex.body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range ex.header {
		req.Header.Set(k, v)
	}
	return req
}

var signed = map[string]string{"X-Medprov-Signature": "eyJwYXlsb2FkIjoiZTMwPSIsInNpZ25hdHVyZSI6Ik1FVUMifQ=="}

// strictCases are judged without AllowRefused.
var strictCases = []exchange{
	{name: "a queued reading conforms", method: http.MethodPost, target: "/v1/readings", body: readingEnvelope,
		ans: answer{status: http.StatusAccepted, ctype: jsonCT, body: queued}},
	{name: "a recorded reading with wait=commit conforms", method: http.MethodPost, target: "/v1/readings?wait=commit", body: readingEnvelope,
		ans: answer{status: http.StatusCreated, ctype: jsonCT, body: recorded}},
	{name: "a 202 without its cid is reported", method: http.MethodPost, target: "/v1/readings", body: readingEnvelope,
		ans:  answer{status: http.StatusAccepted, ctype: jsonCT, body: `{"readingId":"hr-monitor-7:42","dataHash":"` + dataHash + `","status":"queued"}`},
		want: apispec.ErrResponse},
	{name: "a 202 that says recorded is reported", method: http.MethodPost, target: "/v1/readings", body: readingEnvelope,
		ans: answer{status: http.StatusAccepted, ctype: jsonCT, body: recorded}, want: apispec.ErrResponse},
	{name: "a fractional block is reported", method: http.MethodPost, target: "/v1/readings?wait=commit", body: readingEnvelope,
		ans:  answer{status: http.StatusCreated, ctype: jsonCT, body: strings.Replace(recorded, `"block":17`, `"block":17.5`, 1)},
		want: apispec.ErrResponse},
	{name: "an undeclared status is reported", method: http.MethodPost, target: "/v1/readings", body: readingEnvelope,
		ans: answer{status: http.StatusNoContent}, want: apispec.ErrUndeclaredStatus},
	{name: "a 500 is reported as undeclared", method: http.MethodPost, target: "/v1/readings", body: readingEnvelope,
		ans:  answer{status: http.StatusInternalServerError, ctype: jsonCT, body: errorBody("internal", "internal error")},
		want: apispec.ErrUndeclaredStatus},
	{name: "a 429 with Retry-After conforms", method: http.MethodPost, target: "/v1/readings", body: readingEnvelope,
		ans: answer{status: http.StatusTooManyRequests, ctype: jsonCT, header: map[string]string{"Retry-After": "1"},
			body: errorBody("rate_limited", "too many readings for this device")}},
	{name: "a 503 without Retry-After is reported", method: http.MethodPost, target: "/v1/readings", body: readingEnvelope,
		ans:  answer{status: http.StatusServiceUnavailable, ctype: jsonCT, body: errorBody("unavailable", "ledger unavailable, retry later")},
		want: apispec.ErrResponse},
	{name: "an error with an unknown code is reported", method: http.MethodPost, target: "/v1/readings", body: readingEnvelope,
		ans: answer{status: http.StatusBadRequest, ctype: jsonCT, body: errorBody("oops", "bad")}, want: apispec.ErrResponse},
	{name: "an error that is not JSON is reported", method: http.MethodPost, target: "/v1/readings", body: readingEnvelope,
		ans: answer{status: http.StatusBadRequest, ctype: "text/plain", body: "bad request"}, want: apispec.ErrResponse},
	{name: "a batch with a rejected item conforms", method: http.MethodPost, target: "/v1/readings/batch",
		body: `{"readings":[` + readingEnvelope + `,` + readingEnvelope + `]}`,
		ans:  answer{status: http.StatusAccepted, ctype: jsonCT, body: batchQueued}},
	{name: "a rejected batch item without its error is reported", method: http.MethodPost, target: "/v1/readings/batch",
		body: `{"readings":[` + readingEnvelope + `]}`,
		ans: answer{status: http.StatusAccepted, ctype: jsonCT,
			body: `{"accepted":0,"rejected":1,"results":[{"index":0,"status":"rejected"}]}`},
		want: apispec.ErrResponse},
	{name: "an empty batch is reported", method: http.MethodPost, target: "/v1/readings/batch", body: `{"readings":[]}`,
		ans:  answer{status: http.StatusAccepted, ctype: jsonCT, body: `{"accepted":0,"rejected":0,"results":[]}`},
		want: apispec.ErrRequest},
	{name: "an envelope without signature is reported", method: http.MethodPost, target: "/v1/readings", body: `{"payload":"e30="}`,
		ans: answer{status: http.StatusBadRequest, ctype: jsonCT, body: errorBody("invalid", "malformed envelope")}, want: apispec.ErrRequest},
	{name: "an unknown wait value is reported", method: http.MethodPost, target: "/v1/readings?wait=block", body: readingEnvelope,
		ans: answer{status: http.StatusAccepted, ctype: jsonCT, body: queued}, want: apispec.ErrRequest},
	{name: "an actor registration with the admin token conforms", method: http.MethodPost, target: "/v1/actors", body: actorIn,
		header: map[string]string{"Authorization": "Bearer test-admin-token-0123456789"},
		ans:    answer{status: http.StatusCreated, ctype: jsonCT, body: actor}},
	{name: "an actor registration without the admin token is reported", method: http.MethodPost, target: "/v1/actors", body: actorIn,
		ans:  answer{status: http.StatusUnauthorized, ctype: jsonCT, body: errorBody("unauthenticated", "admin bearer token required")},
		want: apispec.ErrRequest},
	{name: "an actor registration with an unknown member is reported", method: http.MethodPost, target: "/v1/actors",
		body:   `{"id":"pat-1","role":"patient","publicKey":"` + pemKey + `","org":"x"}`,
		header: map[string]string{"Authorization": "Bearer test-admin-token-0123456789"},
		ans:    answer{status: http.StatusCreated, ctype: jsonCT, body: actor}, want: apispec.ErrRequest},
	{name: "a signed provenance GET conforms", method: http.MethodGet, target: "/v1/readings/hr-monitor-7:42/provenance", header: signed,
		ans: answer{status: http.StatusOK, ctype: jsonCT, body: provenance}},
	{name: "a provenance whose reading lacks its txId is reported", method: http.MethodGet, target: "/v1/readings/hr-monitor-7:42/provenance", header: signed,
		ans:  answer{status: http.StatusOK, ctype: jsonCT, body: strings.Replace(provenance, `"size":197,"txId":"`+txID+`",`, `"size":197,`, 1)},
		want: apispec.ErrResponse},
	{name: "a GET without its signature header is reported", method: http.MethodGet, target: "/v1/readings/hr-monitor-7:42/provenance",
		ans:  answer{status: http.StatusUnauthorized, ctype: jsonCT, body: errorBody("unauthenticated", "signed request required")},
		want: apispec.ErrRequest},
	{name: "a malformed reading ID in the path is reported", method: http.MethodGet, target: "/v1/readings/no-seq/provenance", header: signed,
		ans:  answer{status: http.StatusBadRequest, ctype: jsonCT, body: errorBody("invalid", "reading id must be <deviceId>:<seq>")},
		want: apispec.ErrRequest},
	{name: "an audit page with filters conforms", method: http.MethodGet,
		target: "/v1/audit/events?patientId=pat-1&type=access.denied&from=2026-05-01T00:00:00Z&pageSize=10", header: signed,
		ans: answer{status: http.StatusOK, ctype: jsonCT, body: `{"items":[{"docType":"audit","id":"` + txID + `","type":"access.denied","actorId":"res-1","patientIds":["pat-1"],"subjectId":"acc-8e2f3a4b5c6d7e8f9a0b1c2d","decision":"denied","txId":"` + txID + `","txTime":"2026-05-01T09:30:00.000000000Z"}],"bookmark":"","count":1}`}},
	{name: "a page size out of range is reported", method: http.MethodGet, target: "/v1/audit/events?pageSize=0", header: signed,
		ans:  answer{status: http.StatusBadRequest, ctype: jsonCT, body: errorBody("invalid", "pageSize must be an integer in 1..1000")},
		want: apispec.ErrRequest},
	{name: "an access denial that locates its decision conforms", method: http.MethodPost, target: "/v1/access", body: readingEnvelope,
		ans: answer{status: http.StatusForbidden, ctype: jsonCT, body: denial}},
	{name: "an access denial with accessId but no reason is reported", method: http.MethodPost, target: "/v1/access", body: readingEnvelope,
		ans:  answer{status: http.StatusForbidden, ctype: jsonCT, body: strings.Replace(denial, `"reason":"purpose_mismatch",`, "", 1)},
		want: apispec.ErrResponse},
	{name: "health conforms", method: http.MethodGet, target: "/healthz",
		ans: answer{status: http.StatusOK, ctype: jsonCT, body: `{"status":"ok"}`}},
	{name: "an unready gateway conforms", method: http.MethodGet, target: "/readyz",
		ans: answer{status: http.StatusServiceUnavailable, ctype: jsonCT, body: `{"blobs":"ok","ledger":"unavailable","queueDepth":3,"ready":false}`}},
	{name: "metrics in the text format conform", method: http.MethodGet, target: "/metrics",
		ans: answer{status: http.StatusOK, ctype: "text/plain; version=0.0.4; charset=utf-8; escaping=underscores", body: "medprov_ingest_queue_depth 0\n"}},
	{name: "the served document conforms", method: http.MethodGet, target: "/openapi.yaml",
		ans: answer{status: http.StatusOK, ctype: "application/yaml", body: string(gateway.OpenAPI())}},
	{name: "an unknown route is reported", method: http.MethodGet, target: "/v1/nothing",
		ans: answer{status: http.StatusNotFound, ctype: jsonCT, body: errorBody("not_found", "no such route")}, want: apispec.ErrNoOperation},
}

// refusalCases are judged with AllowRefused.
var refusalCases = []exchange{
	{name: "a refused unknown route passes", method: http.MethodPost, target: "/v1/nope", body: `{}`,
		ans: answer{status: http.StatusNotFound, ctype: jsonCT, body: errorBody("not_found", "no such route")}},
	{name: "a refused wrong method passes", method: http.MethodDelete, target: "/v1/readings",
		ans: answer{status: http.StatusMethodNotAllowed, ctype: jsonCT, body: errorBody("method_not_allowed", "method not allowed on this route")}},
	{name: "an unknown route answered 200 is reported", method: http.MethodGet, target: "/v1/nope",
		ans: answer{status: http.StatusOK, ctype: jsonCT, body: `{}`}, want: apispec.ErrNoOperation},
	{name: "an unknown route refused with a non-error body is reported", method: http.MethodGet, target: "/v1/nope",
		ans: answer{status: http.StatusNotFound, ctype: jsonCT, body: `{"status":"missing"}`}, want: apispec.ErrResponse},
	{name: "a malformed envelope refused with 400 passes", method: http.MethodPost, target: "/v1/readings", body: `{"payload":`,
		ans: answer{status: http.StatusBadRequest, ctype: jsonCT, body: errorBody("invalid", "malformed envelope")}},
	{name: "an unsigned GET refused with 401 passes", method: http.MethodGet, target: "/v1/audit/events",
		ans: answer{status: http.StatusUnauthorized, ctype: jsonCT, body: errorBody("unauthenticated", "signed request required")}},
	{name: "a malformed envelope accepted with 202 is reported", method: http.MethodPost, target: "/v1/readings", body: `{"payload":"e30="}`,
		ans: answer{status: http.StatusAccepted, ctype: jsonCT, body: queued}, want: apispec.ErrRequest},
	{name: "a refusal with an undeclared status is reported", method: http.MethodGet, target: "/v1/audit/events",
		ans: answer{status: http.StatusTeapot, ctype: jsonCT, body: errorBody("invalid", "teapot")}, want: apispec.ErrUndeclaredStatus},
	{name: "a refusal whose body does not conform is reported", method: http.MethodPost, target: "/v1/readings", body: `{"payload":`,
		ans: answer{status: http.StatusBadRequest, ctype: jsonCT, body: `{"error":"bad"}`}, want: apispec.ErrResponse},
}

func TestGatewaySpecIsAValidDocument(t *testing.T) {
	s, err := apispec.Gateway(t.Context())
	require.NoError(t, err)
	doc := s.Document()
	require.NoError(t, doc.Validate(t.Context()))
	assert.True(t, doc.IsOpenAPI31OrLater(), "openapi: %s", doc.OpenAPI)
	seen := map[string]string{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			where := method + " " + path
			assert.NotEmpty(t, op.OperationID, "%s has no operationId", where)
			prev, dup := seen[op.OperationID]
			assert.False(t, dup, "operationId %s of %s is also used by %s", op.OperationID, where, prev)
			seen[op.OperationID] = where
			assert.NotEmpty(t, op.Tags, "%s has no tags", where)
			assert.NotNil(t, op.Security, "%s does not say how it is authenticated", where)
			for code, ref := range op.Responses.Map() {
				if code != "429" && code != "503" || path == "/readyz" {
					continue
				}
				h := ref.Value.Headers["Retry-After"]
				if assert.NotNil(t, h, "%s %s lacks Retry-After", where, code) {
					assert.True(t, h.Value.Required, "%s %s: Retry-After is not required", where, code)
				}
			}
		}
	}
}

func TestLoadRefusesABrokenDocument(t *testing.T) {
	cases := []struct {
		name string
		doc  string
	}{
		{"not YAML", "openapi: [3"},
		{"a dangling reference", "openapi: 3.1.0\ninfo: {title: t, version: '1'}\npaths:\n  /x:\n    get:\n      responses:\n        '200': {$ref: '#/components/responses/Missing'}\n"},
		{"an example that breaks its schema", "openapi: 3.1.0\ninfo: {title: t, version: '1'}\npaths:\n  /x:\n    get:\n      responses:\n        '200':\n          description: ok\n          content:\n            application/json:\n              schema: {type: integer}\n              examples: {bad: {value: nope}}\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := apispec.Load(t.Context(), []byte(c.doc))
			assert.Error(t, err)
		})
	}
}

func runExchanges(t *testing.T, cases []exchange, opts ...apispec.Option) {
	s, err := apispec.Gateway(t.Context(), opts...)
	require.NoError(t, err)
	fake := &fakeGateway{}
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fake.set(c.ans)
			rec := &recordingTB{TB: t}
			hc := &http.Client{Transport: s.Transport(rec, srv.Client().Transport)}
			resp, err := hc.Do(request(t, srv.URL, c))
			require.NoError(t, err)
			got, err := io.ReadAll(resp.Body)
			require.NoError(t, resp.Body.Close())
			require.NoError(t, err)
			assert.Equal(t, c.ans.body, string(got), "the caller reads the response body after validation")
			assert.Equal(t, c.body, string(fake.got), "the gateway receives the request body unchanged")

			reported := rec.reported()
			if c.want == nil {
				assert.Empty(t, reported, "a conforming exchange was reported")
				return
			}
			require.Len(t, reported, 1, "a mismatch is reported once")
			assert.Contains(t, reported[0], c.method+" "+c.target+" -> "+fmt.Sprint(c.ans.status), "the report names method, target and status")
			assert.Contains(t, reported[0], c.want.Error())

			// The same exchange, validated as a recorded pair, names the
			// sentinel.
			req := request(t, srv.URL, c)
			resp2 := &http.Response{StatusCode: c.ans.status, Header: resp.Header, Body: io.NopCloser(strings.NewReader(c.ans.body))}
			verr := s.Validate(t.Context(), req, []byte(c.body), resp2)
			var m *apispec.Mismatch
			require.ErrorAs(t, verr, &m)
			assert.ErrorIs(t, verr, c.want)
			assert.Equal(t, c.ans.status, m.Status)
		})
	}
}

func TestTransportReportsEveryMismatch(t *testing.T) {
	runExchanges(t, strictCases)
}

func TestAllowRefusedAcceptsRefusalsOnly(t *testing.T) {
	runExchanges(t, refusalCases, apispec.AllowRefused())
}

func TestValidateARecordedExchange(t *testing.T) {
	s, err := apispec.Gateway(t.Context())
	require.NoError(t, err)
	handler := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", jsonCT)
		w.WriteHeader(http.StatusAccepted)
		_, _ = io.WriteString(w, queued)
	}
	req := httptest.NewRequest(http.MethodPost, "/v1/readings", strings.NewReader(readingEnvelope))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	handler(rec, req)

	resp := rec.Result()
	require.NoError(t, s.Validate(t.Context(), req, []byte(readingEnvelope), resp))
	got, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	assert.JSONEq(t, queued, string(got), "the body stays readable after Validate")

	resp = rec.Result()
	resp.StatusCode = http.StatusCreated
	fake := &recordingTB{TB: t}
	assert.False(t, s.Assert(fake, req, []byte(readingEnvelope), resp), "a queued body sent as 201 lacks txId")
	reported := fake.reported()
	require.Len(t, reported, 1)
	assert.Contains(t, reported[0], "POST /v1/readings -> 201 (submitReading)")
}

func TestHandlerChecksWhatTheGatewayAnswers(t *testing.T) {
	cases := []struct {
		name   string
		ans    answer
		report bool
	}{
		{"a conforming answer is not reported", answer{status: http.StatusAccepted, ctype: jsonCT, body: queued}, false},
		{"an answer without its readingId is reported", answer{status: http.StatusAccepted, ctype: jsonCT,
			body: `{"dataHash":"` + dataHash + `","cid":"` + cid + `","status":"queued"}`}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fake := &fakeGateway{}
			fake.set(c.ans)
			rec := &recordingTB{TB: t}
			srv := httptest.NewServer(apispec.NewHandler(rec, fake))
			defer srv.Close()
			resp, err := srv.Client().Post(srv.URL+"/v1/readings?wait=commit", "application/json", strings.NewReader(readingEnvelope))
			require.NoError(t, err)
			got, err := io.ReadAll(resp.Body)
			require.NoError(t, resp.Body.Close())
			require.NoError(t, err)
			assert.Equal(t, c.ans.status, resp.StatusCode)
			assert.Equal(t, c.ans.body, string(got), "the client gets the gateway's answer unchanged")
			assert.Equal(t, readingEnvelope, string(fake.got), "the gateway gets the request body unchanged")
			if !c.report {
				assert.Empty(t, rec.reported())
				return
			}
			if assert.Len(t, rec.reported(), 1) {
				assert.Contains(t, rec.reported()[0], "POST /v1/readings?wait=commit -> 202 (submitReading)")
				assert.Contains(t, rec.reported()[0], "readingId")
			}
		})
	}
}

func TestTransportIsSafeForConcurrentUse(t *testing.T) {
	fake := &fakeGateway{}
	fake.set(answer{status: http.StatusAccepted, ctype: jsonCT, body: queued})
	srv := httptest.NewServer(fake)
	defer srv.Close()
	rec := &recordingTB{TB: t}
	hc := &http.Client{Transport: apispec.NewTransport(rec, srv.Client().Transport)}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 5 {
				resp, err := hc.Post(srv.URL+"/v1/readings", "application/json", bytes.NewReader([]byte(readingEnvelope)))
				if !assert.NoError(t, err) {
					return
				}
				_, err = io.Copy(io.Discard, resp.Body)
				assert.NoError(t, err)
				assert.NoError(t, resp.Body.Close())
			}
		})
	}
	wg.Wait()
	assert.Empty(t, rec.reported())
}

func TestTransportReturnsSendErrors(t *testing.T) {
	rec := &recordingTB{TB: t}
	broken := roundTripFunc(func(*http.Request) (*http.Response, error) { return nil, errors.New("connection refused") })
	hc := &http.Client{Transport: apispec.NewTransport(rec, broken)}
	_, err := hc.Get("http://gateway.invalid/healthz")
	require.ErrorContains(t, err, "connection refused")
	assert.Empty(t, rec.reported(), "a request that was never answered is not a spec mismatch")
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
