package chaincode_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/medprov/medprov/envelope"
	"github.com/medprov/medprov/internal/testkit"
	"github.com/medprov/medprov/wire"
)

// The relying party of the embedded ledger's org (HospitalMSP) in these
// tests.
const (
	rpID     = "portal.hospital.example"
	rpOrigin = "https://portal.hospital.example"
	org      = "HospitalMSP"
)

// setRelyingParty records the org's relying party as its admin.
func (e *env) setRelyingParty(rpID string, origins ...string) {
	e.tb.Helper()
	_, err := e.submitAdmin(wire.FnSetRelyingParty, string(testkit.MustJSON(e.tb, wire.RelyingPartyInput{RPID: rpID, Origins: origins})))
	require.NoError(e.tb, err, "SetRelyingParty")
}

// newAuthenticator returns a software passkey for the org's relying party.
func newAuthenticator(tb testing.TB) *testkit.Authenticator {
	tb.Helper()
	return testkit.NewAuthenticator(tb, rpID, rpOrigin)
}

// registerPasskey registers a's credential for p as the org admin.
func (e *env) registerPasskey(p *principal, a *testkit.Authenticator) {
	e.tb.Helper()
	in := wire.PasskeyInput{ActorID: p.id, PasskeyCredential: a.Credential(e.tb)}
	_, err := e.submitAdmin(wire.FnRegisterPasskey, string(testkit.MustJSON(e.tb, in)))
	require.NoError(e.tb, err, "RegisterPasskey")
}

// passkeyActor registers an actor whose only credential is a fresh
// passkey, as an invitation's enrolment does; the principal has no key.
func (e *env) passkeyActor(role string) (*principal, *testkit.Authenticator) {
	e.tb.Helper()
	p := &principal{id: e.uid(role), role: role}
	a := newAuthenticator(e.tb)
	cred := a.Credential(e.tb)
	in := wire.ActorInput{ID: p.id, Role: role, Passkey: &cred}
	_, err := e.submitAdmin(wire.FnRegisterActor, string(testkit.MustJSON(e.tb, in)))
	require.NoError(e.tb, err, "register %s with a passkey", role)
	return p, a
}

// payload returns the action payload e.sign would sign for p.
func (e *env) payload(p *principal, name string, a action) []byte {
	e.tb.Helper()
	payload := map[string]any{
		"action": name, "actorId": p.id,
		"issuedAt": e.clock.Now().Format(time.RFC3339), "nonce": testkit.Nonce(e.tb),
	}
	for k, v := range a {
		if v == nil {
			delete(payload, k)
			continue
		}
		payload[k] = v
	}
	return testkit.MustJSON(e.tb, payload)
}

// signPasskey returns the passkey envelope of an action by p, asserted by
// a after edits.
func (e *env) signPasskey(p *principal, a *testkit.Authenticator, name string, fields action, edits ...func(*testkit.AssertionParts)) string {
	e.tb.Helper()
	return string(testkit.MustJSON(e.tb, a.Assert(e.tb, e.payload(p, name, fields), edits...)))
}

// passkey returns the ledger's record of a's credential.
func (e *env) passkey(a *testkit.Authenticator) wire.Passkey {
	e.tb.Helper()
	var pk wire.Passkey
	e.mustEvaluate(&pk, wire.FnGetPasskey, base64.RawURLEncoding.EncodeToString(a.CredentialID))
	return pk
}

