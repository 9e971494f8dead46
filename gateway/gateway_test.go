package gateway_test

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/medprov/medprov/client"
	"github.com/medprov/medprov/gateway"
	"github.com/medprov/medprov/internal/testkit"
	"github.com/medprov/medprov/node"
	"github.com/medprov/medprov/seal"
	"github.com/medprov/medprov/test/scenario"
	"github.com/medprov/medprov/wire"
)

const adminToken = "test-admin-token-0123456789"

// newServer runs a node in-process on the real embedded backends, wired
// as "medprov serve" wires it.
func newServer(t testing.TB) *node.Node {
	t.Helper()
	s, closeAll := openServer(t, t.TempDir())
	t.Cleanup(closeAll)
	return s
}

// openServer runs a node on the embedded backends kept in dir; the
// returned function closes it.
func openServer(t testing.TB, dir string) (*node.Node, func()) {
	t.Helper()
	mk, err := seal.LoadOrCreateMasterKey(filepath.Join(dir, "master.key"))
	require.NoError(t, err)
	n, err := node.Open(t.Context(), node.Config{DataDir: dir, MasterKey: mk, AdminToken: adminToken,
		Limits: gateway.Limits{DeviceRate: -1, ActorRate: -1}})
	require.NoError(t, err)
	return n, func() { assert.NoError(t, n.Close()) }
}

// metric returns the value of one series of /metrics, 0 when absent.
func metric(t *testing.T, s *node.Node, name string) float64 {
	t.Helper()
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequestWithContext(t.Context(), http.MethodGet, "/metrics", nil))
	m, err := client.ParseMetrics(rec.Body)
	require.NoError(t, err, "parsing /metrics")
	return m[name]
}

// waitMetric polls until the metric reaches want (10s at most).
func waitMetric(t *testing.T, s *node.Node, name string, want float64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for got := metric(t, s, name); got < want; got = metric(t, s, name) {
		require.False(t, time.Now().After(deadline), "%s = %v after 10s, want %v", name, got, want)
		time.Sleep(20 * time.Millisecond)
	}
}

func TestEventsResumeFromCheckpoint(t *testing.T) {
	dir := t.TempDir()
	const registered = `medprov_chaincode_events_total{event="ActorRegistered"}`
	s, closeAll := openServer(t, dir)
	register(t, s, "a1", wire.RolePatient)
	register(t, s, "a2", wire.RolePatient)
	waitMetric(t, s, registered, 2)
	closeAll()

	s, closeAll = openServer(t, dir)
	defer closeAll()
	register(t, s, "a3", wire.RolePatient)
	waitMetric(t, s, registered, 1)
	time.Sleep(200 * time.Millisecond) // a replay of a1/a2 would have arrived before a3's event
	assert.Equal(t, float64(1), metric(t, s, registered),
		"ActorRegistered events handled after the restart: want only the new one")
}

var (
	specPath   = regexp.MustCompile(`^  (/[^:]*):\s*$`)
	specMethod = regexp.MustCompile(`^    (get|post|put|delete|patch):\s*$`)
	ginParam   = regexp.MustCompile(`:([A-Za-z]+)`)
)

// specRoutes reads "METHOD /path" pairs from the paths section of the spec.
func specRoutes(t *testing.T) []string {
	t.Helper()
	f, err := os.Open("openapi.yaml")
	require.NoError(t, err)
	defer f.Close()
	var out []string
	inPaths, cur := false, ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "paths:" {
			inPaths = true
			continue
		}
		if !inPaths {
			continue
		}
		if m := specPath.FindStringSubmatch(line); m != nil {
			cur = m[1]
		} else if m := specMethod.FindStringSubmatch(line); m != nil && cur != "" {
			out = append(out, strings.ToUpper(m[1])+" "+cur)
		}
	}
	require.NoError(t, sc.Err(), "reading openapi.yaml")
	sort.Strings(out)
	return out
}

func TestOpenAPIMatchesRouter(t *testing.T) {
	s := newServer(t)
	var router []string
	for _, r := range s.Gateway.Routes() {
		router = append(router, r.Method+" "+ginParam.ReplaceAllString(r.Path, "{$1}"))
	}
	sort.Strings(router)
	spec := specRoutes(t)
	assert.Subset(t, spec, router, "every route the router serves is documented in openapi.yaml")
	assert.Subset(t, router, spec, "every route openapi.yaml documents is served by the router")
	assert.GreaterOrEqual(t, len(router), 17, "the router serves every route of the design")

	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequestWithContext(t.Context(), http.MethodGet, "/openapi.yaml", nil))
	assert.Equal(t, http.StatusOK, rec.Code, "GET /openapi.yaml")
	assert.True(t, bytes.HasPrefix(rec.Body.Bytes(), []byte("openapi: 3")), "GET /openapi.yaml serves an OpenAPI 3 document")
}

