package e2e

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/medprov/medprov/envelope"
	"github.com/medprov/medprov/internal/testkit"
	"github.com/medprov/medprov/internal/testnet"
	"github.com/medprov/medprov/wire"
)

// The relying party the peer CLI's passkey signs for: the scenario's rpId
// (so the passkeys it registered stay bound to the org's relying party) and
// an origin of this test's own.
const (
	cliRPID     = "localhost"
	cliOrigin   = "https://peer-cli.localhost"
	hospitalMSP = "HospitalMSP"
)

// checkChaincodeEnforcesPasskeys shows that the chaincode itself, not the
// gateway, checks passkey signatures: every transaction goes through
// Fabric's own peer CLI as the HospitalMSP admin on network n. It adds an
// origin to the org's relying party, registers a patient whose only
// credential is a software passkey and a researcher, then submits consent
// grants the passkey signed. The intact assertion is recorded; tampered
// ones are refused by the chaincode at endorsement, leaving the patient's
// consents and the passkey's counter as they were. IDs are fresh, so it
// runs on a ledger other tests have used.
func checkChaincodeEnforcesPasskeys(t *testing.T, n *testnet.FabricNetwork) {
	ctx := t.Context()
	suffix := testkit.Nonce(t)[:8]
	patientID, researcherID := "cli-pat-"+suffix, "cli-res-"+suffix
	auth := testkit.NewAuthenticator(t, cliRPID, cliOrigin)
	cred := auth.Credential(t)

	addOrigin(t, n, cliRPID, cliOrigin)
	for _, in := range []wire.ActorInput{
		{ID: patientID, Role: wire.RolePatient, Passkey: &cred},
		{ID: researcherID, Role: wire.RoleResearcher, PublicKey: testkit.PublicPEM(t, testkit.MustKey(t))},
	} {
		_, err := n.Invoke(ctx, wire.FnRegisterActor, string(testkit.MustJSON(t, in)))
		require.NoError(t, err, "RegisterActor %s with the peer CLI", in.ID)
	}
	var pk wire.Passkey
	queryJSON(t, n, &pk, wire.FnGetPasskey, cred.CredentialID)
	require.Equal(t, patientID, pk.ActorID, "the passkey's actor")
	require.Equal(t, cliRPID, pk.RPID, "the passkey's rpId")
	signCount := func(t *testing.T) uint32 {
		t.Helper()
		var pk wire.Passkey
		queryJSON(t, n, &pk, wire.FnGetPasskey, cred.CredentialID)
		return pk.SignCount
	}

	// grant returns a consent.grant payload of the patient, issued now.
	grant := func(t *testing.T, purpose string) []byte {
		t.Helper()
		now := time.Now().UTC()
		return testkit.MustJSON(t, wire.ConsentGrantAction{
			ActionHeader: wire.ActionHeader{
				Action: wire.ActionConsentGrant, ActorID: patientID,
				IssuedAt: now.Format(time.RFC3339), Nonce: testkit.Nonce(t),
			},
			GranteeID: researcherID, Purpose: purpose, DataTypes: []string{"spo2"},
			NotBefore: now.Add(-time.Hour).Format(time.RFC3339), NotAfter: now.Add(30 * 24 * time.Hour).Format(time.RFC3339),
		})
	}
	consents := func(t *testing.T) []wire.Consent {
		t.Helper()
		var got []wire.Consent
		queryJSON(t, n, &got, wire.FnListConsents, patientID)
		return got
	}

	t.Run("a grant signed with the passkey is recorded", func(t *testing.T) {
		signed := auth.Assert(t, grant(t, "cli-study"))
		txID, err := n.Invoke(ctx, wire.FnGrantConsent, string(testkit.MustJSON(t, signed)))
		require.NoError(t, err, "GrantConsent with the peer CLI")
		require.Regexp(t, "^[0-9a-f]{64}$", txID, "transaction ID")

		var got wire.Consent
		queryJSON(t, n, &got, wire.FnGetConsent, "cns-"+txID[:24])
		assert.Equal(t, patientID, got.PatientID)
		assert.Equal(t, researcherID, got.GranteeID)
		assert.Equal(t, "cli-study", got.Purpose)
		assert.Equal(t, wire.StatusActive, got.Status)
		assert.Equal(t, txID, got.GrantedTx)
		listed := consents(t)
		if assert.Len(t, listed, 1, "ListConsents") {
			assert.Equal(t, got.ID, listed[0].ID, "ListConsents")
		}
		assert.Equal(t, auth.SignCount, signCount(t), "the ledger holds the authenticator's counter")
	})

	other := grant(t, "swapped-in")
	tests := []struct {
		name string
		sign func(t *testing.T, payload []byte) envelope.Signed
		why  string // part of the chaincode's refusal
	}{
		{"an assertion with a flipped signature byte is refused", func(t *testing.T, payload []byte) envelope.Signed {
			s := auth.Assert(t, payload)
			s.WebAuthn.Signature[len(s.WebAuthn.Signature)-1] ^= 0x01
			return s
		}, envelope.ErrBadSignature.Error()},
		{"an assertion whose client data challenge is another payload's is refused", func(t *testing.T, payload []byte) envelope.Signed {
			return auth.Assert(t, payload, func(p *testkit.AssertionParts) { p.Challenge = envelope.Challenge(other) })
		}, envelope.ErrChallenge.Error()},
		{"an assertion without user verification (UV) is refused", func(t *testing.T, payload []byte) envelope.Signed {
			return auth.Assert(t, payload, func(p *testkit.AssertionParts) { p.Flags &^= envelope.FlagUserVerified })
		}, envelope.ErrUserVerification.Error()},
		{"a payload swapped after signing is refused", func(t *testing.T, payload []byte) envelope.Signed {
			s := auth.Assert(t, payload)
			s.Payload = other
			return s
		}, envelope.ErrChallenge.Error()},
		{"an assertion from an origin the ledger does not list is refused", func(t *testing.T, payload []byte) envelope.Signed {
			return auth.Assert(t, payload, func(p *testkit.AssertionParts) { p.Origin = "https://evil.localhost" })
		}, envelope.ErrOrigin.Error()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			signed := tt.sign(t, grant(t, "cli-tampered"))
			before, counter := consents(t), signCount(t)

			_, err := n.Invoke(ctx, wire.FnGrantConsent, string(testkit.MustJSON(t, signed)))
			require.Error(t, err, "GrantConsent with the peer CLI")
			assert.Contains(t, err.Error(), "endorsement failure during invoke", "refused at endorsement")
			got, ok := wire.ParseError(err.Error())
			require.True(t, ok, "no chaincode refusal in %v", err)
			assert.Equal(t, wire.CodeUnauthenticated, got.Code, "refusal code (err %v)", err)
			assert.Contains(t, got.Message, tt.why)

			assert.Equal(t, before, consents(t), "no consent written")
			assert.Equal(t, counter, signCount(t), "counter unchanged")
		})
	}
}

