package client_test

import (
	"crypto/ecdsa"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/medprov/medprov/client"
	"github.com/medprov/medprov/envelope"
	"github.com/medprov/medprov/internal/testkit"
	"github.com/medprov/medprov/wire"
)

// recorded is what the fake gateway saw of one request.
type recorded struct {
	method, requestURI, path string
	header                   http.Header
	body                     []byte
}

// fakeGateway answers every request with status and body and records it.
type fakeGateway struct {
	mu     sync.Mutex
	reqs   []recorded
	status int
	body   string
	header map[string]string
}

func (f *fakeGateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	f.reqs = append(f.reqs, recorded{r.Method, r.RequestURI, r.URL.Path, r.Header.Clone(), b})
	f.mu.Unlock()
	for k, v := range f.header {
		w.Header().Set(k, v)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(f.status)
	if _, err := io.WriteString(w, f.body); err != nil {
		panic(err)
	}
}

func (f *fakeGateway) last(t *testing.T) recorded {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	require.NotEmpty(t, f.reqs, "the gateway received no request")
	return f.reqs[len(f.reqs)-1]
}

func newFake(t *testing.T, status int, body string, opts ...client.Option) (*fakeGateway, *client.Client) {
	t.Helper()
	f := &fakeGateway{status: status, body: body}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	c, err := client.New(srv.URL, append([]client.Option{client.WithHTTPClient(srv.Client())}, opts...)...)
	require.NoError(t, err)
	return f, c
}

// openEnvelopeBytes parses a body envelope, checks its signature under pub
// and returns its payload.
func openEnvelopeBytes(t *testing.T, raw []byte, pub *ecdsa.PublicKey) []byte {
	t.Helper()
	env, err := envelope.Parse(raw)
	require.NoError(t, err, "body is not an envelope: %s", raw)
	require.NoError(t, env.Verify(pub), "envelope signature")
	return env.Payload
}

// openEnvelope is openEnvelopeBytes with the payload decoded into a map.
func openEnvelope(t *testing.T, raw []byte, pub *ecdsa.PublicKey) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(openEnvelopeBytes(t, raw, pub), &m), "payload")
	return m
}

// checkHeader asserts the common action fields.
func checkHeader(t *testing.T, m map[string]any, action, actorID string, now time.Time) {
	t.Helper()
	assert.Equal(t, action, m["action"], "action")
	assert.Equal(t, actorID, m["actorId"], "actorId")
	assert.Equal(t, now.UTC().Format(time.RFC3339), m["issuedAt"], "issuedAt")
	s, ok := m["nonce"].(string)
	require.True(t, ok, "nonce %v is not a string", m["nonce"])
	nonce, err := base64.StdEncoding.DecodeString(s)
	assert.NoError(t, err, "nonce %q is not base64", s)
	assert.GreaterOrEqual(t, len(nonce), 16, "nonce %q is shorter than 16 bytes", s)
}

var fixedNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func TestSignedPosts(t *testing.T) {
	actor := testkit.MustKey(t)
	tests := []struct {
		name     string
		call     func(t *testing.T, c *client.Client)
		respBody string
		path     string
		action   string
		fields   map[string]any
	}{
		{
			name: "device registration is signed by the operator",
			call: func(t *testing.T, c *client.Client) {
				d, err := c.RegisterDevice(t.Context(), client.DeviceRegistration{DeviceID: "dev-1", PatientID: "pat-1", DeviceType: "ecg", PublicKey: "PEM"})
				require.NoError(t, err)
				assert.Equal(t, "tx1", d.RegisteredTx)
			},
			respBody: `{"id":"dev-1","status":"active","registeredTx":"tx1"}`,
			path:     "/v1/devices",
			action:   wire.ActionDeviceRegister,
			fields:   map[string]any{"deviceId": "dev-1", "patientId": "pat-1", "deviceType": "ecg", "publicKey": "PEM"},
		},
		{
			name: "device revocation goes to the device's revoke route",
			call: func(t *testing.T, c *client.Client) {
				_, err := c.RevokeDevice(t.Context(), "dev-1")
				require.NoError(t, err)
			},
			respBody: `{"id":"dev-1","status":"revoked"}`,
			path:     "/v1/devices/dev-1/revoke",
			action:   wire.ActionDeviceRevoke,
			fields:   map[string]any{"deviceId": "dev-1"},
		},
		{
			name: "consent grant carries purpose, types and window",
			call: func(t *testing.T, c *client.Client) {
				r, err := c.GrantConsent(t.Context(), client.ConsentGrant{GranteeID: "res-1", Purpose: "study.x", DataTypes: []string{"ecg", "spo2"}, NotBefore: fixedNow, NotAfter: fixedNow.Add(24 * time.Hour)})
				require.NoError(t, err)
				assert.Equal(t, "cns-1", r.ConsentID)
				assert.Equal(t, "tx2", r.TxID)
			},
			respBody: `{"consentId":"cns-1","txId":"tx2"}`,
			path:     "/v1/consents",
			action:   wire.ActionConsentGrant,
			fields:   map[string]any{"granteeId": "res-1", "purpose": "study.x", "dataTypes": []any{"ecg", "spo2"}, "notBefore": "2026-03-01T12:00:00Z", "notAfter": "2026-03-02T12:00:00Z"},
		},
		{
			name: "consent revocation returns the revoked consent",
			call: func(t *testing.T, c *client.Client) {
				r, err := c.RevokeConsent(t.Context(), "cns-1")
				require.NoError(t, err)
				assert.Equal(t, "cns-1", r.ConsentID)
				assert.Equal(t, "tx3", r.TxID)
				assert.Equal(t, "revoked", r.Consent.Status)
			},
			respBody: `{"consentId":"cns-1","txId":"tx3","block":4,"consent":{"id":"cns-1","status":"revoked","grantedTx":"tx2","revokedTx":"tx3"}}`,
			path:     "/v1/consents/cns-1/revoke",
			action:   wire.ActionConsentRevoke,
			fields:   map[string]any{"consentId": "cns-1"},
		},
		{
			name: "access request carries the range and cursor",
			call: func(t *testing.T, c *client.Client) {
				g, err := c.RequestAccess(t.Context(), client.AccessRequest{PatientID: "pat-1", Purpose: "study.x", DataTypes: []string{"ecg"}, From: fixedNow, To: fixedNow.Add(time.Hour), Cursor: "cur"})
				require.NoError(t, err)
				assert.Equal(t, "acc-1", g.AccessID)
				require.Len(t, g.Readings, 1)
				assert.Equal(t, "hi", string(g.Readings[0].Payload))
			},
			respBody: `{"accessId":"acc-1","decision":"granted","readings":[{"readingId":"d:1","payload":"aGk=","signature":"AQ==","dataHash":"ab","cid":"Qm"}]}`,
			path:     "/v1/access",
			action:   wire.ActionAccessRequest,
			fields:   map[string]any{"patientId": "pat-1", "purpose": "study.x", "dataTypes": []any{"ecg"}, "from": "2026-03-01T12:00:00Z", "to": "2026-03-01T13:00:00Z", "cursor": "cur"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, c := newFake(t, http.StatusOK, tt.respBody, client.WithActor("actor-1", actor), client.WithClock(func() time.Time { return fixedNow }))
			tt.call(t, c)
			got := f.last(t)
			assert.Equal(t, http.MethodPost, got.method)
			assert.Equal(t, tt.path, got.path)
			assert.Equal(t, "application/json", got.header.Get("Content-Type"))
			m := openEnvelope(t, got.body, &actor.PublicKey)
			checkHeader(t, m, tt.action, "actor-1", fixedNow)
			for k, want := range tt.fields {
				assert.JSONEq(t, string(testkit.MustJSON(t, want)), string(testkit.MustJSON(t, m[k])), "payload %s", k)
			}
			assert.Len(t, m, 4+len(tt.fields), "payload fields")
		})
	}
}

func TestSignedCallWithoutActorFailsBeforeSending(t *testing.T) {
	f, c := newFake(t, http.StatusOK, `{}`)
	_, err := c.GrantConsent(t.Context(), client.ConsentGrant{GranteeID: "r"})
	require.ErrorIs(t, err, client.ErrNoActor)
	_, err = c.Consents(t.Context(), "p")
	require.ErrorIs(t, err, client.ErrNoActor, "GET")
	assert.Empty(t, f.reqs, "requests sent")
}

