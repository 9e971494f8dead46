package gateway_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/medprov/medprov/client"
	"github.com/medprov/medprov/envelope"
	"github.com/medprov/medprov/gateway"
	"github.com/medprov/medprov/internal/apispec"
	"github.com/medprov/medprov/internal/testkit"
	"github.com/medprov/medprov/ledger"
	"github.com/medprov/medprov/node"
	"github.com/medprov/medprov/seal"
	"github.com/medprov/medprov/wire"
)

// The relying party of these tests: a portal on this machine.
const (
	rpID     = "localhost"
	rpOrigin = "http://localhost:8080"
)

// testClock is the real time shifted by a settable skew.
type testClock struct{ skew atomic.Int64 }

func (c *testClock) Now() time.Time      { return time.Now().Add(time.Duration(c.skew.Load())) }
func (c *testClock) set(d time.Duration) { c.skew.Store(int64(d)) }

// pkEnv is a node on the embedded backends whose gateway runs on clk, and
// a handler that checks every exchange against openapi.yaml.
type pkEnv struct {
	n   *node.Node
	h   http.Handler
	clk *testClock
}

func newPKEnv(t *testing.T, limits gateway.Limits) *pkEnv {
	t.Helper()
	dir := t.TempDir()
	mk, err := seal.LoadOrCreateMasterKey(filepath.Join(dir, "master.key"))
	require.NoError(t, err)
	clk := &testClock{}
	n, err := node.Open(t.Context(), node.Config{DataDir: dir, MasterKey: mk, AdminToken: adminToken, Limits: limits,
		PublicURL: rpOrigin, Now: clk.Now})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, n.Close()) })
	return &pkEnv{n: n, h: apispec.NewHandler(t, n.Handler(), apispec.AllowRefused()), clk: clk}
}

var admin = map[string]string{"Authorization": "Bearer " + adminToken}

// do serves one request from client address addr.
func (e *pkEnv) do(t testing.TB, addr, method, path string, body []byte, hdr map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	var r *http.Request
	if body == nil {
		r = httptest.NewRequestWithContext(t.Context(), method, path, nil)
	} else {
		r = httptest.NewRequestWithContext(t.Context(), method, path, bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
	}
	r.RemoteAddr = addr
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, r)
	return rec
}

// decode requires status want and decodes the body into a new T.
func decode[T any](t testing.TB, rec *httptest.ResponseRecorder, want int) T {
	t.Helper()
	require.Equal(t, want, rec.Code, "status: %s", rec.Body)
	var v T
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &v), "body %s", rec.Body)
	return v
}

func (e *pkEnv) setRelyingParty(t testing.TB) wire.RelyingParty {
	t.Helper()
	rec := e.do(t, victimAddr, http.MethodPut, "/v1/admin/relying-party",
		testkit.MustJSON(t, wire.RelyingPartyInput{RPID: rpID, Origins: []string{rpOrigin}}), admin)
	return decode[wire.RelyingParty](t, rec, http.StatusOK)
}

func (e *pkEnv) invite(t testing.TB, id, role, ttl string) wire.Invite {
	t.Helper()
	rec := e.do(t, victimAddr, http.MethodPost, "/v1/invites", testkit.MustJSON(t, wire.InviteRequest{ID: id, Role: role, TTL: ttl}), admin)
	return decode[wire.Invite](t, rec, http.StatusCreated)
}

// options asks for the creation options of token and returns the
// challenge they issue.
func (e *pkEnv) options(t testing.TB, token string) (wire.CreationOptions, []byte) {
	t.Helper()
	o := decode[wire.CreationOptions](t, e.do(t, victimAddr, http.MethodPost, "/v1/enrol/"+token+"/options", nil, nil), http.StatusOK)
	ch, err := base64.RawURLEncoding.DecodeString(o.Challenge)
	require.NoError(t, err, "challenge")
	return o, ch
}