// addOrigin makes origin an allowed origin of the HospitalMSP relying party
// rpID with SetRelyingParty through the peer CLI. SetRelyingParty replaces
// the relying party, so when an earlier test set one with the same rpId
// its origins are kept.
func addOrigin(t *testing.T, n *testnet.FabricNetwork, rpID, origin string) {
	t.Helper()
	in := wire.RelyingPartyInput{RPID: rpID, Origins: []string{origin}}
	out, err := n.Query(t.Context(), wire.FnGetRelyingParty, hospitalMSP)
	if err == nil {
		var cur wire.RelyingParty
		require.NoError(t, json.Unmarshal(out, &cur), "GetRelyingParty result %s", out)
		if cur.RPID == rpID {
			in.Origins = cur.Origins
			if !slices.Contains(in.Origins, origin) {
				in.Origins = append(in.Origins, origin)
			}
		}
	} else {
		got, ok := wire.ParseError(err.Error())
		require.True(t, ok && got.Code == wire.CodeNotFound, "GetRelyingParty: %v", err)
	}
	_, err = n.Invoke(t.Context(), wire.FnSetRelyingParty, string(testkit.MustJSON(t, in)))
	require.NoError(t, err, "SetRelyingParty with the peer CLI")
	var rp wire.RelyingParty
	queryJSON(t, n, &rp, wire.FnGetRelyingParty, hospitalMSP)
	require.Equal(t, in.RPID, rp.RPID, "the org's rpId")
	require.Equal(t, in.Origins, rp.Origins, "the org's origins")
}

// queryJSON evaluates fn with the peer CLI and decodes its result into out.
func queryJSON(t *testing.T, n *testnet.FabricNetwork, out any, fn string, args ...string) {
	t.Helper()
	b, err := n.Query(t.Context(), fn, args...)
	require.NoError(t, err, "%s with the peer CLI", fn)
	require.NoError(t, json.Unmarshal(b, out), "%s result %s", fn, b)
}