func TestRegisterActorSendsAdminToken(t *testing.T) {
	f, c := newFake(t, http.StatusCreated, `{"id":"pat-1","role":"patient","status":"active","registeredTx":"tx0"}`, client.WithAdminToken("s3cret"))
	a, err := c.RegisterActor(t.Context(), wire.ActorInput{ID: "pat-1", Role: "patient", PublicKey: "PEM"})
	require.NoError(t, err)
	assert.Equal(t, "tx0", a.RegisteredTx)
	assert.Equal(t, "active", a.Status)
	got := f.last(t)
	assert.Equal(t, "/v1/actors", got.path)
	assert.Equal(t, "Bearer s3cret", got.header.Get("Authorization"))
	assert.Equal(t, `{"id":"pat-1","role":"patient","publicKey":"PEM"}`, string(got.body))
}

func TestSubmitReading(t *testing.T) {
	dev := testkit.MustKey(t)
	p, err := client.NewReading("dev-1", 7, "heart_rate", "bpm", 72, fixedNow)
	require.NoError(t, err)
	env, err := client.SignReading(dev, p)
	require.NoError(t, err)
	t.Run("the payload is the wire reading in wire order", func(t *testing.T) {
		require.NoError(t, env.Verify(&dev.PublicKey))
		want := `{"deviceId":"dev-1","seq":7,"type":"heart_rate","unit":"bpm","value":72,"measuredAt":"2026-03-01T12:00:00Z","nonce":"` + p.Nonce + `"}`
		assert.Equal(t, want, string(env.Payload))
	})
	t.Run("wait for commit adds the query and decodes tx and block", func(t *testing.T) {
		f, c := newFake(t, http.StatusCreated, `{"readingId":"dev-1:7","dataHash":"h","cid":"c","status":"recorded","txId":"tx9","block":12}`)
		r, err := c.SubmitReading(t.Context(), env, client.WaitForCommit())
		require.NoError(t, err)
		assert.Equal(t, "tx9", r.TxID)
		assert.Equal(t, uint64(12), r.Block)
		assert.Equal(t, wire.StatusRecorded, r.Status)
		got := f.last(t)
		assert.Equal(t, "/v1/readings?wait=commit", got.requestURI)
		assert.Equal(t, string(env.Payload), string(openEnvelopeBytes(t, got.body, &dev.PublicKey)), "the body's payload is not the signed reading")
	})
	t.Run("without waiting the request has no query", func(t *testing.T) {
		f, c := newFake(t, http.StatusAccepted, `{"readingId":"dev-1:7","status":"queued"}`)
		r, err := c.SubmitReading(t.Context(), env)
		require.NoError(t, err)
		assert.Equal(t, "/v1/readings", f.last(t).requestURI)
		assert.Equal(t, wire.StatusQueued, r.Status)
	})
	t.Run("a string value is refused", func(t *testing.T) {
		_, err := client.NewReading("d", 1, "t", "u", "seventy", fixedNow)
		require.ErrorIs(t, err, client.ErrBadValue)
	})
	t.Run("two readings never share a nonce", func(t *testing.T) {
		q, err := client.NewReading("dev-1", 7, "heart_rate", "bpm", 72, fixedNow)
		require.NoError(t, err)
		assert.NotEqual(t, p.Nonce, q.Nonce, "nonce repeated")
	})
}