func TestSetRelyingParty(t *testing.T) {
	e := newEnv(t)
	arg := func(rpID string, origins ...string) string {
		return string(testkit.MustJSON(t, wire.RelyingPartyInput{RPID: rpID, Origins: origins}))
	}
	tests := []struct {
		name  string
		admin bool
		arg   string
		want  wire.Code
	}{
		{"admin sets the relying party", true, arg(rpID, rpOrigin, "https://eu.portal.hospital.example:8443"), ""},
		{"admin sets localhost for development", true, arg("localhost", "http://localhost:8080"), ""},
		{"non-admin is refused", false, arg(rpID, rpOrigin), wire.CodeForbidden},
		{"an upper-case rpId is refused", true, arg("Portal.example", "https://Portal.example"), wire.CodeInvalid},
		{"an origin of another site is refused", true, arg(rpID, "https://evil.example"), wire.CodeInvalid},
		{"an http origin off localhost is refused", true, arg(rpID, "http://portal.hospital.example"), wire.CodeInvalid},
		{"an origin with a path is refused", true, arg(rpID, rpOrigin+"/"), wire.CodeInvalid},
		{"duplicate origins are refused", true, arg(rpID, rpOrigin, rpOrigin), wire.CodeInvalid},
		{"no origin is refused", true, arg(rpID), wire.CodeInvalid},
		{"an unknown member is refused", true, `{"rpId":"portal.hospital.example","origins":["https://portal.hospital.example"],"org":"OtherMSP"}`, wire.CodeInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			submit := e.submit
			if tt.admin {
				submit = e.submitAdmin
			}
			c, err := submit(wire.FnSetRelyingParty, tt.arg)
			require.Equal(t, tt.want, refusalCode(t, err), "refusal code (err %v)", err)
			if tt.want != "" {
				return
			}
			var in wire.RelyingPartyInput
			require.NoError(t, json.Unmarshal([]byte(tt.arg), &in))
			var got wire.RelyingParty
			e.mustEvaluate(&got, wire.FnGetRelyingParty, org)
			want := wire.RelyingParty{DocType: "relyingParty", Org: org, RPID: in.RPID, Origins: in.Origins, SetTx: c.TxID, SetAt: t0.Format("2006-01-02T15:04:05.000000000Z")}
			assert.Equal(t, want, got, "the org's relying party is the last one set")
		})
	}
	t.Run("an org without a relying party is not found", func(t *testing.T) {
		_, err := e.evaluate(wire.FnGetRelyingParty, "OtherMSP")
		assert.Equal(t, wire.CodeNotFound, refusalCode(t, err))
	})
}

