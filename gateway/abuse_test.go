package gateway_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/medprov/medprov/client"
	"github.com/medprov/medprov/gateway"
	"github.com/medprov/medprov/internal/testkit"
	"github.com/medprov/medprov/node"
	"github.com/medprov/medprov/seal"
	"github.com/medprov/medprov/wire"
)

// Client addresses of the tests below: an attacker and its victims reach
// the gateway from different loopback addresses.
const (
	flooderAddr = "127.0.0.1:41000"
	victimAddr  = "[::1]:41001"
)

// newServerWith runs a node on the embedded backends with limits, logging
// to log (nil: the default logger).
func newServerWith(t *testing.T, limits gateway.Limits, log *slog.Logger) *node.Node {
	t.Helper()
	dir := t.TempDir()
	mk, err := seal.LoadOrCreateMasterKey(filepath.Join(dir, "master.key"))
	require.NoError(t, err)
	n, err := node.Open(t.Context(), node.Config{DataDir: dir, MasterKey: mk, AdminToken: adminToken, Limits: limits, Logger: log})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, n.Close()) })
	return n
}

// call serves one request from the client address addr.
func call(t testing.TB, s *node.Node, addr, method, path string, body []byte, hdr map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequestWithContext(t.Context(), method, path, bytes.NewReader(body))
	req.RemoteAddr = addr
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	return rec
}

// signedGET serves a GET of path signed by key for actorID, from addr.
func signedGET(t testing.TB, s *node.Node, addr string, key *ecdsa.PrivateKey, actorID, path string) *httptest.ResponseRecorder {
	t.Helper()
	h, err := client.SignedGetHeader(key, actorID, path, time.Now())
	require.NoError(t, err)
	return call(t, s, addr, http.MethodGet, path, nil, map[string]string{wire.SignatureHeader: h})
}

// action returns the body of a signed action: payload, with a fresh header
// for action and actorID, signed by key.
func action[P wire.Action](t testing.TB, key *ecdsa.PrivateKey, actionName, actorID string, payload P) []byte {
	t.Helper()
	h, err := client.NewActionHeader(actionName, actorID, time.Now())
	require.NoError(t, err)
	*payload.Header() = h
	env, err := client.SignPayload(key, payload)
	require.NoError(t, err)
	return testkit.MustJSON(t, env)
}

func consentGrant(grantee string) *wire.ConsentGrantAction {
	now := time.Now().UTC()
	return &wire.ConsentGrantAction{GranteeID: grantee, Purpose: "cardio-study", DataTypes: []string{"heart_rate"},
		NotBefore: now.Add(-time.Hour).Format(time.RFC3339), NotAfter: now.Add(time.Hour).Format(time.RFC3339)}
}

func accessRequest(patient string) *wire.AccessRequestAction {
	now := time.Now().UTC()
	return &wire.AccessRequestAction{PatientID: patient, Purpose: "cardio-study", DataTypes: []string{"heart_rate"},
		From: now.Add(-30 * time.Minute).Format(time.RFC3339), To: now.Format(time.RFC3339)}
}

// errorCode returns the error code of a JSON error answer.
func errorCode(t testing.TB, rec *httptest.ResponseRecorder) wire.Code {
	t.Helper()
	var eb wire.ErrorResponse
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &eb), "error body %q", rec.Body)
	return eb.Error.Code
}