// register posts auth's registration over challenge, after edits, for
// token; the body names auth's credential id.
func (e *pkEnv) register(t testing.TB, token string, auth *testkit.Authenticator, challenge []byte, edits ...func(*testkit.RegistrationParts)) *httptest.ResponseRecorder {
	t.Helper()
	cdj, att := auth.Register(t, challenge, edits...)
	req, err := client.Registration{CredentialID: auth.CredentialID, ClientDataJSON: cdj, AttestationObject: att}.EnrolmentRequest()
	require.NoError(t, err)
	return e.do(t, victimAddr, http.MethodPost, "/v1/enrol/"+token, testkit.MustJSON(t, req), nil)
}

// enrolPasskey invites actor id in role and enrols a new passkey for it
// through the HTTP routes.
func (e *pkEnv) enrolPasskey(t testing.TB, id, role string) *testkit.Authenticator {
	t.Helper()
	inv := e.invite(t, id, role, "")
	_, ch := e.options(t, inv.Token)
	auth := testkit.NewAuthenticator(t, rpID, rpOrigin)
	decode[wire.EnrolmentReceipt](t, e.register(t, inv.Token, auth, ch), http.StatusCreated)
	return auth
}

// passkeyAction returns the body of a passkey-signed action: payload with
// a fresh header for actionName and actorID, asserted by auth after edits.
func passkeyAction[P wire.Action](t testing.TB, auth *testkit.Authenticator, actionName, actorID string, payload P, edits ...func(*testkit.AssertionParts)) []byte {
	t.Helper()
	h, err := client.NewActionHeader(actionName, actorID, time.Now())
	require.NoError(t, err)
	*payload.Header() = h
	return testkit.MustJSON(t, auth.Assert(t, testkit.MustJSON(t, payload), edits...))
}

// passkeyGETHeader returns the X-Medprov-Signature of a GET of path by
// actorID, asserted by auth after edits.
func passkeyGETHeader(t testing.TB, auth *testkit.Authenticator, actorID, path string, edits ...func(*testkit.AssertionParts)) string {
	t.Helper()
	h, err := client.NewActionHeader(wire.ActionHTTPGet, actorID, time.Now())
	require.NoError(t, err)
	env := auth.Assert(t, testkit.MustJSON(t, wire.HTTPGetAction{ActionHeader: h, Method: http.MethodGet, Path: path}), edits...)
	return base64.StdEncoding.EncodeToString(testkit.MustJSON(t, env))
}