func TestSubmitReadingsBatch(t *testing.T) {
	dev := testkit.MustKey(t)
	var envs []envelope.Envelope
	for seq := uint64(1); seq <= 2; seq++ {
		p, err := client.NewReading("dev-1", seq, "spo2", "%", 98, fixedNow)
		require.NoError(t, err)
		e, err := client.SignReading(dev, p)
		require.NoError(t, err)
		envs = append(envs, e)
	}
	f, c := newFake(t, http.StatusMultiStatus, `{"results":[{"index":0,"readingId":"dev-1:1","status":"queued"},{"index":1,"readingId":"dev-1:2","status":"rejected","error":{"code":"conflict","message":"duplicate seq"}}]}`)
	b, err := c.SubmitReadings(t.Context(), envs)
	require.NoError(t, err)
	assert.Len(t, b.Results, 2)
	failed := b.Failed()
	if assert.Len(t, failed, 1) {
		if assert.NotNil(t, failed[0].Index) {
			assert.Equal(t, 1, *failed[0].Index)
		}
		if assert.NotNil(t, failed[0].Error) {
			assert.Equal(t, wire.Code("conflict"), failed[0].Error.Code)
		}
	}
	var body struct {
		Readings []json.RawMessage `json:"readings"`
	}
	require.NoError(t, json.Unmarshal(f.last(t).body, &body))
	require.Len(t, body.Readings, 2, "readings sent")
	for i, raw := range body.Readings {
		assert.Equal(t, string(envs[i].Payload), string(openEnvelopeBytes(t, raw, &dev.PublicKey)), "reading %d payload differs", i)
	}
}