func TestRegisterPasskey(t *testing.T) {
	e := newEnv(t)
	patient := e.actor(wire.RolePatient)
	revoked := e.actor(wire.RoleResearcher)
	_, err := e.submitAdmin(wire.FnRevokeOrgActor, string(testkit.MustJSON(t, wire.ActorRevokeInput{ID: revoked.id, Reason: "left"})))
	require.NoError(t, err, "revoke actor")
	arg := func(actorID string, c wire.PasskeyCredential) string {
		return string(testkit.MustJSON(t, wire.PasskeyInput{ActorID: actorID, PasskeyCredential: c}))
	}
	early := newAuthenticator(t)
	t.Run("a passkey before the org's relying party is set is refused", func(t *testing.T) {
		_, err := e.submitAdmin(wire.FnRegisterPasskey, arg(patient.id, early.Credential(t)))
		assert.Equal(t, wire.CodeForbidden, refusalCode(t, err))
	})
	e.setRelyingParty(rpID, rpOrigin)

	first := newAuthenticator(t)
	first.SignCount = 7
	taken := newAuthenticator(t)
	taken.CredentialID = first.CredentialID
	withKey := func(a *testkit.Authenticator, pemKey string) wire.PasskeyCredential {
		c := a.Credential(t)
		c.PublicKey = pemKey
		return c
	}
	withID := func(id string) wire.PasskeyCredential {
		c := newAuthenticator(t).Credential(t)
		c.CredentialID = id
		return c
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	require.NoError(t, err, "P-384 key")
	der, err := x509.MarshalPKIXPublicKey(&p384.PublicKey)
	require.NoError(t, err, "marshal P-384 key")
	p384PEM := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))

	tests := []struct {
		name  string
		admin bool
		arg   string
		want  wire.Code
	}{
		{"admin registers a passkey for an actor", true, arg(patient.id, first.Credential(t)), ""},
		{"admin registers a second passkey for the actor", true, arg(patient.id, newAuthenticator(t).Credential(t)), ""},
		{"non-admin is refused", false, arg(patient.id, newAuthenticator(t).Credential(t)), wire.CodeForbidden},
		{"an unknown actor is not found", true, arg("nobody", newAuthenticator(t).Credential(t)), wire.CodeNotFound},
		{"a revoked actor is refused", true, arg(revoked.id, newAuthenticator(t).Credential(t)), wire.CodeForbidden},
		{"a credential id registered before is a conflict", true, arg(patient.id, taken.Credential(t)), wire.CodeConflict},
		{"a key registered to an actor is a conflict", true, arg(patient.id, withKey(newAuthenticator(t), patient.pem)), wire.CodeConflict},
		{"a padded credential id is refused", true, arg(patient.id, withID(base64.URLEncoding.EncodeToString(make([]byte, 32)))), wire.CodeInvalid},
		{"a standard-base64 credential id is refused", true, arg(patient.id, withID(strings.Repeat("+", 43))), wire.CodeInvalid},
		{"a credential id of 8 bytes is refused", true, arg(patient.id, withID(base64.RawURLEncoding.EncodeToString(make([]byte, 8)))), wire.CodeInvalid},
		{"a P-384 key is refused", true, arg(patient.id, withKey(newAuthenticator(t), p384PEM)), wire.CodeInvalid},
		{"a COSE key in place of PEM is refused", true, arg(patient.id, withKey(newAuthenticator(t), base64.StdEncoding.EncodeToString(first.COSEKey(t)))), wire.CodeInvalid},
		{"an unknown member is refused", true, `{"actorId":"` + patient.id + `","credentialId":"AAAAAAAAAAAAAAAAAAAAAA","publicKey":"x","signCount":0,"rpId":"evil.example"}`, wire.CodeInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			submit := e.submit
			if tt.admin {
				submit = e.submitAdmin
			}
			c, err := submit(wire.FnRegisterPasskey, tt.arg)
			require.Equal(t, tt.want, refusalCode(t, err), "refusal code (err %v)", err)
			if tt.want != "" {
				return
			}
			var in wire.PasskeyInput
			require.NoError(t, json.Unmarshal([]byte(tt.arg), &in))
			var got wire.Passkey
			e.mustEvaluate(&got, wire.FnGetPasskey, in.CredentialID)
			want := wire.Passkey{
				DocType: "passkey", CredentialID: in.CredentialID, ActorID: patient.id, PublicKey: in.PublicKey,
				RPID: rpID, SignCount: in.SignCount, RegisteredTx: c.TxID, RegisteredAt: t0.Format("2006-01-02T15:04:05.000000000Z"),
			}
			assert.Equal(t, want, got, "GetPasskey")
		})
	}
	t.Run("the actor's passkeys are listed", func(t *testing.T) {
		var got []wire.Passkey
		e.mustEvaluate(&got, wire.FnListPasskeys, patient.id)
		require.Len(t, got, 2)
		for _, pk := range got {
			assert.Equal(t, patient.id, pk.ActorID)
		}
		assert.Less(t, got[0].CredentialID, got[1].CredentialID, "ordered by credential id")
	})
	t.Run("the registration is audited as the org's", func(t *testing.T) {
		events := auditEvents(t, e, wire.AuditPasskeyRegistered)
		require.Len(t, events, 2)
		assert.Equal(t, "org:"+org, events[0].ActorID)
		assert.Equal(t, []string{patient.id}, events[0].PatientIDs)
	})
	t.Run("an unknown passkey is not found", func(t *testing.T) {
		_, err := e.evaluate(wire.FnGetPasskey, base64.RawURLEncoding.EncodeToString(make([]byte, 16)))
		assert.Equal(t, wire.CodeNotFound, refusalCode(t, err))
	})

	t.Run("an actor registered with a passkey has no PEM key", func(t *testing.T) {
		p, a := e.passkeyActor(wire.RolePatient)
		var got wire.Actor
		e.mustEvaluate(&got, wire.FnGetActor, p.id)
		assert.Empty(t, got.PublicKey, "publicKey")
		assert.Equal(t, wire.StatusActive, got.Status)
		pk := e.passkey(a)
		assert.Equal(t, p.id, pk.ActorID)
		assert.Equal(t, rpID, pk.RPID)
	})
	t.Run("an actor with a PEM key and a passkey at once is refused", func(t *testing.T) {
		cred := newAuthenticator(t).Credential(t)
		in := wire.ActorInput{ID: e.uid("patient"), Role: wire.RolePatient, PublicKey: freshPEM(t), Passkey: &cred}
		_, err := e.submitAdmin(wire.FnRegisterActor, string(testkit.MustJSON(t, in)))
		assert.Equal(t, wire.CodeInvalid, refusalCode(t, err))
		_, err = e.evaluate(wire.FnGetActor, in.ID)
		assert.Equal(t, wire.CodeNotFound, refusalCode(t, err), "nothing written")
	})
	t.Run("an actor with a passkey already registered is a conflict", func(t *testing.T) {
		cred := first.Credential(t)
		in := wire.ActorInput{ID: e.uid("patient"), Role: wire.RolePatient, Passkey: &cred}
		_, err := e.submitAdmin(wire.FnRegisterActor, string(testkit.MustJSON(t, in)))
		assert.Equal(t, wire.CodeConflict, refusalCode(t, err))
		_, err = e.evaluate(wire.FnGetActor, in.ID)
		assert.Equal(t, wire.CodeNotFound, refusalCode(t, err), "nothing written")
	})
}