func TestPasskeyEnrolmentAndSignedRequests(t *testing.T) {
	e := newPKEnv(t, gateway.Limits{DeviceRate: -1, ActorRate: -1})
	ctx := t.Context()

	rp := e.setRelyingParty(t)
	assert.Equal(t, rpID, rp.RPID, "rpId on the ledger")
	assert.Equal(t, []string{rpOrigin}, rp.Origins, "origins on the ledger")
	assert.Equal(t, "HospitalMSP", rp.Org, "the relying party is the gateway's org's")
	register(t, e.n, "res", wire.RoleResearcher)

	inv := e.invite(t, "pat-pk", wire.RolePatient, "")
	assert.Equal(t, wire.EnrolPathPrefix+inv.Token, inv.Path, "the enrolment path")
	assert.Equal(t, rpOrigin+inv.Path, inv.URL, "the link is under the public URL")
	expires, err := time.Parse(time.RFC3339, inv.ExpiresAt)
	require.NoError(t, err)
	assert.WithinDuration(t, time.Now().Add(wire.DefaultInviteTTL), expires, time.Minute, "default expiry")

	opts, challenge := e.options(t, inv.Token)
	assert.Equal(t, wire.RPEntity{ID: rpID, Name: "medprov"}, opts.RP)
	assert.Equal(t, "pat-pk", opts.User.Name)
	assert.NotEmpty(t, opts.User.ID, "user handle")
	assert.Equal(t, []wire.CredentialParameter{{Type: "public-key", Alg: -7}}, opts.PubKeyCredParams, "ES256 only")
	assert.Equal(t, "required", opts.AuthenticatorSelection.UserVerification)
	assert.Equal(t, "preferred", opts.AuthenticatorSelection.ResidentKey)
	assert.Len(t, challenge, 32, "a random challenge")
	assert.Positive(t, opts.Timeout)

	auth := testkit.NewAuthenticator(t, rpID, rpOrigin)
	rcpt := decode[wire.EnrolmentReceipt](t, e.register(t, inv.Token, auth, challenge), http.StatusCreated)
	assert.Equal(t, "pat-pk", rcpt.Actor.ID)
	assert.Equal(t, wire.RolePatient, rcpt.Actor.Role)
	assert.Empty(t, rcpt.Actor.PublicKey, "a passkey-only actor has no PEM key")
	assert.NotEmpty(t, rcpt.TxID)

	t.Run("the actor's passkey is on the ledger", func(t *testing.T) {
		b, err := e.n.Ledger.Evaluate(ctx, ledger.Proposal{Function: wire.FnGetPasskey, Args: []string{rcpt.CredentialID}})
		require.NoError(t, err)
		var pk wire.Passkey
		require.NoError(t, json.Unmarshal(b, &pk))
		assert.Equal(t, "pat-pk", pk.ActorID)
		assert.Equal(t, base64.RawURLEncoding.EncodeToString(auth.CredentialID), pk.CredentialID)
		assert.Equal(t, testkit.PublicPEM(t, auth.Key), pk.PublicKey, "the key converted from COSE")
		assert.Equal(t, rpID, pk.RPID)
	})

	var consentID string
	t.Run("a passkey-signed consent grant is committed", func(t *testing.T) {
		rec := e.do(t, victimAddr, http.MethodPost, "/v1/consents", passkeyAction(t, auth, wire.ActionConsentGrant, "pat-pk", consentGrant("res")), nil)
		got := decode[wire.ConsentReceipt](t, rec, http.StatusCreated)
		assert.Equal(t, "pat-pk", got.Consent.PatientID)
		consentID = got.ConsentID
	})
	t.Run("a passkey-signed GET reads the patient's consents", func(t *testing.T) {
		path := "/v1/patients/pat-pk/consents"
		rec := e.do(t, victimAddr, http.MethodGet, path, nil, map[string]string{wire.SignatureHeader: passkeyGETHeader(t, auth, "pat-pk", path)})
		got := decode[wire.ConsentList](t, rec, http.StatusOK)
		require.Len(t, got.Items, 1)
		assert.Equal(t, consentID, got.Items[0].ID)
	})
	t.Run("a passkey-signed consent revocation is committed", func(t *testing.T) {
		rec := e.do(t, victimAddr, http.MethodPost, "/v1/consents/"+consentID+"/revoke",
			passkeyAction(t, auth, wire.ActionConsentRevoke, "pat-pk", &wire.ConsentRevokeAction{ConsentID: consentID}), nil)
		got := decode[wire.ConsentReceipt](t, rec, http.StatusOK)
		assert.Equal(t, wire.StatusRevoked, got.Consent.Status)
	})
	t.Run("a plain envelope naming the passkey-only actor is unauthenticated", func(t *testing.T) {
		rec := e.do(t, victimAddr, http.MethodPost, "/v1/consents", action(t, testkit.MustKey(t), wire.ActionConsentGrant, "pat-pk", consentGrant("res")), nil)
		assert.Equal(t, http.StatusUnauthorized, rec.Code, "status: %s", rec.Body)
	})
	t.Run("a counterless passkey signs every time", func(t *testing.T) {
		zero := e.enrolPasskey(t, "pat-zero", wire.RolePatient)
		zero.Counterless = true
		for range 2 {
			rec := e.do(t, victimAddr, http.MethodPost, "/v1/consents", passkeyAction(t, zero, wire.ActionConsentGrant, "pat-zero", consentGrant("res")), nil)
			assert.Equal(t, http.StatusCreated, rec.Code, "status: %s", rec.Body)
		}
	})
}