// TestForgedRequestsDoNotSpendTheVictimsBudget floods requests with bad
// signatures naming a patient, a researcher and a device. Each victim's
// budget (5 requests, practically no refill) is smaller than the number of
// forgeries naming it, so had forgeries been charged to the identity they
// name, the victims' genuine requests below would be refused with 429.
func TestForgedRequestsDoNotSpendTheVictimsBudget(t *testing.T) {
	const victimBudget, flooderBudget = 5, 60
	s := newServerWith(t, gateway.Limits{
		ActorRate: 0.001, ActorBurst: victimBudget, DeviceRate: 0.001, DeviceBurst: victimBudget,
		ClientFailureRate: 0.001, ClientFailureBurst: flooderBudget,
	}, nil)
	dk := withDevice(t, s) // operator "op", patient "pat", device "dev"
	patKey := register(t, s, "pat2", wire.RolePatient)
	resKey := register(t, s, "res", wire.RoleResearcher)
	grant := call(t, s, victimAddr, http.MethodPost, "/v1/consents", action(t, patKey, wire.ActionConsentGrant, "pat2", consentGrant("res")), nil)
	require.Equal(t, http.StatusCreated, grant.Code, "grant: %s", grant.Body)
	var receipt wire.ConsentReceipt
	require.NoError(t, json.Unmarshal(grant.Body.Bytes(), &receipt))

	forger := testkit.MustKey(t)
	consents := "/v1/patients/pat2/consents"
	revoke := "/v1/consents/" + receipt.ConsentID + "/revoke"
	// The flooder claims to forward for the victims' address: no proxy is
	// trusted, so its failures are still charged to its own.
	spoof := func(more ...string) map[string]string {
		h := map[string]string{"X-Forwarded-For": "::1", "X-Real-Ip": "::1"}
		for i := 0; i+1 < len(more); i += 2 {
			h[more[i]] = more[i+1]
		}
		return h
	}
	forgeries := []struct {
		name string
		send func(t *testing.T) *httptest.ResponseRecorder
	}{
		{"a consent revoke naming the patient", func(t *testing.T) *httptest.ResponseRecorder {
			return call(t, s, flooderAddr, http.MethodPost, revoke,
				action(t, forger, wire.ActionConsentRevoke, "pat2", &wire.ConsentRevokeAction{ConsentID: receipt.ConsentID}), spoof())
		}},
		{"a signed GET naming the patient", func(t *testing.T) *httptest.ResponseRecorder {
			h, err := client.SignedGetHeader(forger, "pat2", consents, time.Now())
			require.NoError(t, err)
			return call(t, s, flooderAddr, http.MethodGet, consents, nil, spoof(wire.SignatureHeader, h))
		}},
		{"an access request naming the researcher", func(t *testing.T) *httptest.ResponseRecorder {
			return call(t, s, flooderAddr, http.MethodPost, "/v1/access", action(t, forger, wire.ActionAccessRequest, "res", accessRequest("pat2")), spoof())
		}},
		{"a reading naming the device", func(t *testing.T) *httptest.ResponseRecorder {
			return call(t, s, flooderAddr, http.MethodPost, "/v1/readings", []byte(signedReading(t, forger, "dev", 7)), spoof())
		}},
	}
	var last *httptest.ResponseRecorder
	for round := range 2 * flooderBudget / len(forgeries) {
		for _, f := range forgeries {
			last = f.send(t)
			require.Contains(t, []int{http.StatusUnauthorized, http.StatusTooManyRequests}, last.Code,
				"round %d, forged %s: %s", round, f.name, last.Body)
		}
	}

	t.Run("the flooder's address is refused with 429 and Retry-After", func(t *testing.T) {
		for _, f := range forgeries {
			rec := f.send(t)
			assert.Equal(t, http.StatusTooManyRequests, rec.Code, "forged %s: %s", f.name, rec.Body)
			assert.Equal(t, wire.CodeRateLimited, errorCode(t, rec), "forged %s", f.name)
			assert.NotEmpty(t, rec.Header().Get("Retry-After"), "forged %s", f.name)
		}
		assert.Equal(t, http.StatusTooManyRequests, last.Code, "the last request of the flood")
	})
	t.Run("the genuine victims keep working", func(t *testing.T) {
		steps := []struct {
			name string
			send func(t *testing.T) *httptest.ResponseRecorder
			want int
		}{
			{"the patient reads their consents", func(t *testing.T) *httptest.ResponseRecorder {
				return signedGET(t, s, victimAddr, patKey, "pat2", consents)
			}, http.StatusOK},
			{"the researcher requests access", func(t *testing.T) *httptest.ResponseRecorder {
				return call(t, s, victimAddr, http.MethodPost, "/v1/access", action(t, resKey, wire.ActionAccessRequest, "res", accessRequest("pat2")), nil)
			}, http.StatusOK},
			{"the patient revokes the consent", func(t *testing.T) *httptest.ResponseRecorder {
				return call(t, s, victimAddr, http.MethodPost, revoke,
					action(t, patKey, wire.ActionConsentRevoke, "pat2", &wire.ConsentRevokeAction{ConsentID: receipt.ConsentID}), nil)
			}, http.StatusOK},
			{"the device submits a reading", func(t *testing.T) *httptest.ResponseRecorder {
				return call(t, s, victimAddr, http.MethodPost, "/v1/readings", []byte(signedReading(t, dk, "dev", 7)), nil)
			}, http.StatusAccepted},
		}
		for _, st := range steps {
			rec := st.send(t)
			assert.Equal(t, st.want, rec.Code, "%s: %s", st.name, rec.Body)
		}
	})
}

