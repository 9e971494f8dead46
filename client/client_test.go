package client_test

import (
	"crypto/ecdsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/medprov/medprov/wire"

	"github.com/medprov/medprov/client"
	"github.com/medprov/medprov/envelope"
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
	if len(f.reqs) == 0 {
		t.Fatal("the gateway received no request")
	}
	return f.reqs[len(f.reqs)-1]
}

func newFake(t *testing.T, status int, body string, opts ...client.Option) (*fakeGateway, *client.Client) {
	t.Helper()
	f := &fakeGateway{status: status, body: body}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	c, err := client.New(srv.URL, append([]client.Option{client.WithHTTPClient(srv.Client())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return f, c
}

func mustKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := envelope.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustPEM(t testing.TB, k *ecdsa.PrivateKey) string {
	t.Helper()
	b, err := envelope.MarshalPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// openEnvelope parses a body envelope, checks its signature under pub and
// decodes its payload into a map.
func openEnvelope(t *testing.T, raw []byte, pub *ecdsa.PublicKey) map[string]any {
	t.Helper()
	env, err := envelope.Parse(raw)
	if err != nil {
		t.Fatalf("body is not an envelope: %v: %s", err, raw)
	}
	if err := env.Verify(pub); err != nil {
		t.Fatalf("envelope signature: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal(env.Payload, &m); err != nil {
		t.Fatalf("payload: %v", err)
	}
	return m
}

// checkHeader asserts the common action fields.
func checkHeader(t *testing.T, m map[string]any, action, actorID string, now time.Time) {
	t.Helper()
	if m["action"] != action || m["actorId"] != actorID {
		t.Errorf("action, actorId = %v, %v; want %s, %s", m["action"], m["actorId"], action, actorID)
	}
	if m["issuedAt"] != now.UTC().Format(time.RFC3339) {
		t.Errorf("issuedAt = %v, want %s", m["issuedAt"], now.UTC().Format(time.RFC3339))
	}
	nonce, err := base64.StdEncoding.DecodeString(m["nonce"].(string))
	if err != nil || len(nonce) < 16 {
		t.Errorf("nonce %v is not base64 of >= 16 bytes (%v)", m["nonce"], err)
	}
}

var fixedNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func TestSignedPosts(t *testing.T) {
	actor := mustKey(t)
	tests := []struct {
		name     string
		call     func(*client.Client) error
		respBody string
		path     string
		action   string
		fields   map[string]any
	}{
		{
			name: "device registration is signed by the operator",
			call: func(c *client.Client) error {
				d, err := c.RegisterDevice(t.Context(), client.DeviceRegistration{DeviceID: "dev-1", PatientID: "pat-1", DeviceType: "ecg", PublicKey: "PEM"})
				if err == nil && d.RegisteredTx != "tx1" {
					t.Errorf("RegisteredTx = %q, want tx1", d.RegisteredTx)
				}
				return err
			},
			respBody: `{"id":"dev-1","status":"active","registeredTx":"tx1"}`,
			path:     "/v1/devices",
			action:   wire.ActionDeviceRegister,
			fields:   map[string]any{"deviceId": "dev-1", "patientId": "pat-1", "deviceType": "ecg", "publicKey": "PEM"},
		},
		{
			name: "device revocation goes to the device's revoke route",
			call: func(c *client.Client) error {
				_, err := c.RevokeDevice(t.Context(), "dev-1")
				return err
			},
			respBody: `{"id":"dev-1","status":"revoked"}`,
			path:     "/v1/devices/dev-1/revoke",
			action:   wire.ActionDeviceRevoke,
			fields:   map[string]any{"deviceId": "dev-1"},
		},
		{
			name: "consent grant carries purpose, types and window",
			call: func(c *client.Client) error {
				r, err := c.GrantConsent(t.Context(), client.ConsentGrant{GranteeID: "res-1", Purpose: "study.x", DataTypes: []string{"ecg", "spo2"}, NotBefore: fixedNow, NotAfter: fixedNow.Add(24 * time.Hour)})
				if err == nil && (r.ConsentID != "cns-1" || r.TxID != "tx2") {
					t.Errorf("receipt = %+v, want cns-1/tx2", r)
				}
				return err
			},
			respBody: `{"consentId":"cns-1","txId":"tx2"}`,
			path:     "/v1/consents",
			action:   wire.ActionConsentGrant,
			fields:   map[string]any{"granteeId": "res-1", "purpose": "study.x", "dataTypes": []any{"ecg", "spo2"}, "notBefore": "2026-03-01T12:00:00Z", "notAfter": "2026-03-02T12:00:00Z"},
		},
		{
			name: "consent revocation returns the revoked consent",
			call: func(c *client.Client) error {
				r, err := c.RevokeConsent(t.Context(), "cns-1")
				if err == nil && (r.ConsentID != "cns-1" || r.TxID != "tx3" || r.Consent.Status != "revoked") {
					t.Errorf("receipt = %+v, want cns-1/tx3/revoked", r)
				}
				return err
			},
			respBody: `{"consentId":"cns-1","txId":"tx3","block":4,"consent":{"id":"cns-1","status":"revoked","grantedTx":"tx2","revokedTx":"tx3"}}`,
			path:     "/v1/consents/cns-1/revoke",
			action:   wire.ActionConsentRevoke,
			fields:   map[string]any{"consentId": "cns-1"},
		},
		{
			name: "access request carries the range and cursor",
			call: func(c *client.Client) error {
				g, err := c.RequestAccess(t.Context(), client.AccessRequest{PatientID: "pat-1", Purpose: "study.x", DataTypes: []string{"ecg"}, From: fixedNow, To: fixedNow.Add(time.Hour), Cursor: "cur"})
				if err == nil && (g.AccessID != "acc-1" || len(g.Readings) != 1 || string(g.Readings[0].Payload) != "hi") {
					t.Errorf("grant = %+v", g)
				}
				return err
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
			if err := tt.call(c); err != nil {
				t.Fatal(err)
			}
			got := f.last(t)
			if got.method != http.MethodPost || got.path != tt.path {
				t.Errorf("request = %s %s, want POST %s", got.method, got.path, tt.path)
			}
			if ct := got.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q", ct)
			}
			m := openEnvelope(t, got.body, &actor.PublicKey)
			checkHeader(t, m, tt.action, "actor-1", fixedNow)
			for k, want := range tt.fields {
				if g, _ := json.Marshal(m[k]); string(g) != mustJSON(t, want) {
					t.Errorf("payload %s = %s, want %s", k, g, mustJSON(t, want))
				}
			}
			if len(m) != 4+len(tt.fields) {
				t.Errorf("payload has %d fields, want %d: %v", len(m), 4+len(tt.fields), m)
			}
		})
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestSignedCallWithoutActorFailsBeforeSending(t *testing.T) {
	f, c := newFake(t, http.StatusOK, `{}`)
	_, err := c.GrantConsent(t.Context(), client.ConsentGrant{GranteeID: "r"})
	if !errors.Is(err, client.ErrNoActor) {
		t.Fatalf("err = %v, want ErrNoActor", err)
	}
	_, err = c.Consents(t.Context(), "p")
	if !errors.Is(err, client.ErrNoActor) {
		t.Fatalf("GET err = %v, want ErrNoActor", err)
	}
	if len(f.reqs) != 0 {
		t.Errorf("%d requests sent, want none", len(f.reqs))
	}
}

func TestRegisterActorSendsAdminToken(t *testing.T) {
	f, c := newFake(t, http.StatusCreated, `{"id":"pat-1","role":"patient","status":"active","registeredTx":"tx0"}`, client.WithAdminToken("s3cret"))
	a, err := c.RegisterActor(t.Context(), wire.ActorInput{ID: "pat-1", Role: "patient", PublicKey: "PEM"})
	if err != nil {
		t.Fatal(err)
	}
	if a.RegisteredTx != "tx0" || a.Status != "active" {
		t.Errorf("actor = %+v", a)
	}
	got := f.last(t)
	if got.path != "/v1/actors" || got.header.Get("Authorization") != "Bearer s3cret" {
		t.Errorf("request %s with Authorization %q", got.path, got.header.Get("Authorization"))
	}
	if want := `{"id":"pat-1","role":"patient","publicKey":"PEM"}`; string(got.body) != want {
		t.Errorf("body = %s, want %s", got.body, want)
	}
}

func TestSubmitReading(t *testing.T) {
	dev := mustKey(t)
	p, err := client.NewReading("dev-1", 7, "heart_rate", "bpm", 72, fixedNow)
	if err != nil {
		t.Fatal(err)
	}
	env, err := client.SignReading(dev, p)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("the payload is the wire reading in wire order", func(t *testing.T) {
		if err := env.Verify(&dev.PublicKey); err != nil {
			t.Fatal(err)
		}
		want := `{"deviceId":"dev-1","seq":7,"type":"heart_rate","unit":"bpm","value":72,"measuredAt":"2026-03-01T12:00:00Z","nonce":"` + p.Nonce + `"}`
		if string(env.Payload) != want {
			t.Errorf("payload = %s\nwant      %s", env.Payload, want)
		}
	})
	t.Run("wait for commit adds the query and decodes tx and block", func(t *testing.T) {
		f, c := newFake(t, http.StatusCreated, `{"readingId":"dev-1:7","dataHash":"h","cid":"c","status":"recorded","txId":"tx9","block":12}`)
		r, err := c.SubmitReading(t.Context(), env, client.WaitForCommit())
		if err != nil {
			t.Fatal(err)
		}
		if r.TxID != "tx9" || r.Block != 12 || r.Status != wire.StatusRecorded {
			t.Errorf("receipt = %+v", r)
		}
		got := f.last(t)
		if got.requestURI != "/v1/readings?wait=commit" {
			t.Errorf("request URI = %s", got.requestURI)
		}
		if string(openEnvelopeBytes(t, got.body, &dev.PublicKey)) != string(env.Payload) {
			t.Error("the body's payload is not the signed reading")
		}
	})
	t.Run("without waiting the request has no query", func(t *testing.T) {
		f, c := newFake(t, http.StatusAccepted, `{"readingId":"dev-1:7","status":"queued"}`)
		r, err := c.SubmitReading(t.Context(), env)
		if err != nil {
			t.Fatal(err)
		}
		if got := f.last(t); got.requestURI != "/v1/readings" || r.Status != wire.StatusQueued {
			t.Errorf("request URI = %s, status %s", got.requestURI, r.Status)
		}
	})
	t.Run("a string value is refused", func(t *testing.T) {
		if _, err := client.NewReading("d", 1, "t", "u", "seventy", fixedNow); !errors.Is(err, client.ErrBadValue) {
			t.Errorf("err = %v, want ErrBadValue", err)
		}
	})
	t.Run("two readings never share a nonce", func(t *testing.T) {
		q, err := client.NewReading("dev-1", 7, "heart_rate", "bpm", 72, fixedNow)
		if err != nil {
			t.Fatal(err)
		}
		if q.Nonce == p.Nonce {
			t.Error("nonce repeated")
		}
	})
}

func openEnvelopeBytes(t *testing.T, raw []byte, pub *ecdsa.PublicKey) []byte {
	t.Helper()
	env, err := envelope.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	if err := env.Verify(pub); err != nil {
		t.Fatal(err)
	}
	return env.Payload
}

func TestSubmitReadingsBatch(t *testing.T) {
	dev := mustKey(t)
	var envs []envelope.Envelope
	for seq := uint64(1); seq <= 2; seq++ {
		p, err := client.NewReading("dev-1", seq, "spo2", "%", 98, fixedNow)
		if err != nil {
			t.Fatal(err)
		}
		e, err := client.SignReading(dev, p)
		if err != nil {
			t.Fatal(err)
		}
		envs = append(envs, e)
	}
	f, c := newFake(t, http.StatusMultiStatus, `{"results":[{"index":0,"readingId":"dev-1:1","status":"queued"},{"index":1,"readingId":"dev-1:2","status":"rejected","error":{"code":"conflict","message":"duplicate seq"}}]}`)
	b, err := c.SubmitReadings(t.Context(), envs)
	if err != nil {
		t.Fatal(err)
	}
	failed := b.Failed()
	if len(b.Results) != 2 || len(failed) != 1 || failed[0].Index == nil || *failed[0].Index != 1 || failed[0].Error.Code != "conflict" {
		t.Errorf("results = %+v, failed %+v", b.Results, failed)
	}
	var body struct {
		Readings []json.RawMessage `json:"readings"`
	}
	if err := json.Unmarshal(f.last(t).body, &body); err != nil {
		t.Fatal(err)
	}
	if len(body.Readings) != 2 {
		t.Fatalf("%d readings sent", len(body.Readings))
	}
	for i, raw := range body.Readings {
		if got := openEnvelopeBytes(t, raw, &dev.PublicKey); string(got) != string(envs[i].Payload) {
			t.Errorf("reading %d payload differs", i)
		}
	}
}

func TestSignedGets(t *testing.T) {
	actor := mustKey(t)
	tests := []struct {
		name    string
		call    func(*client.Client) error
		body    string
		wantURI string
	}{
		{
			name: "consents accept a bare array",
			call: func(c *client.Client) error {
				cs, err := c.Consents(t.Context(), "pat-1")
				if err == nil && (len(cs) != 1 || len(cs[0].History) != 2) {
					t.Errorf("consents = %+v", cs)
				}
				return err
			},
			body:    `[{"id":"cns-1","status":"revoked","history":[{"txId":"a","status":"active"},{"txId":"b","status":"revoked"}]}]`,
			wantURI: "/v1/patients/pat-1/consents",
		},
		{
			name: "consents accept a page",
			call: func(c *client.Client) error {
				cs, err := c.Consents(t.Context(), "pat-1")
				if err == nil && len(cs) != 1 {
					t.Errorf("consents = %+v", cs)
				}
				return err
			},
			body:    `{"items":[{"id":"cns-1"}],"bookmark":"","count":1}`,
			wantURI: "/v1/patients/pat-1/consents",
		},
		{
			name: "access log passes page size and bookmark",
			call: func(c *client.Client) error {
				p, err := c.AccessLog(t.Context(), "pat-1", client.PageRequest{PageSize: 10, Bookmark: "b/1"})
				if err == nil && (p.Count != 1 || p.Items[0].Decision != "denied" || p.Bookmark != "next") {
					t.Errorf("page = %+v", p)
				}
				return err
			},
			body:    `{"items":[{"id":"acc-1","decision":"denied","reason":"consent_revoked"}],"bookmark":"next","count":1}`,
			wantURI: "/v1/patients/pat-1/access-log?bookmark=b%2F1&pageSize=10",
		},
		{
			name: "audit events pass every filter",
			call: func(c *client.Client) error {
				_, err := c.AuditEvents(t.Context(), client.EventFilter{PatientID: "pat-1", ActorID: "res-1", Type: "access.denied", From: fixedNow, To: fixedNow.Add(time.Hour)}, client.PageRequest{PageSize: 5})
				return err
			},
			body:    `{"items":[],"bookmark":"","count":0}`,
			wantURI: "/v1/audit/events?actorId=res-1&from=2026-03-01T12%3A00%3A00Z&pageSize=5&patientId=pat-1&to=2026-03-01T13%3A00%3A00Z&type=access.denied",
		},
		{
			name: "provenance keeps the colon of a reading id",
			call: func(c *client.Client) error {
				p, err := c.Provenance(t.Context(), "dev-1:7")
				if err == nil && (p.Reading.ID != "dev-1:7" || p.Device.ID != "dev-1" || p.Tx == nil || p.Tx.Block != 3) {
					t.Errorf("provenance = %+v", p)
				}
				return err
			},
			body:    `{"reading":{"id":"dev-1:7"},"device":{"id":"dev-1"},"consents":[],"accesses":[],"tx":{"txId":"t","block":3}}`,
			wantURI: "/v1/readings/dev-1:7/provenance",
		},
		{
			name: "verify decodes the checks",
			call: func(c *client.Client) error {
				v, err := c.VerifyReading(t.Context(), "dev-1:7")
				if err == nil && (!v.OK || len(v.Checks) != 1 || v.Checks[0].Name != "hash") {
					t.Errorf("verification = %+v", v)
				}
				return err
			},
			body:    `{"readingId":"dev-1:7","ok":true,"checks":[{"name":"hash","ok":true}]}`,
			wantURI: "/v1/audit/verify/dev-1:7",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, c := newFake(t, http.StatusOK, tt.body, client.WithActor("reg-1", actor), client.WithClock(func() time.Time { return fixedNow }))
			if err := tt.call(c); err != nil {
				t.Fatal(err)
			}
			got := f.last(t)
			if got.method != http.MethodGet || got.requestURI != tt.wantURI {
				t.Errorf("request = %s %s, want GET %s", got.method, got.requestURI, tt.wantURI)
			}
			raw, err := base64.StdEncoding.DecodeString(got.header.Get(wire.SignatureHeader))
			if err != nil {
				t.Fatalf("signature header is not base64: %v", err)
			}
			m := openEnvelope(t, raw, &actor.PublicKey)
			checkHeader(t, m, wire.ActionHTTPGet, "reg-1", fixedNow)
			if m["method"] != "GET" || m["path"] != got.requestURI {
				t.Errorf("signed method, path = %v %v; want GET %s", m["method"], m["path"], got.requestURI)
			}
		})
	}
}

func TestBaseURLPathIsAPrefix(t *testing.T) {
	f := &fakeGateway{status: http.StatusOK, body: `{}`}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	c, err := client.New(srv.URL+"/medprov/", client.WithActor("a", mustKey(t)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Provenance(t.Context(), "d:1"); err != nil {
		t.Fatal(err)
	}
	if got := f.last(t).requestURI; got != "/medprov/v1/readings/d:1/provenance" {
		t.Errorf("request URI = %s", got)
	}
}

func TestNewRefusesBadURLs(t *testing.T) {
	for _, u := range []string{"", "127.0.0.1:8080", "ftp://x", "http://"} {
		t.Run("refuses "+u, func(t *testing.T) {
			if _, err := client.New(u); err == nil {
				t.Errorf("New(%q) succeeded", u)
			}
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
			f, c := newFake(t, tt.status, tt.body, client.WithActor("r", mustKey(t)))
			f.header = tt.header
			_, err := c.RequestAccess(t.Context(), client.AccessRequest{PatientID: "p"})
			var ae *client.APIError
			if !errors.As(err, &ae) {
				t.Fatalf("err = %v (%T), want *APIError", err, err)
			}
			if *ae != tt.want {
				t.Errorf("error = %+v\nwant    %+v", *ae, tt.want)
			}
			if tt.sentinel != nil && !errors.Is(err, tt.sentinel) {
				t.Errorf("errors.Is(%v, %v) = false", err, tt.sentinel)
			}
			if errors.Is(err, client.ErrNotFound) {
				t.Error("error matches ErrNotFound")
			}
			id, denied := client.IsDenied(err)
			if denied != (tt.want.AccessID != "") || id != tt.want.AccessID {
				t.Errorf("IsDenied = %q, %v", id, denied)
			}
		})
	}
}

func TestRetryAfterAsHTTPDate(t *testing.T) {
	f, c := newFake(t, 503, `{"error":{"code":"unavailable","message":"x"}}`)
	f.header = map[string]string{"Retry-After": time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)}
	err := c.Ping(t.Context())
	var ae *client.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("err = %v", err)
	}
	if ae.RetryAfter < 58*time.Minute || ae.RetryAfter > time.Hour {
		t.Errorf("RetryAfter = %v, want about an hour", ae.RetryAfter)
	}
}

func TestErrorMessageNamesStatusAndCode(t *testing.T) {
	e := &client.APIError{Status: 403, Code: "no_consent", Message: "no consent", AccessID: "acc-1"}
	if got := e.Error(); !strings.Contains(got, "403") || !strings.Contains(got, "no_consent") || !strings.Contains(got, "acc-1") {
		t.Errorf("Error() = %q", got)
	}
}