func TestEnrolmentRefusals(t *testing.T) {
	e := newPKEnv(t, gateway.Limits{DeviceRate: -1, ActorRate: -1})

	t.Run("an invitation before the relying party is set is forbidden", func(t *testing.T) {
		rec := e.do(t, victimAddr, http.MethodPost, "/v1/invites", testkit.MustJSON(t, wire.InviteRequest{ID: "early", Role: wire.RolePatient}), admin)
		assert.Equal(t, http.StatusForbidden, rec.Code, "status: %s", rec.Body)
	})
	e.setRelyingParty(t)
	register(t, e.n, "taken", wire.RolePatient)

	invites := []struct {
		name string
		hdr  map[string]string
		in   wire.InviteRequest
		want int
	}{
		{"an invitation without the admin token is unauthenticated", nil, wire.InviteRequest{ID: "p1", Role: wire.RolePatient}, http.StatusUnauthorized},
		{"an invitation of a registered actor is a conflict", admin, wire.InviteRequest{ID: "taken", Role: wire.RolePatient}, http.StatusConflict},
		{"an invitation with an unknown role is invalid", admin, wire.InviteRequest{ID: "p1", Role: "surgeon"}, http.StatusBadRequest},
		{"an invitation valid for a year is invalid", admin, wire.InviteRequest{ID: "p1", Role: wire.RolePatient, TTL: "8760h"}, http.StatusBadRequest},
		{"an invitation valid for a minute is invalid", admin, wire.InviteRequest{ID: "p1", Role: wire.RolePatient, TTL: "1m"}, http.StatusBadRequest},
	}
	for _, tt := range invites {
		t.Run(tt.name, func(t *testing.T) {
			rec := e.do(t, victimAddr, http.MethodPost, "/v1/invites", testkit.MustJSON(t, tt.in), tt.hdr)
			assert.Equal(t, tt.want, rec.Code, "status: %s", rec.Body)
		})
	}
	t.Run("a relying party whose origin is not under its rpId is invalid", func(t *testing.T) {
		rec := e.do(t, victimAddr, http.MethodPut, "/v1/admin/relying-party",
			testkit.MustJSON(t, wire.RelyingPartyInput{RPID: rpID, Origins: []string{"https://evil.example"}}), admin)
		assert.Equal(t, http.StatusBadRequest, rec.Code, "status: %s", rec.Body)
	})

	uvCleared := func(p *testkit.RegistrationParts) { p.Flags &^= envelope.FlagUserVerified }
	ceremonies := []struct {
		name string
		edit func(*testkit.RegistrationParts)
		want int
	}{
		{"a registration over another challenge is unauthenticated", func(p *testkit.RegistrationParts) {
			p.Challenge = base64.RawURLEncoding.EncodeToString(testkit.RandomBytes(t, 32))
		}, http.StatusUnauthorized},
		{"a registration without user verification is unauthenticated", uvCleared, http.StatusUnauthorized},
		{"a registration without user presence is unauthenticated", func(p *testkit.RegistrationParts) { p.Flags &^= envelope.FlagUserPresent }, http.StatusUnauthorized},
		{"a registration from another origin is unauthenticated", func(p *testkit.RegistrationParts) { p.Origin = "http://localhost:9999" }, http.StatusUnauthorized},
		{"a registration for another rpId is unauthenticated", func(p *testkit.RegistrationParts) { p.RPID = "example.com" }, http.StatusUnauthorized},
		{"an assertion posted as a registration is unauthenticated", func(p *testkit.RegistrationParts) { p.Type = envelope.ClientDataGet }, http.StatusUnauthorized},
		{"a registration attesting another credential id is invalid", func(p *testkit.RegistrationParts) { p.CredentialID = testkit.RandomBytes(t, 32) }, http.StatusBadRequest},
		{"a registration of a key that is not COSE ES256 is invalid", func(p *testkit.RegistrationParts) { p.COSEKey = []byte{0xa1, 0x01, 0x01} }, http.StatusBadRequest},
	}
	inv := e.invite(t, "pat-1", wire.RolePatient, "")
	for _, tt := range ceremonies {
		t.Run(tt.name, func(t *testing.T) {
			_, ch := e.options(t, inv.Token)
			rec := e.register(t, inv.Token, testkit.NewAuthenticator(t, rpID, rpOrigin), ch, tt.edit)
			assert.Equal(t, tt.want, rec.Code, "status: %s", rec.Body)
		})
	}

	auth := testkit.NewAuthenticator(t, rpID, rpOrigin)
	t.Run("a challenge answers one registration only", func(t *testing.T) {
		_, ch := e.options(t, inv.Token)
		rec := e.register(t, inv.Token, testkit.NewAuthenticator(t, rpID, rpOrigin), ch, uvCleared)
		require.Equal(t, http.StatusUnauthorized, rec.Code, "status: %s", rec.Body)
		rec = e.register(t, inv.Token, auth, ch)
		assert.Equal(t, http.StatusUnauthorized, rec.Code, "a second registration over the same challenge: %s", rec.Body)
	})
	t.Run("a registration without options first is unauthenticated", func(t *testing.T) {
		rec := e.register(t, inv.Token, auth, testkit.RandomBytes(t, 32))
		assert.Equal(t, http.StatusUnauthorized, rec.Code, "status: %s", rec.Body)
	})
	t.Run("a refused registration leaves the invitation usable", func(t *testing.T) {
		_, ch := e.options(t, inv.Token)
		decode[wire.EnrolmentReceipt](t, e.register(t, inv.Token, auth, ch), http.StatusCreated)
	})

	second := e.invite(t, "pat-2", wire.RolePatient, "")
	t.Run("a passkey registered to another actor is a conflict", func(t *testing.T) {
		_, ch := e.options(t, second.Token)
		rec := e.register(t, second.Token, auth, ch)
		assert.Equal(t, http.StatusConflict, rec.Code, "status: %s", rec.Body)
	})

	expiring := e.invite(t, "pat-3", wire.RolePatient, "10m")
	_, expiringChallenge := e.options(t, expiring.Token)
	e.clk.set(11 * time.Minute)
	t.Cleanup(func() { e.clk.set(0) })
	gone := []struct {
		name, token string
		challenge   []byte
	}{
		{"a used token is not found", inv.Token, nil},
		{"an expired token is not found", expiring.Token, expiringChallenge},
		{"an unknown token is not found", base64.RawURLEncoding.EncodeToString(testkit.RandomBytes(t, 32)), nil},
		{"a token that is not one is not found", "not-a-token", nil},
	}
	for _, tt := range gone {
		t.Run(tt.name, func(t *testing.T) {
			rec := e.do(t, victimAddr, http.MethodPost, "/v1/enrol/"+tt.token+"/options", nil, nil)
			assert.Equal(t, http.StatusNotFound, rec.Code, "options: %s", rec.Body)
			assert.Equal(t, wire.CodeNotFound, errorCode(t, rec))
			assert.Contains(t, rec.Body.String(), "invitation not found, expired or already used", "one message for every token that enrols nobody")
			rec = e.register(t, tt.token, testkit.NewAuthenticator(t, rpID, rpOrigin), tt.challenge)
			assert.Equal(t, http.StatusNotFound, rec.Code, "enrol: %s", rec.Body)
		})
	}
}

