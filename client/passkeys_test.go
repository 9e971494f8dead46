package client_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/medprov/medprov/client"
	"github.com/medprov/medprov/envelope"
	"github.com/medprov/medprov/internal/testkit"
	"github.com/medprov/medprov/wire"
)

func TestEnrolmentCalls(t *testing.T) {
	token := base64.RawURLEncoding.EncodeToString(testkit.RandomBytes(t, 32))
	tests := []struct {
		name     string
		call     func(t *testing.T, c *client.Client)
		respBody string
		method   string
		path     string
		admin    bool
		body     string // "" for none
	}{
		{
			name: "setting the relying party sends the admin token",
			call: func(t *testing.T, c *client.Client) {
				rp, err := c.SetRelyingParty(t.Context(), "localhost", []string{"http://localhost:8080"})
				require.NoError(t, err)
				assert.Equal(t, "HospitalMSP", rp.Org)
			},
			respBody: `{"docType":"relyingParty","org":"HospitalMSP","rpId":"localhost","origins":["http://localhost:8080"],"setTx":"tx1","setAt":"t"}`,
			method:   http.MethodPut, path: "/v1/admin/relying-party", admin: true,
			body: `{"rpId":"localhost","origins":["http://localhost:8080"]}`,
		},
		{
			name: "an invitation sends the admin token",
			call: func(t *testing.T, c *client.Client) {
				inv, err := c.Invite(t.Context(), wire.InviteRequest{ID: "pat-1", Role: wire.RolePatient, TTL: "24h"})
				require.NoError(t, err)
				assert.Equal(t, "/enrol/"+token, inv.Path)
			},
			respBody: `{"actorId":"pat-1","role":"patient","token":"` + token + `","path":"/enrol/` + token + `","expiresAt":"2026-03-02T12:00:00Z"}`,
			method:   http.MethodPost, path: "/v1/invites", admin: true,
			body: `{"id":"pat-1","role":"patient","ttl":"24h"}`,
		},
		{
			name: "creation options are asked for with the token alone",
			call: func(t *testing.T, c *client.Client) {
				o, err := c.EnrolmentOptions(t.Context(), token)
				require.NoError(t, err)
				assert.Equal(t, "localhost", o.RP.ID)
			},
			respBody: `{"challenge":"AAAA","rp":{"id":"localhost","name":"medprov"},"user":{"id":"AAAA","name":"pat-1","displayName":"pat-1"},"pubKeyCredParams":[{"type":"public-key","alg":-7}],"authenticatorSelection":{"residentKey":"preferred","requireResidentKey":false,"userVerification":"required"},"timeout":300000,"attestation":"none"}`,
			method:   http.MethodPost, path: "/v1/enrol/" + token + "/options",
		},
		{
			name: "an enrolment posts the registration with the token alone",
			call: func(t *testing.T, c *client.Client) {
				req, err := client.Registration{CredentialID: []byte{1}, ClientDataJSON: []byte{2}, AttestationObject: []byte{3}}.EnrolmentRequest()
				require.NoError(t, err)
				r, err := c.Enrol(t.Context(), token, req)
				require.NoError(t, err)
				assert.Equal(t, "pat-1", r.Actor.ID)
			},
			respBody: `{"actorId":"pat-1","credentialId":"AQ","txId":"tx2","block":4,"actor":{"id":"pat-1","publicKey":""}}`,
			method:   http.MethodPost, path: "/v1/enrol/" + token,
			body: `{"credentialId":"AQ","clientDataJSON":"Ag","attestationObject":"Aw"}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, c := newFake(t, http.StatusOK, tt.respBody, client.WithAdminToken("the-admin-token-0123"))
			tt.call(t, c)
			got := f.last(t)
			assert.Equal(t, tt.method, got.method)
			assert.Equal(t, tt.path, got.path)
			if tt.admin {
				assert.Equal(t, "Bearer the-admin-token-0123", got.header.Get("Authorization"))
			} else {
				assert.Empty(t, got.header.Get("Authorization"), "the token in the path is the only credential")
			}
			if tt.body == "" {
				assert.Empty(t, got.body, "no request body")
			} else {
				assert.JSONEq(t, tt.body, string(got.body))
			}
		})
	}
}

func TestPasskeyClientSignsWithAssertions(t *testing.T) {
	rp := envelope.RelyingParty{ID: "localhost", Origins: []string{"http://localhost:8080"}}
	auth := testkit.NewAuthenticator(t, rp.ID, rp.Origins[0])
	signer := client.PasskeySignerFunc(func(_ context.Context, payload []byte) (envelope.Assertion, error) {
		return *auth.Assert(t, payload).WebAuthn, nil
	})
	opts := []client.Option{client.WithPasskey("pat-1", signer), client.WithClock(func() time.Time { return fixedNow })}

	// opened checks a passkey envelope's assertion and returns its payload.
	opened := func(t *testing.T, raw []byte) map[string]any {
		t.Helper()
		env, err := envelope.ParseSigned(raw)
		require.NoError(t, err, "not a signed envelope: %s", raw)
		require.NotNil(t, env.WebAuthn, "a plain envelope, want a passkey envelope")
		_, err = envelope.VerifyAssertion(&auth.Key.PublicKey, rp, env.Payload, *env.WebAuthn)
		require.NoError(t, err, "the assertion does not verify")
		var m map[string]any
		require.NoError(t, json.Unmarshal(env.Payload, &m))
		return m
	}

	t.Run("a consent grant is a passkey envelope over the action", func(t *testing.T) {
		f, c := newFake(t, http.StatusCreated, `{"consentId":"cns-1","txId":"tx1","block":2,"consent":{}}`, opts...)
		_, err := c.GrantConsent(t.Context(), client.ConsentGrant{GranteeID: "res-1", Purpose: "cardio", DataTypes: []string{"heart_rate"},
			NotBefore: fixedNow, NotAfter: fixedNow.Add(time.Hour)})
		require.NoError(t, err)
		m := opened(t, f.last(t).body)
		checkHeader(t, m, wire.ActionConsentGrant, "pat-1", fixedNow)
		assert.Equal(t, "res-1", m["granteeId"])
	})
	t.Run("a signed GET carries a passkey envelope of the request", func(t *testing.T) {
		f, c := newFake(t, http.StatusOK, `{"items":[],"count":0}`, opts...)
		_, err := c.Consents(t.Context(), "pat-1")
		require.NoError(t, err)
		got := f.last(t)
		raw, err := base64.StdEncoding.DecodeString(got.header.Get(wire.SignatureHeader))
		require.NoError(t, err, "the header is not base64")
		m := opened(t, raw)
		checkHeader(t, m, wire.ActionHTTPGet, "pat-1", fixedNow)
		assert.Equal(t, got.requestURI, m["path"], "the signed path is the request target")
	})
	t.Run("a signer's failure fails the call before sending", func(t *testing.T) {
		f, c := newFake(t, http.StatusOK, `{}`, client.WithPasskey("pat-1", client.PasskeySignerFunc(
			func(context.Context, []byte) (envelope.Assertion, error) {
				return envelope.Assertion{}, errors.New("user cancelled")
			})))
		_, err := c.RevokeConsent(t.Context(), "cns-1")
		require.ErrorContains(t, err, "user cancelled")
		assert.Empty(t, f.reqs, "nothing was sent")
	})
}

// An org admin sets the relying party once, then invites a patient and
// hands over the printed link.
func ExampleClient_Invite() {
	ctx := context.Background()
	admin, err := client.New("http://127.0.0.1:8080", client.WithAdminToken("the admin token"))
	if err != nil {
		log.Fatal(err)
	}
	if _, err := admin.SetRelyingParty(ctx, "portal.hospital.example", []string{"https://portal.hospital.example"}); err != nil {
		log.Fatal(err)
	}
	inv, err := admin.Invite(ctx, wire.InviteRequest{ID: "patient-7", Role: wire.RolePatient, TTL: "72h"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("send to patient-7, usable once until", inv.ExpiresAt, ":", inv.URL)
}