// TestReplayedSignaturesDoNotSpendTheActorsBudget replays one captured
// signed GET and one captured signed action many times: the replays are
// refused and charged to the replaying address, and the actor's own
// requests keep working.
func TestReplayedSignaturesDoNotSpendTheActorsBudget(t *testing.T) {
	const budget = 5
	s := newServerWith(t, gateway.Limits{ActorRate: 0.001, ActorBurst: budget, ClientFailureRate: -1}, nil)
	patKey := register(t, s, "pat", wire.RolePatient)
	register(t, s, "res", wire.RoleResearcher)
	path := "/v1/patients/pat/consents"
	hdr, err := client.SignedGetHeader(patKey, "pat", path, time.Now())
	require.NoError(t, err)
	get := map[string]string{wire.SignatureHeader: hdr}
	require.Equal(t, http.StatusOK, call(t, s, victimAddr, http.MethodGet, path, nil, get).Code, "the captured GET")
	grant := action(t, patKey, wire.ActionConsentGrant, "pat", consentGrant("res"))
	require.Equal(t, http.StatusCreated, call(t, s, victimAddr, http.MethodPost, "/v1/consents", grant, nil).Code, "the captured grant")

	for range 4 * budget {
		rec := call(t, s, flooderAddr, http.MethodGet, path, nil, get)
		require.Equal(t, http.StatusUnauthorized, rec.Code, "replayed GET: %s", rec.Body)
		rec = call(t, s, flooderAddr, http.MethodPost, "/v1/consents", grant, nil)
		require.Equal(t, http.StatusConflict, rec.Code, "replayed grant: %s", rec.Body)
	}
	assert.Equal(t, http.StatusOK, signedGET(t, s, victimAddr, patKey, "pat", path).Code, "the patient's next GET")
	rec := call(t, s, victimAddr, http.MethodPost, "/v1/consents", action(t, patKey, wire.ActionConsentGrant, "pat", consentGrant("res")), nil)
	assert.Equal(t, http.StatusCreated, rec.Code, "the patient's next grant: %s", rec.Body)
}

// TestFloodsOfUnknownIDsStayWithinTheBounds floods readings naming 50 000
// unregistered devices, each from its own address, and signed GETs naming
// unregistered actors and more nonces than the store holds, and checks
// that every cache keyed by request input fills up to its bound and no
// further.
func TestFloodsOfUnknownIDsStayWithinTheBounds(t *testing.T) {
	const bound, flood = 1000, 50_000
	s := newServerWith(t, gateway.Limits{MaxUnknownKeys: bound, MaxLimiterKeys: bound, MaxNonces: 50, DeviceRate: -1}, nil)
	cache := func(name string) float64 {
		return metric(t, s, `medprov_gateway_cache_entries{cache="`+name+`"}`)
	}

	t.Run("unknown devices and client addresses", func(t *testing.T) {
		sig := base64.StdEncoding.EncodeToString([]byte("not a signature"))
		for i := range flood {
			p, err := client.NewReading(fmt.Sprintf("junk-%d", i), 1, "heart_rate", "bpm", 70, time.Now())
			require.NoError(t, err)
			body := fmt.Sprintf(`{"payload":%q,"signature":%q}`, base64.StdEncoding.EncodeToString(testkit.MustJSON(t, p)), sig)
			addr := fmt.Sprintf("127.%d.%d.%d:4000", i>>16&0xff, i>>8&0xff, i&0xff)
			rec := call(t, s, addr, http.MethodPost, "/v1/readings", []byte(body), nil)
			require.Equal(t, http.StatusForbidden, rec.Code, "reading %d: %s", i, rec.Body)
		}
		assert.Equal(t, float64(bound), cache("unknown_ids"), "unknown device IDs remembered")
		assert.Equal(t, float64(bound), cache("client_failure_limits"), "client addresses with a failure budget")
	})
	t.Run("unknown actors", func(t *testing.T) {
		k := testkit.MustKey(t)
		for i := range 2 * bound {
			addr := fmt.Sprintf("127.1.%d.%d:4000", i>>8&0xff, i&0xff)
			rec := signedGET(t, s, addr, k, fmt.Sprintf("nobody-%d", i), "/v1/audit/events")
			require.Equal(t, http.StatusUnauthorized, rec.Code, "GET %d: %s", i, rec.Body)
		}
		assert.LessOrEqual(t, cache("unknown_ids"), float64(bound), "unknown actor IDs remembered")
		assert.LessOrEqual(t, cache("actor_limits"), float64(bound), "actors with a budget")
	})
	t.Run("nonces", func(t *testing.T) {
		const path = "/v1/audit/events"
		k := register(t, s, "reg", wire.RoleRegulator)
		start := time.Now().Add(-4 * time.Minute).Truncate(time.Second)
		var first string
		for i := range 150 {
			// One second apart, so that no two share an issuedAt.
			h, err := client.SignedGetHeader(k, "reg", path, start.Add(time.Duration(i)*time.Second))
			require.NoError(t, err)
			if i == 0 {
				first = h
			}
			rec := call(t, s, victimAddr, http.MethodGet, path, nil, map[string]string{wire.SignatureHeader: h})
			require.Equal(t, http.StatusOK, rec.Code, "GET %d: %s", i, rec.Body)
		}
		assert.Equal(t, float64(50), cache("nonces"), "nonces remembered")
		rec := call(t, s, victimAddr, http.MethodGet, path, nil, map[string]string{wire.SignatureHeader: first})
		assert.Equal(t, http.StatusUnauthorized, rec.Code, "a replay of a forgotten nonce is still refused: %s", rec.Body)
	})
}