// TestTamperedPasskeyAssertionsDoNotSpendTheBudget sends passkey
// assertions that fail one check each, naming the actor's real passkey;
// each is refused 401 before the actor's budget (3 requests, practically
// no refill) is charged, so the genuine requests after them pass.
func TestTamperedPasskeyAssertionsDoNotSpendTheBudget(t *testing.T) {
	e := newPKEnv(t, gateway.Limits{DeviceRate: -1, ActorRate: 0.001, ActorBurst: 3, ClientFailureRate: 0.001, ClientFailureBurst: 100})
	e.setRelyingParty(t)
	register(t, e.n, "res", wire.RoleResearcher)
	auth := e.enrolPasskey(t, "pat", wire.RolePatient)

	first := passkeyAction(t, auth, wire.ActionConsentGrant, "pat", consentGrant("res"))
	rec := e.do(t, victimAddr, http.MethodPost, "/v1/consents", first, nil)
	require.Equal(t, http.StatusCreated, rec.Code, "the first genuine grant: %s", rec.Body)

	grant := func(edit func(*testkit.AssertionParts)) []byte {
		return passkeyAction(t, auth, wire.ActionConsentGrant, "pat", consentGrant("res"), edit)
	}
	tampered := []struct {
		name string
		body []byte
	}{
		{"an assertion over another challenge", grant(func(p *testkit.AssertionParts) { p.Challenge = envelope.Challenge([]byte("something else")) })},
		{"an assertion with the UV flag cleared", grant(func(p *testkit.AssertionParts) { p.Flags &^= envelope.FlagUserVerified })},
		{"an assertion from another origin", grant(func(p *testkit.AssertionParts) { p.Origin = "http://localhost:9999" })},
		{"an assertion for another rpId", grant(func(p *testkit.AssertionParts) { p.RPID = "example.com" })},
		{"an assertion signed by another key", grant(func(p *testkit.AssertionParts) { p.Key = testkit.MustKey(t) })},
		{"an assertion of type webauthn.create", grant(func(p *testkit.AssertionParts) { p.Type = "webauthn.create" })},
		{"a replayed assertion", first},
		{"a fresh payload with a replayed counter", grant(func(p *testkit.AssertionParts) { p.SignCount = 1 })},
	}
	for _, tt := range tampered {
		t.Run(tt.name+" is unauthenticated", func(t *testing.T) {
			rec := e.do(t, victimAddr, http.MethodPost, "/v1/consents", tt.body, nil)
			assert.Equal(t, http.StatusUnauthorized, rec.Code, "status: %s", rec.Body)
			assert.Equal(t, wire.CodeUnauthenticated, errorCode(t, rec))
		})
	}

	path := "/v1/patients/pat/consents"
	gets := []struct {
		name string
		edit func(*testkit.AssertionParts)
	}{
		{"a signed GET with the UV flag cleared", func(p *testkit.AssertionParts) { p.Flags &^= envelope.FlagUserVerified }},
		{"a signed GET with a replayed counter", func(p *testkit.AssertionParts) { p.SignCount = 1 }},
		{"a signed GET over another challenge", func(p *testkit.AssertionParts) { p.Challenge = envelope.Challenge(nil) }},
	}
	for _, tt := range gets {
		t.Run(tt.name+" is unauthenticated", func(t *testing.T) {
			rec := e.do(t, victimAddr, http.MethodGet, path, nil, map[string]string{wire.SignatureHeader: passkeyGETHeader(t, auth, "pat", path, tt.edit)})
			assert.Equal(t, http.StatusUnauthorized, rec.Code, "status: %s", rec.Body)
		})
	}

	t.Run("the actor's budget is untouched", func(t *testing.T) {
		get := passkeyGETHeader(t, auth, "pat", path)
		rec := e.do(t, victimAddr, http.MethodGet, path, nil, map[string]string{wire.SignatureHeader: get})
		assert.Equal(t, http.StatusOK, rec.Code, "a genuine signed GET: %s", rec.Body)
		rec = e.do(t, victimAddr, http.MethodGet, path, nil, map[string]string{wire.SignatureHeader: get})
		assert.Equal(t, http.StatusUnauthorized, rec.Code, "the same signed GET replayed: %s", rec.Body)
		rec = e.do(t, victimAddr, http.MethodPost, "/v1/consents", passkeyAction(t, auth, wire.ActionConsentGrant, "pat", consentGrant("res")), nil)
		assert.Equal(t, http.StatusCreated, rec.Code, "a genuine grant: %s", rec.Body)
		rec = e.do(t, victimAddr, http.MethodPost, "/v1/consents", passkeyAction(t, auth, wire.ActionConsentGrant, "pat", consentGrant("res")), nil)
		assert.Equal(t, http.StatusTooManyRequests, rec.Code, "a fourth genuine request exceeds the budget of 3: %s", rec.Body)
	})
}