// checkResponse fails unless the response is a non-5xx JSON answer whose
// error statuses carry an error code (503 is pushback, not a failure).
func checkResponse(t *testing.T, rec *httptest.ResponseRecorder) {
	t.Helper()
	if rec.Code >= 500 {
		require.Equal(t, http.StatusServiceUnavailable, rec.Code, "a server error: %s", rec.Body)
	}
	if rec.Code < 400 {
		return
	}
	var eb struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &eb), "status %d without a JSON error body: %q", rec.Code, rec.Body)
	require.NotEmpty(t, eb.Error.Code, "status %d without an error code: %q", rec.Code, rec.Body)
	require.NotEmpty(t, eb.Error.Message, "status %d without an error message: %q", rec.Code, rec.Body)
}

func post(t testing.TB, s *node.Node, path string, body []byte, hdr map[string]string) *httptest.ResponseRecorder {
	req := httptest.NewRequestWithContext(t.Context(), http.MethodPost, path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	return rec
}

// register registers an actor with a fresh key through the admin route.
func register(t testing.TB, s *node.Node, id, role string) *ecdsa.PrivateKey {
	t.Helper()
	k := testkit.MustKey(t)
	rec := post(t, s, "/v1/actors", testkit.MustJSON(t, map[string]string{"id": id, "role": role, "publicKey": testkit.PublicPEM(t, k)}),
		map[string]string{"Authorization": "Bearer " + adminToken})
	require.Equal(t, http.StatusCreated, rec.Code, "register %s: %s", id, rec.Body)
	return k
}

// withDevice registers operator "op", patient "pat" and device "dev" and
// returns the device key.
func withDevice(t testing.TB, s *node.Node) *ecdsa.PrivateKey {
	t.Helper()
	op := register(t, s, "op", wire.RoleOperator)
	register(t, s, "pat", wire.RolePatient)
	dk := testkit.MustKey(t)
	h, err := client.NewActionHeader(wire.ActionDeviceRegister, "op", time.Now())
	require.NoError(t, err)
	env, err := client.SignPayload(op, wire.DeviceRegisterAction{ActionHeader: h, DeviceID: "dev", PatientID: "pat", DeviceType: "hr", PublicKey: testkit.PublicPEM(t, dk)})
	require.NoError(t, err)
	rec := post(t, s, "/v1/devices", testkit.MustJSON(t, env), nil)
	require.Equal(t, http.StatusCreated, rec.Code, "register device: %s", rec.Body)
	return dk
}

func TestErrorsAreJSONWithStatus(t *testing.T) {
	s := newServer(t)
	tests := []struct {
		name   string
		method string
		path   string
		body   string
		hdr    map[string]string
		want   int
	}{
		{"unknown route is 404", http.MethodGet, "/v1/nothing", "", nil, http.StatusNotFound},
		{"wrong method is 405", http.MethodDelete, "/v1/readings", "", nil, http.StatusMethodNotAllowed},
		{"actor registration without the token is 401", http.MethodPost, "/v1/actors", `{}`, nil, http.StatusUnauthorized},
		{"actor registration with a bad key is 400", http.MethodPost, "/v1/actors", `{"id":"a","role":"patient","publicKey":"x"}`, map[string]string{"Authorization": "Bearer " + adminToken}, http.StatusBadRequest},
		{"a reading from an unknown device is 403", http.MethodPost, "/v1/readings", readingFor(t, "nobody"), nil, http.StatusForbidden},
		{"an empty body is 400", http.MethodPost, "/v1/consents", "", nil, http.StatusBadRequest},
		{"a signed GET without signature is 401", http.MethodGet, "/v1/audit/events", "", nil, http.StatusUnauthorized},
		{"a signed GET with garbage is 401", http.MethodGet, "/v1/audit/events", "", map[string]string{wire.SignatureHeader: "!!"}, http.StatusUnauthorized},
		{"an oversized consent is 413", http.MethodPost, "/v1/consents", `{"payload":"` + strings.Repeat("A", 100<<10) + `"}`, nil, http.StatusRequestEntityTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequestWithContext(t.Context(), tt.method, tt.path, strings.NewReader(tt.body))
			for k, v := range tt.hdr {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			s.Handler().ServeHTTP(rec, req)
			assert.Equal(t, tt.want, rec.Code, "status: %s", rec.Body)
			checkResponse(t, rec)
		})
	}
}

func readingFor(t testing.TB, dev string) string {
	t.Helper()
	return signedReading(t, testkit.MustKey(t), dev, 1)
}

func signedReading(t testing.TB, k *ecdsa.PrivateKey, dev string, seq uint64) string {
	t.Helper()
	p, err := client.NewReading(dev, seq, "heart_rate", "bpm", 70, time.Now())
	require.NoError(t, err)
	env, err := client.SignReading(k, p)
	require.NoError(t, err)
	return string(testkit.MustJSON(t, env))
}

// TestScenarioInProcess runs the end-to-end scenario suite against the
// gateway served in-process on the embedded backends (test/e2e runs the
// same suite against the built binary, with restarts).
func TestScenarioInProcess(t *testing.T) {
	s := newServer(t)
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	scenario.Run(t, scenario.Env{BaseURL: srv.URL, AdminToken: adminToken})
}