// TestSignedGETNonceRefusedAfterRestart replays a signed GET's header
// after the node restarts on the same data directory.
func TestSignedGETNonceRefusedAfterRestart(t *testing.T) {
	const path = "/v1/audit/events"
	dir := t.TempDir()
	s, closeAll := openServer(t, dir)
	k := register(t, s, "reg", wire.RoleRegulator)
	hdr, err := client.SignedGetHeader(k, "reg", path, time.Now())
	require.NoError(t, err)
	captured := map[string]string{wire.SignatureHeader: hdr}
	require.Equal(t, http.StatusOK, call(t, s, victimAddr, http.MethodGet, path, nil, captured).Code, "the first use")
	require.Equal(t, http.StatusUnauthorized, call(t, s, flooderAddr, http.MethodGet, path, nil, captured).Code, "a replay")
	closeAll()

	s, closeAll = openServer(t, dir)
	defer closeAll()
	rec := call(t, s, flooderAddr, http.MethodGet, path, nil, captured)
	assert.Equal(t, http.StatusUnauthorized, rec.Code, "a replay after the restart: %s", rec.Body)
	assert.Equal(t, http.StatusOK, signedGET(t, s, victimAddr, k, "reg", path).Code, "a fresh signature after the restart")
}

// TestProvenanceDoesNotTellWhetherAReadingExists asks for the provenance
// of someone else's reading and of a reading that does not exist: both
// answers are the same 404.
func TestProvenanceDoesNotTellWhetherAReadingExists(t *testing.T) {
	s := newServer(t)
	dk := withDevice(t, s)
	rec := post(t, s, "/v1/readings?wait=commit", []byte(signedReading(t, dk, "dev", 1)), nil)
	require.Equal(t, http.StatusCreated, rec.Code, "reading: %s", rec.Body)
	other := register(t, s, "other", wire.RolePatient)
	reg := register(t, s, "reg", wire.RoleRegulator)

	tests := []struct {
		name    string
		key     *ecdsa.PrivateKey
		actor   string
		reading string
		want    int
	}{
		{"another patient's reading is not found", other, "other", "dev:1", http.StatusNotFound},
		{"a missing reading is not found", other, "other", "dev:999", http.StatusNotFound},
		{"a missing reading is not found for a regulator", reg, "reg", "dev:999", http.StatusNotFound},
		{"a regulator reads the reading's provenance", reg, "reg", "dev:1", http.StatusOK},
	}
	bodies := map[string]bool{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := signedGET(t, s, victimAddr, tt.key, tt.actor, "/v1/readings/"+tt.reading+"/provenance")
			require.Equal(t, tt.want, rec.Code, "%s", rec.Body)
			checkResponse(t, rec)
			if tt.want == http.StatusNotFound {
				bodies[rec.Body.String()] = true
			}
		})
	}
	assert.Len(t, bodies, 1, "every 404 answers the same body: %v", bodies)
}