// TestForgedPasskeyFloodDoesNotLockTheActorOut floods forgeries naming a
// passkey actor and its credential from one address until that address is
// refused; the actor, from its own address, still signs.
func TestForgedPasskeyFloodDoesNotLockTheActorOut(t *testing.T) {
	const flooderBudget = 20
	e := newPKEnv(t, gateway.Limits{DeviceRate: -1, ActorRate: 0.001, ActorBurst: 2, ClientFailureRate: 0.001, ClientFailureBurst: flooderBudget})
	e.setRelyingParty(t)
	register(t, e.n, "res", wire.RoleResearcher)
	auth := e.enrolPasskey(t, "pat", wire.RolePatient)
	forger := testkit.NewAuthenticator(t, rpID, rpOrigin)
	forger.CredentialID = auth.CredentialID // names the victim's passkey, signs with its own key

	path := "/v1/patients/pat/consents"
	var limited int
	for i := range 3 * flooderBudget {
		var rec *httptest.ResponseRecorder
		if i%2 == 0 {
			rec = e.do(t, flooderAddr, http.MethodPost, "/v1/consents", passkeyAction(t, forger, wire.ActionConsentGrant, "pat", consentGrant("res")), nil)
		} else {
			rec = e.do(t, flooderAddr, http.MethodGet, path, nil, map[string]string{wire.SignatureHeader: passkeyGETHeader(t, forger, "pat", path)})
		}
		require.Contains(t, []int{http.StatusUnauthorized, http.StatusTooManyRequests}, rec.Code, "forgery %d: %s", i, rec.Body)
		if rec.Code == http.StatusTooManyRequests {
			limited++
		}
	}
	assert.Positive(t, limited, "the flooding address is refused once its failures are spent")

	rec := e.do(t, victimAddr, http.MethodPost, "/v1/consents", passkeyAction(t, auth, wire.ActionConsentGrant, "pat", consentGrant("res")), nil)
	assert.Equal(t, http.StatusCreated, rec.Code, "the actor's grant after the flood: %s", rec.Body)
	rec = e.do(t, victimAddr, http.MethodGet, path, nil, map[string]string{wire.SignatureHeader: passkeyGETHeader(t, auth, "pat", path)})
	assert.Equal(t, http.StatusOK, rec.Code, "the actor's signed GET after the flood: %s", rec.Body)
}