func TestSignedGets(t *testing.T) {
	actor := testkit.MustKey(t)
	tests := []struct {
		name    string
		call    func(t *testing.T, c *client.Client)
		body    string
		wantURI string
	}{
		{
			name: "consents accept a bare array",
			call: func(t *testing.T, c *client.Client) {
				cs, err := c.Consents(t.Context(), "pat-1")
				require.NoError(t, err)
				require.Len(t, cs, 1)
				assert.Len(t, cs[0].History, 2)
			},
			body:    `[{"id":"cns-1","status":"revoked","history":[{"txId":"a","status":"active"},{"txId":"b","status":"revoked"}]}]`,
			wantURI: "/v1/patients/pat-1/consents",
		},
		{
			name: "consents accept a page",
			call: func(t *testing.T, c *client.Client) {
				cs, err := c.Consents(t.Context(), "pat-1")
				require.NoError(t, err)
				assert.Len(t, cs, 1)
			},
			body:    `{"items":[{"id":"cns-1"}],"bookmark":"","count":1}`,
			wantURI: "/v1/patients/pat-1/consents",
		},
		{
			name: "access log passes page size and bookmark",
			call: func(t *testing.T, c *client.Client) {
				p, err := c.AccessLog(t.Context(), "pat-1", client.PageRequest{PageSize: 10, Bookmark: "b/1"})
				require.NoError(t, err)
				assert.Equal(t, 1, p.Count)
				assert.Equal(t, "next", p.Bookmark)
				require.NotEmpty(t, p.Items)
				assert.Equal(t, "denied", p.Items[0].Decision)
			},
			body:    `{"items":[{"id":"acc-1","decision":"denied","reason":"consent_revoked"}],"bookmark":"next","count":1}`,
			wantURI: "/v1/patients/pat-1/access-log?bookmark=b%2F1&pageSize=10",
		},
		{
			name: "audit events pass every filter",
			call: func(t *testing.T, c *client.Client) {
				_, err := c.AuditEvents(t.Context(), client.EventFilter{PatientID: "pat-1", ActorID: "res-1", Type: "access.denied", From: fixedNow, To: fixedNow.Add(time.Hour)}, client.PageRequest{PageSize: 5})
				require.NoError(t, err)
			},
			body:    `{"items":[],"bookmark":"","count":0}`,
			wantURI: "/v1/audit/events?actorId=res-1&from=2026-03-01T12%3A00%3A00Z&pageSize=5&patientId=pat-1&to=2026-03-01T13%3A00%3A00Z&type=access.denied",
		},
		{
			name: "provenance keeps the colon of a reading id",
			call: func(t *testing.T, c *client.Client) {
				p, err := c.Provenance(t.Context(), "dev-1:7")
				require.NoError(t, err)
				assert.Equal(t, "dev-1:7", p.Reading.ID)
				assert.Equal(t, "dev-1", p.Device.ID)
				require.NotNil(t, p.Tx)
				assert.Equal(t, uint64(3), p.Tx.Block)
			},
			body:    `{"reading":{"id":"dev-1:7"},"device":{"id":"dev-1"},"consents":[],"accesses":[],"tx":{"txId":"t","block":3}}`,
			wantURI: "/v1/readings/dev-1:7/provenance",
		},
		{
			name: "verify decodes the checks",
			call: func(t *testing.T, c *client.Client) {
				v, err := c.VerifyReading(t.Context(), "dev-1:7")
				require.NoError(t, err)
				assert.True(t, v.OK, "verification not OK: %+v", v)
				require.Len(t, v.Checks, 1)
				assert.Equal(t, "hash", v.Checks[0].Name)
			},
			body:    `{"readingId":"dev-1:7","ok":true,"checks":[{"name":"hash","ok":true}]}`,
			wantURI: "/v1/audit/verify/dev-1:7",
		},
		{
			name: "devices pass both filters and the page",
			call: func(t *testing.T, c *client.Client) {
				p, err := c.Devices(t.Context(), client.DeviceFilter{OperatorID: "op-1", PatientID: "pat-1"}, client.PageRequest{PageSize: 2, Bookmark: "b"})
				require.NoError(t, err)
				require.Len(t, p.Items, 1)
				assert.Equal(t, "dev-1", p.Items[0].ID)
				assert.Equal(t, "next", p.Bookmark)
			},
			body:    `{"items":[{"id":"dev-1","operatorId":"op-1","patientId":"pat-1"}],"bookmark":"next","count":1}`,
			wantURI: "/v1/devices?bookmark=b&operator=op-1&pageSize=2&patient=pat-1",
		},
		{
			name: "devices without a filter send none",
			call: func(t *testing.T, c *client.Client) {
				_, err := c.Devices(t.Context(), client.DeviceFilter{}, client.PageRequest{})
				require.NoError(t, err)
			},
			body:    `{"items":[],"bookmark":"","count":0}`,
			wantURI: "/v1/devices",
		},
		{
			name: "a device decodes its statistics",
			call: func(t *testing.T, c *client.Client) {
				d, err := c.Device(t.Context(), "dev-1")
				require.NoError(t, err)
				assert.Equal(t, "dev-1", d.Device.ID)
				assert.Equal(t, [2]any{100000, true}, [2]any{d.Stats.Readings, d.Stats.ReadingsCapped})
				require.NotNil(t, d.Stats.LastReading)
				assert.Equal(t, uint64(123456), d.Stats.LastReading.Seq)
			},
			body:    `{"device":{"id":"dev-1"},"stats":{"deviceId":"dev-1","readings":100000,"readingsCapped":true,"lastReading":{"readingId":"dev-1:123456","seq":123456}}}`,
			wantURI: "/v1/devices/dev-1",
		},
		{
			name: "actors pass the role",
			call: func(t *testing.T, c *client.Client) {
				p, err := c.Actors(t.Context(), wire.RolePatient, client.PageRequest{PageSize: 50})
				require.NoError(t, err)
				require.Len(t, p.Items, 1)
				assert.Equal(t, wire.RolePatient, p.Items[0].Role)
			},
			body:    `{"items":[{"id":"pat-1","role":"patient"}],"bookmark":"","count":1}`,
			wantURI: "/v1/actors?pageSize=50&role=patient",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, c := newFake(t, http.StatusOK, tt.body, client.WithActor("reg-1", actor), client.WithClock(func() time.Time { return fixedNow }))
			tt.call(t, c)
			got := f.last(t)
			assert.Equal(t, http.MethodGet, got.method)
			assert.Equal(t, tt.wantURI, got.requestURI)
			raw, err := base64.StdEncoding.DecodeString(got.header.Get(wire.SignatureHeader))
			require.NoError(t, err, "signature header is not base64")
			m := openEnvelope(t, raw, &actor.PublicKey)
			checkHeader(t, m, wire.ActionHTTPGet, "reg-1", fixedNow)
			assert.Equal(t, "GET", m["method"], "signed method")
			assert.Equal(t, got.requestURI, m["path"], "signed path")
		})
	}
}