// logRecords is a slog.Handler that keeps every record.
type logRecords struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (l *logRecords) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecords) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recs = append(l.recs, r.Clone())
	return nil
}
func (l *logRecords) WithAttrs([]slog.Attr) slog.Handler { return l } // not used by the node
func (l *logRecords) WithGroup(string) slog.Handler      { return l }

// since returns the records with message msg logged after the first n.
func (l *logRecords) since(n int, msg string) []slog.Record {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []slog.Record
	for _, r := range l.recs[n:] {
		if r.Message == msg {
			out = append(out, r)
		}
	}
	return out
}

func (l *logRecords) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.recs)
}

// text renders a record's attributes as key=value pairs.
func text(r slog.Record) string {
	var b strings.Builder
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, "%s=%v ", a.Key, a.Value)
		return true
	})
	return b.String()
}

func TestRequestLog(t *testing.T) {
	const burst = 3
	logs := &logRecords{}
	s := newServerWith(t, gateway.Limits{UnauthenticatedLogRate: 0.001, UnauthenticatedLogBurst: burst,
		ClientFailureRate: -1, DeviceRate: -1, ActorRate: -1}, slog.New(logs))

	t.Run("unauthenticated failures are logged at a bounded rate", func(t *testing.T) {
		const flood = 200
		from := logs.len()
		for range flood {
			rec := call(t, s, flooderAddr, http.MethodGet, "/v1/audit/events", nil, nil)
			require.Equal(t, http.StatusUnauthorized, rec.Code)
		}
		logged := len(logs.since(from, "request"))
		assert.LessOrEqual(t, logged, burst+1, "request lines logged for %d unauthenticated requests", flood)
		assert.Equal(t, float64(flood-logged), metric(t, s, "medprov_log_lines_suppressed_total"), "lines counted as suppressed")
	})

	t.Run("error fields name no pseudonymous ID", func(t *testing.T) {
		ids := []string{"op-51d2e8", "pat-7f3a9c", "dev-c0ffee42", "res-9b8a7f"}
		from := logs.len()
		op := register(t, s, ids[0], wire.RoleOperator)
		pat := register(t, s, ids[1], wire.RolePatient)
		res := register(t, s, ids[3], wire.RoleResearcher)
		dk := testkit.MustKey(t)
		device := func() []byte {
			return action(t, op, wire.ActionDeviceRegister, ids[0], &wire.DeviceRegisterAction{DeviceID: ids[2], PatientID: ids[1],
				DeviceType: "hr", PublicKey: testkit.PublicPEM(t, dk)})
		}
		require.Equal(t, http.StatusCreated, call(t, s, victimAddr, http.MethodPost, "/v1/devices", device(), nil).Code, "register the device")
		grant := call(t, s, victimAddr, http.MethodPost, "/v1/consents", action(t, pat, wire.ActionConsentGrant, ids[1], consentGrant(ids[3])), nil)
		require.Equal(t, http.StatusCreated, grant.Code, "grant: %s", grant.Body)
		var receipt wire.ConsentReceipt
		require.NoError(t, json.Unmarshal(grant.Body.Bytes(), &receipt))
		ids = append(ids, receipt.ConsentID)

		// Authenticated requests the chaincode refuses with its IDs in the message.
		refusals := []struct {
			name string
			rec  *httptest.ResponseRecorder
			want int
		}{
			{"a device registered twice", call(t, s, victimAddr, http.MethodPost, "/v1/devices", device(), nil), http.StatusConflict},
			{"a consent revoked by the researcher", call(t, s, victimAddr, http.MethodPost, "/v1/consents/"+receipt.ConsentID+"/revoke",
				action(t, res, wire.ActionConsentRevoke, ids[3], &wire.ConsentRevokeAction{ConsentID: receipt.ConsentID}), nil), http.StatusForbidden},
		}
		for _, r := range refusals {
			require.Equal(t, r.want, r.rec.Code, "%s: %s", r.name, r.rec.Body)
		}

		lines := logs.since(from, "request")
		kinds := 0
		for _, r := range lines {
			line := text(r)
			for _, id := range ids {
				assert.NotContains(t, line, id, "a request log line names an ID")
			}
			if strings.Contains(line, "errKind=chaincode_refusal:") {
				kinds++
			}
		}
		assert.GreaterOrEqual(t, kinds, len(refusals), "authenticated refusals are logged, with their class: %d lines", len(lines))
	})
}