// TestInvitationsSurviveARestart checks that an invitation is kept on disk
// (hashed) and a used one stays used across a restart.
func TestInvitationsSurviveARestart(t *testing.T) {
	dir := t.TempDir()
	open := func() (*node.Node, http.Handler) {
		mk, err := seal.LoadOrCreateMasterKey(filepath.Join(dir, "master.key"))
		require.NoError(t, err)
		n, err := node.Open(t.Context(), node.Config{DataDir: dir, MasterKey: mk, AdminToken: adminToken, Limits: gateway.Limits{DeviceRate: -1, ActorRate: -1}})
		require.NoError(t, err)
		return n, apispec.NewHandler(t, n.Handler(), apispec.AllowRefused())
	}
	n, h := open()
	e := &pkEnv{n: n, h: h, clk: &testClock{}}
	e.setRelyingParty(t)
	used := e.invite(t, "pat-used", wire.RolePatient, "")
	kept := e.invite(t, "pat-kept", wire.RolePatient, "")
	_, ch := e.options(t, used.Token)
	decode[wire.EnrolmentReceipt](t, e.register(t, used.Token, testkit.NewAuthenticator(t, rpID, rpOrigin), ch), http.StatusCreated)
	require.NoError(t, n.Close())

	n, h = open()
	t.Cleanup(func() { assert.NoError(t, n.Close()) })
	e = &pkEnv{n: n, h: h, clk: &testClock{}}
	rec := e.do(t, victimAddr, http.MethodPost, "/v1/enrol/"+used.Token+"/options", nil, nil)
	assert.Equal(t, http.StatusNotFound, rec.Code, "the used invitation after a restart: %s", rec.Body)
	_, ch = e.options(t, kept.Token)
	decode[wire.EnrolmentReceipt](t, e.register(t, kept.Token, testkit.NewAuthenticator(t, rpID, rpOrigin), ch), http.StatusCreated)
}