func TestBaseURLPathIsAPrefix(t *testing.T) {
	f := &fakeGateway{status: http.StatusOK, body: `{}`}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	c, err := client.New(srv.URL+"/medprov/", client.WithActor("a", testkit.MustKey(t)))
	require.NoError(t, err)
	_, err = c.Provenance(t.Context(), "d:1")
	require.NoError(t, err)
	assert.Equal(t, "/medprov/v1/readings/d:1/provenance", f.last(t).requestURI)
}

func TestNewRefusesBadURLs(t *testing.T) {
	tests := []struct {
		name string
		url  string
	}{
		{"an empty URL is refused", ""},
		{"a host and port without a scheme is refused", "127.0.0.1:8080"},
		{"a scheme other than http or https is refused", "ftp://x"},
		{"a URL without a host is refused", "http://"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := client.New(tt.url)
			assert.Error(t, err, "New(%q) succeeded", tt.url)
		})
	}
}

func TestErrorResponses(t *testing.T) {
	tests := []struct {
		name     string
		status   int
		body     string
		header   map[string]string
		want     client.APIError
		sentinel error
	}{
		{
			name: "a denial carries its access id", status: 403,
			body:     `{"error":{"code":"consent_revoked","message":"consent revoked"},"accessId":"acc-9"}`,
			want:     client.APIError{Status: 403, Code: "consent_revoked", Message: "consent revoked", AccessID: "acc-9"},
			sentinel: client.ErrForbidden,
		},
		{
			name: "rate limiting carries Retry-After seconds", status: 429,
			body: `{"error":{"code":"rate_limited","message":"slow down"}}`, header: map[string]string{"Retry-After": "3"},
			want:     client.APIError{Status: 429, Code: "rate_limited", Message: "slow down", RetryAfter: 3 * time.Second},
			sentinel: client.ErrRateLimited,
		},
		{
			name: "unavailability is a 503", status: 503,
			body: `{"error":{"code":"unavailable","message":"ledger unavailable"}}`, header: map[string]string{"Retry-After": "1"},
			want:     client.APIError{Status: 503, Code: "unavailable", Message: "ledger unavailable", RetryAfter: time.Second},
			sentinel: client.ErrUnavailable,
		},
		{
			name: "a duplicate is a conflict", status: 409,
			body:     `{"error":{"code":"conflict","message":"duplicate seq"}}`,
			want:     client.APIError{Status: 409, Code: "conflict", Message: "duplicate seq"},
			sentinel: client.ErrConflict,
		},
		{
			name: "a body that is not JSON becomes the message", status: 502,
			body: "bad gateway\n",
			want: client.APIError{Status: 502, Message: "bad gateway"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, c := newFake(t, tt.status, tt.body, client.WithActor("r", testkit.MustKey(t)))
			f.header = tt.header
			_, err := c.RequestAccess(t.Context(), client.AccessRequest{PatientID: "p"})
			var ae *client.APIError
			require.ErrorAs(t, err, &ae)
			assert.Equal(t, tt.want, *ae)
			if tt.sentinel != nil {
				assert.ErrorIs(t, err, tt.sentinel)
			}
			assert.NotErrorIs(t, err, client.ErrNotFound)
			id, denied := client.IsDenied(err)
			assert.Equal(t, tt.want.AccessID != "", denied, "IsDenied")
			assert.Equal(t, tt.want.AccessID, id, "IsDenied access id")
		})
	}
}

func TestRetryAfterAsHTTPDate(t *testing.T) {
	f, c := newFake(t, 503, `{"error":{"code":"unavailable","message":"x"}}`)
	f.header = map[string]string{"Retry-After": time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)}
	err := c.Ping(t.Context())
	var ae *client.APIError
	require.ErrorAs(t, err, &ae)
	assert.GreaterOrEqual(t, ae.RetryAfter, 58*time.Minute, "RetryAfter, want about an hour")
	assert.LessOrEqual(t, ae.RetryAfter, time.Hour, "RetryAfter, want about an hour")
}

func TestErrorMessageNamesStatusAndCode(t *testing.T) {
	e := &client.APIError{Status: 403, Code: "no_consent", Message: "no consent", AccessID: "acc-1"}
	got := e.Error()
	assert.Contains(t, got, "403")
	assert.Contains(t, got, "no_consent")
	assert.Contains(t, got, "acc-1")
}
