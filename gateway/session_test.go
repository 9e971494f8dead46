package gateway_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/medprov/medprov/gateway"
	"github.com/medprov/medprov/internal/testkit"
	"github.com/medprov/medprov/wire"
)

// signIn asks for sign-in options, has auth sign the payload after edits
// and posts the envelope, answering the recorder.
func (e *pkEnv) signIn(t testing.TB, auth *testkit.Authenticator, edits ...func(*testkit.AssertionParts)) *httptest.ResponseRecorder {
	t.Helper()
	o := decode[wire.SessionOptions](t, e.do(t, victimAddr, http.MethodPost, "/v1/session/options", nil, nil), http.StatusOK)
	return e.do(t, victimAddr, http.MethodPost, "/v1/session", testkit.MustJSON(t, auth.Assert(t, o.Payload, edits...)), nil)
}

// sessionCookie returns the session cookie rec set.
func sessionCookie(t testing.TB, rec *httptest.ResponseRecorder) *http.Cookie {
	t.Helper()
	for _, c := range rec.Result().Cookies() {
		if c.Name == wire.SessionCookie {
			return c
		}
	}
	require.FailNow(t, "no session cookie set", "headers: %v", rec.Header())
	return nil
}

func withCookie(c *http.Cookie) map[string]string {
	return map[string]string{"Cookie": c.Name + "=" + c.Value}
}