// auditEvents returns the audit events of one type.
func auditEvents(t *testing.T, e *env, typ string) []wire.AuditEvent {
	t.Helper()
	var page wire.AuditEventPage
	e.mustEvaluate(&page, wire.FnListEvents, string(testkit.MustJSON(t, wire.EventFilter{Type: typ})), "1000", "")
	return page.Items
}

// TestPasskeySignedActions runs passkey-signed actions through the
// chaincode: the assertions are real ES256 signatures of a software
// authenticator, and every refusal leaves the ledger as it was.
func TestPasskeySignedActions(t *testing.T) {
	e := newEnv(t)
	e.setRelyingParty(rpID, rpOrigin)
	researcher := e.actor(wire.RoleResearcher)
	patient := e.actor(wire.RolePatient) // a PEM key and a passkey
	auth := newAuthenticator(t)
	e.registerPasskey(patient, auth)
	researcherAuth := newAuthenticator(t)
	e.registerPasskey(researcher, researcherAuth)
	day := 24 * time.Hour
	grant := action{
		"granteeId": researcher.id, "purpose": "cardio-study", "dataTypes": []string{"spo2"},
		"notBefore": t0.Add(-day).Format(time.RFC3339), "notAfter": t0.Add(30 * day).Format(time.RFC3339),
	}
	consents := func() int {
		var got []wire.Consent
		e.mustEvaluate(&got, wire.FnListConsents, patient.id)
		return len(got)
	}

	t.Run("a passkey-signed grant is recorded as a plain-signed one", func(t *testing.T) {
		auth.SignCount = 41 // the authenticator signed elsewhere before
		var plain, passkey wire.Consent
		pc := e.mustSubmit(&plain, wire.FnGrantConsent, e.sign(patient, wire.ActionConsentGrant, grant))
		kc := e.mustSubmit(&passkey, wire.FnGrantConsent, e.signPasskey(patient, auth, wire.ActionConsentGrant, grant))
		assert.Equal(t, "cns-"+kc.TxID[:24], passkey.ID)
		assert.Equal(t, kc.TxID, passkey.GrantedTx)
		passkey.ID, passkey.GrantedTx = plain.ID, plain.GrantedTx
		assert.Equal(t, plain, passkey, "the same consent record, but for its ids")

		var stored wire.Consent
		e.mustEvaluate(&stored, wire.FnGetConsent, "cns-"+kc.TxID[:24])
		assert.Equal(t, patient.id, stored.PatientID)
		pa, ka := auditOf(t, e, wire.AuditConsentGranted, pc.TxID), auditOf(t, e, wire.AuditConsentGranted, kc.TxID)
		assert.Equal(t, patient.id, ka.ActorID, "the audit event names the patient")
		pa.ID, pa.TxID, pa.SubjectID = ka.ID, ka.TxID, ka.SubjectID
		assert.Equal(t, pa, ka, "the same audit event, but for its ids")
		assert.Equal(t, uint32(42), e.passkey(auth).SignCount, "the ledger holds the authenticator's counter")
	})

	t.Run("the plain envelope still works for an actor with a passkey", func(t *testing.T) {
		_, err := e.submit(wire.FnGrantConsent, e.sign(patient, wire.ActionConsentGrant, grant))
		require.NoError(t, err)
	})

	other := testkit.MustKey(t)
	stranger := newAuthenticator(t) // never registered
	tests := []struct {
		name string
		env  func() string
		want wire.Code
		why  string // part of the refusal message
	}{
		{"a payload changed after signing is refused (wrong challenge)", func() string {
			s := auth.Assert(t, e.payload(patient, wire.ActionConsentGrant, grant))
			s.Payload = e.payload(patient, wire.ActionConsentGrant, action{"purpose": "marketing"}.with(grant))
			return string(testkit.MustJSON(t, s))
		}, wire.CodeUnauthenticated, "challenge"},
		{"a cleared UV flag is refused", func() string {
			return e.signPasskey(patient, auth, wire.ActionConsentGrant, grant, func(p *testkit.AssertionParts) { p.Flags = envelope.FlagUserPresent })
		}, wire.CodeUnauthenticated, "(UV)"},
		{"a cleared UP flag is refused", func() string {
			return e.signPasskey(patient, auth, wire.ActionConsentGrant, grant, func(p *testkit.AssertionParts) { p.Flags = envelope.FlagUserVerified })
		}, wire.CodeUnauthenticated, "(UP)"},
		{"an origin not in the allowlist is refused", func() string {
			return e.signPasskey(patient, auth, wire.ActionConsentGrant, grant, func(p *testkit.AssertionParts) { p.Origin = "https://evil.example" })
		}, wire.CodeUnauthenticated, "origin is not allowed"},
		{"a cross-origin frame is refused", func() string {
			return e.signPasskey(patient, auth, wire.ActionConsentGrant, grant, func(p *testkit.AssertionParts) {
				p.ClientDataJSON = []byte(`{"type":"webauthn.get","challenge":"` + p.Challenge + `","origin":"` + rpOrigin + `","crossOrigin":true}`)
			})
		}, wire.CodeUnauthenticated, "cross-origin"},
		{"an rpIdHash of another rpId is refused", func() string {
			return e.signPasskey(patient, auth, wire.ActionConsentGrant, grant, func(p *testkit.AssertionParts) { p.RPID = "evil.example" })
		}, wire.CodeUnauthenticated, "another relying party"},
		{"an unknown credential id is refused", func() string {
			return e.signPasskey(patient, stranger, wire.ActionConsentGrant, grant)
		}, wire.CodeUnauthenticated, "unknown passkey"},
		{"another actor's passkey is refused", func() string {
			return e.signPasskey(patient, researcherAuth, wire.ActionConsentGrant, grant)
		}, wire.CodeUnauthenticated, "unknown passkey"},
		{"a signature by another key is refused", func() string {
			return e.signPasskey(patient, auth, wire.ActionConsentGrant, grant, func(p *testkit.AssertionParts) { p.Key = other })
		}, wire.CodeUnauthenticated, "signature does not verify"},
		{"a registration's client data type webauthn.create is refused", func() string {
			return e.signPasskey(patient, auth, wire.ActionConsentGrant, grant, func(p *testkit.AssertionParts) { p.Type = "webauthn.create" })
		}, wire.CodeUnauthenticated, "not webauthn.get"},
		{"a counter below the stored one is refused", func() string {
			return e.signPasskey(patient, auth, wire.ActionConsentGrant, grant, func(p *testkit.AssertionParts) { p.SignCount = 7 })
		}, wire.CodeUnauthenticated, "signature counter 7 is not above 42"},
		{"a counter of zero after non-zero ones is refused", func() string {
			return e.signPasskey(patient, auth, wire.ActionConsentGrant, grant, func(p *testkit.AssertionParts) { p.SignCount = 0 })
		}, wire.CodeUnauthenticated, "signature counter 0 is not above 42"},
		{"a stale issuedAt is refused", func() string {
			return e.signPasskey(patient, auth, wire.ActionConsentGrant, action{"issuedAt": t0.Add(-6 * time.Minute).Format(time.RFC3339)}.with(grant))
		}, wire.CodeUnauthenticated, "stale issuedAt"},
		{"a passkey of an actor without the role is refused", func() string {
			return e.signPasskey(researcher, researcherAuth, wire.ActionConsentGrant, grant)
		}, wire.CodeForbidden, "requires role patient"},
		{"a duplicate member in clientDataJSON is refused", func() string {
			return e.signPasskey(patient, auth, wire.ActionConsentGrant, grant, func(p *testkit.AssertionParts) {
				p.ClientDataJSON = []byte(`{"type":"webauthn.get","challenge":"` + p.Challenge + `","origin":"https://evil.example","origin":"` + rpOrigin + `"}`)
			})
		}, wire.CodeInvalid, "duplicate member name"},
		{"client data that is not JSON is refused", func() string {
			return e.signPasskey(patient, auth, wire.ActionConsentGrant, grant, func(p *testkit.AssertionParts) { p.ClientDataJSON = []byte("webauthn.get") })
		}, wire.CodeInvalid, "not valid JSON"},
		{"a padded base64url value is refused", func() string {
			env := e.signPasskey(patient, auth, wire.ActionConsentGrant, grant)
			id := base64.RawURLEncoding.EncodeToString(auth.CredentialID)
			return strings.Replace(env, `"credentialId":"`+id+`"`, `"credentialId":"`+id+`="`, 1)
		}, wire.CodeInvalid, "malformed envelope"},
		{"base64url with non-zero padding bits is refused", func() string {
			env := e.signPasskey(patient, auth, wire.ActionConsentGrant, grant)
			id := base64.RawURLEncoding.EncodeToString(auth.CredentialID) // 43 characters: the last carries 2 padding bits
			bent := id[:len(id)-1] + string(flipLowBit(id[len(id)-1]))
			return strings.Replace(env, `"credentialId":"`+id+`"`, `"credentialId":"`+bent+`"`, 1)
		}, wire.CodeInvalid, "malformed envelope"},
		{"a webauthn value in the standard base64 alphabet is refused", func() string {
			s := auth.Assert(t, e.payload(patient, wire.ActionConsentGrant, grant))
			env := string(testkit.MustJSON(t, s))
			// SHA-256 of the rpId opens the authenticator data; its base64
			// holds a '/' where base64url has '_'.
			url, std := base64.RawURLEncoding.EncodeToString(s.WebAuthn.AuthenticatorData), base64.RawStdEncoding.EncodeToString(s.WebAuthn.AuthenticatorData)
			require.NotEqual(t, url, std)
			return strings.Replace(env, url, std, 1)
		}, wire.CodeInvalid, "malformed envelope"},
		{"an envelope with both a signature and an assertion is refused", func() string {
			env := e.signPasskey(patient, auth, wire.ActionConsentGrant, grant)
			return strings.Replace(env, `"webauthn":`, `"signature":"AQID","webauthn":`, 1)
		}, wire.CodeInvalid, "malformed envelope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			envJSON := tt.env()
			height, count, counter := e.l.Height(), consents(), e.passkey(auth).SignCount
			_, err := e.submit(wire.FnGrantConsent, envJSON)
			require.Equal(t, tt.want, refusalCode(t, err), "refusal code (err %v)", err)
			assert.Contains(t, refusalMessage(t, err), tt.why)
			assert.Equal(t, height, e.l.Height(), "no block written")
			assert.Equal(t, count, consents(), "no consent written")
			assert.Equal(t, counter, e.passkey(auth).SignCount, "counter unchanged")
		})
	}

	t.Run("a replayed assertion is refused by its counter", func(t *testing.T) {
		envJSON := e.signPasskey(patient, auth, wire.ActionConsentGrant, grant)
		_, err := e.submit(wire.FnGrantConsent, envJSON)
		require.NoError(t, err, "first use")
		count := consents()
		_, err = e.submit(wire.FnGrantConsent, envJSON)
		assert.Equal(t, wire.CodeUnauthenticated, refusalCode(t, err), "replay (err %v)", err)
		assert.Contains(t, refusalMessage(t, err), "signature counter")
		assert.Equal(t, count, consents(), "no consent written")
	})

	t.Run("a passkey without a counter is replay-protected by the nonce", func(t *testing.T) {
		p, a := e.passkeyActor(wire.RolePatient)
		a.Counterless = true
		_, err := e.submit(wire.FnGrantConsent, e.signPasskey(p, a, wire.ActionConsentGrant, grant))
		require.NoError(t, err, "first grant with counter 0")
		envJSON := e.signPasskey(p, a, wire.ActionConsentGrant, grant)
		_, err = e.submit(wire.FnGrantConsent, envJSON)
		require.NoError(t, err, "second grant with counter 0")
		assert.Zero(t, e.passkey(a).SignCount)
		_, err = e.submit(wire.FnGrantConsent, envJSON)
		assert.Equal(t, wire.CodeConflict, refusalCode(t, err), "replayed nonce (err %v)", err)
	})

	t.Run("a passkey-only actor cannot sign a plain envelope", func(t *testing.T) {
		p, _ := e.passkeyActor(wire.RolePatient)
		p.key = testkit.MustKey(t)
		_, err := e.submit(wire.FnGrantConsent, e.sign(p, wire.ActionConsentGrant, grant))
		assert.Equal(t, wire.CodeUnauthenticated, refusalCode(t, err), "err %v", err)
	})

	t.Run("a passkey-only actor gains a PEM key by rotation signed with its passkey", func(t *testing.T) {
		p, a := e.passkeyActor(wire.RolePatient)
		p.key = testkit.MustKey(t)
		_, err := e.submit(wire.FnRotateActorKey, e.signPasskey(p, a, wire.ActionActorRotate, action{"publicKey": testkit.PublicPEM(t, p.key)}))
		require.NoError(t, err, "rotate")
		_, err = e.submit(wire.FnGrantConsent, e.sign(p, wire.ActionConsentGrant, grant))
		require.NoError(t, err, "plain envelope with the new key")
		_, err = e.submit(wire.FnGrantConsent, e.signPasskey(p, a, wire.ActionConsentGrant, grant))
		require.NoError(t, err, "the passkey still signs")
	})

	t.Run("a revoked actor's passkey is refused", func(t *testing.T) {
		p, a := e.passkeyActor(wire.RolePatient)
		_, err := e.submitAdmin(wire.FnRevokeOrgActor, string(testkit.MustJSON(t, wire.ActorRevokeInput{ID: p.id, Reason: "left"})))
		require.NoError(t, err, "revoke")
		_, err = e.submit(wire.FnGrantConsent, e.signPasskey(p, a, wire.ActionConsentGrant, grant))
		assert.Equal(t, wire.CodeForbidden, refusalCode(t, err), "err %v", err)
	})

	t.Run("passkeys of a replaced rpId are refused", func(t *testing.T) {
		e.setRelyingParty("hospital.example", "https://hospital.example")
		moved := testkit.NewAuthenticator(t, "hospital.example", "https://hospital.example")
		moved.Key, moved.CredentialID, moved.SignCount = auth.Key, auth.CredentialID, auth.SignCount
		_, err := e.submit(wire.FnGrantConsent, e.signPasskey(patient, moved, wire.ActionConsentGrant, grant))
		assert.Equal(t, wire.CodeUnauthenticated, refusalCode(t, err), "err %v", err)
	})
}

// with returns a copy of base with a's fields set over it.
func (a action) with(base action) action {
	out := action{}
	for k, v := range base {
		out[k] = v
	}
	for k, v := range a {
		out[k] = v
	}
	return out
}

// flipLowBit returns the base64url character whose 6-bit value differs
// from c's in the lowest bit.
func flipLowBit(c byte) byte {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	return alphabet[strings.IndexByte(alphabet, c)^1]
}