func TestSessions(t *testing.T) {
	e := newPKEnv(t, gateway.Limits{DeviceRate: -1, ActorRate: -1})
	e.setRelyingParty(t)
	patient := e.enrolPasskey(t, "pat-s1", wire.RolePatient)
	other := e.enrolPasskey(t, "pat-s2", wire.RolePatient)

	rec := e.signIn(t, patient)
	ses := decode[wire.Session](t, rec, http.StatusCreated)
	ck := sessionCookie(t, rec)

	t.Run("sign-in answers the actor and its passkeys and sets a strict cookie", func(t *testing.T) {
		assert.Equal(t, "pat-s1", ses.ActorID)
		assert.Equal(t, wire.RolePatient, ses.Role)
		assert.Equal(t, []string{patient.Credential(t).CredentialID}, ses.Credentials)
		assert.True(t, ck.HttpOnly)
		assert.True(t, ck.Secure)
		assert.Equal(t, http.SameSiteStrictMode, ck.SameSite)
		assert.Equal(t, "/", ck.Path)
		assert.GreaterOrEqual(t, len(ck.Value), 43, "32 random bytes")
	})

	t.Run("the cookie authenticates reads with the API's authorisation", func(t *testing.T) {
		got := decode[wire.Session](t, e.do(t, victimAddr, http.MethodGet, "/v1/session", nil, withCookie(ck)), http.StatusOK)
		assert.Equal(t, ses, got)
		decode[wire.ConsentList](t, e.do(t, victimAddr, http.MethodGet, "/v1/patients/pat-s1/consents", nil, withCookie(ck)), http.StatusOK)
		rec := e.do(t, victimAddr, http.MethodGet, "/v1/patients/pat-s2/consents", nil, withCookie(ck))
		assert.Equal(t, http.StatusForbidden, rec.Code, "another patient's consents: %s", rec.Body)
		rec = e.do(t, victimAddr, http.MethodGet, "/v1/audit/events", nil, withCookie(ck))
		assert.Equal(t, http.StatusForbidden, rec.Code, "a patient is no regulator: %s", rec.Body)
	})

	t.Run("the cookie never authorises an action", func(t *testing.T) {
		body := testkit.MustJSON(t, map[string]string{"consentId": "cns-x"})
		rec := e.do(t, victimAddr, http.MethodPost, "/v1/consents/cns-x/revoke", body, withCookie(ck))
		assert.Contains(t, []int{http.StatusBadRequest, http.StatusUnauthorized}, rec.Code, "%s", rec.Body)
	})

	refusals := []struct {
		name string
		do   func(t *testing.T) *httptest.ResponseRecorder
		want int
	}{
		{"a forged cookie", func(t *testing.T) *httptest.ResponseRecorder {
			return e.do(t, victimAddr, http.MethodGet, "/v1/session", nil, map[string]string{"Cookie": wire.SessionCookie + "=" + "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"})
		}, http.StatusUnauthorized},
		{"a signature over another payload", func(t *testing.T) *httptest.ResponseRecorder {
			return e.signIn(t, patient, func(p *testkit.AssertionParts) { p.Challenge = "bm90IHRoZSBwYXlsb2Fk" })
		}, http.StatusUnauthorized},
		{"an assertion without user verification", func(t *testing.T) *httptest.ResponseRecorder {
			return e.signIn(t, patient, func(p *testkit.AssertionParts) { p.Flags &^= 0x04 })
		}, http.StatusUnauthorized},
		{"an assertion from another origin", func(t *testing.T) *httptest.ResponseRecorder {
			return e.signIn(t, patient, func(p *testkit.AssertionParts) { p.Origin = "https://evil.example" })
		}, http.StatusUnauthorized},
		{"a payload the gateway did not issue", func(t *testing.T) *httptest.ResponseRecorder {
			payload := testkit.MustJSON(t, wire.SessionStartAction{Action: wire.ActionSessionStart, IssuedAt: time.Now().UTC().Format(time.RFC3339), Nonce: "AAAAAAAAAAAAAAAAAAAAAAAA"})
			return e.do(t, victimAddr, http.MethodPost, "/v1/session", testkit.MustJSON(t, patient.Assert(t, payload)), nil)
		}, http.StatusUnauthorized},
		{"a replayed sign-in", func(t *testing.T) *httptest.ResponseRecorder {
			o := decode[wire.SessionOptions](t, e.do(t, victimAddr, http.MethodPost, "/v1/session/options", nil, nil), http.StatusOK)
			body := testkit.MustJSON(t, other.Assert(t, o.Payload))
			require.Equal(t, http.StatusCreated, e.do(t, victimAddr, http.MethodPost, "/v1/session", body, nil).Code)
			return e.do(t, victimAddr, http.MethodPost, "/v1/session", body, nil)
		}, http.StatusUnauthorized},
		{"sign-in options asked for by another site", func(t *testing.T) *httptest.ResponseRecorder {
			return e.do(t, victimAddr, http.MethodPost, "/v1/session/options", nil, map[string]string{"Sec-Fetch-Site": "cross-site"})
		}, http.StatusForbidden},
		{"a sign-out from another origin", func(t *testing.T) *httptest.ResponseRecorder {
			h := withCookie(ck)
			h["Origin"] = "https://evil.example"
			return e.do(t, victimAddr, http.MethodDelete, "/v1/session", nil, h)
		}, http.StatusForbidden},
	}
	for _, tc := range refusals {
		t.Run("refused: "+tc.name, func(t *testing.T) {
			rec := tc.do(t)
			assert.Equal(t, tc.want, rec.Code, "%s", rec.Body)
			for _, c := range rec.Result().Cookies() {
				assert.NotEqual(t, wire.SessionCookie, c.Name, "no session cookie on a refusal")
			}
		})
	}

	t.Run("the session survives the refusals, ends when idle, and at sign-out", func(t *testing.T) {
		require.Equal(t, http.StatusOK, e.do(t, victimAddr, http.MethodGet, "/v1/session", nil, withCookie(ck)).Code)

		idle := e.signIn(t, patient)
		idleCk := sessionCookie(t, idle)
		e.clk.set(wire.SessionIdle + time.Minute)
		assert.Equal(t, http.StatusUnauthorized, e.do(t, victimAddr, http.MethodGet, "/v1/session", nil, withCookie(idleCk)).Code)
		e.clk.set(0)

		out := e.do(t, victimAddr, http.MethodDelete, "/v1/session", nil, withCookie(ck))
		assert.Equal(t, http.StatusNoContent, out.Code)
		assert.Equal(t, -1, sessionCookie(t, out).MaxAge, "the cookie is cleared")
		assert.Equal(t, http.StatusUnauthorized, e.do(t, victimAddr, http.MethodGet, "/v1/session", nil, withCookie(ck)).Code)
	})

	t.Run("revoking the actor ends its sessions", func(t *testing.T) {
		rec := e.signIn(t, other)
		oc := sessionCookie(t, rec)
		rev := e.do(t, victimAddr, http.MethodPost, "/v1/actors/pat-s2/revoke", testkit.MustJSON(t, wire.AdminRevokeRequest{Reason: "left"}), admin)
		require.Equal(t, http.StatusOK, rev.Code, "%s", rev.Body)
		assert.Equal(t, http.StatusUnauthorized, e.do(t, victimAddr, http.MethodGet, "/v1/patients/pat-s2/consents", nil, withCookie(oc)).Code)
	})
}
