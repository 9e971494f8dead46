package chaincode_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/medprov/medprov/wire"
)

func TestConsents(t *testing.T) {
	e := newEnv(t)
	patient := e.actor("patient")
	otherPatient := e.actor("patient")
	researcher := e.actor("researcher")
	op := e.actor("operator")
	day := 24 * time.Hour
	valid := func(over action) action {
		a := action{
			"granteeId": researcher.id, "purpose": "cardio-study", "dataTypes": []string{"heart-rate", "spo2"},
			"notBefore": t0.Add(-day).Format(time.RFC3339), "notAfter": t0.Add(30 * day).Format(time.RFC3339),
		}
		for k, v := range over {
			a[k] = v
		}
		return a
	}
	tests := []struct {
		name   string
		signer *principal
		fields action
		want   wire.Code
	}{
		{"patient grants consent", patient, valid(nil), ""},
		{"patient naming themself grants consent", patient, valid(action{"patientId": patient.id}), ""},
		{"consent signed by an operator is refused", op, valid(nil), wire.CodeForbidden},
		{"consent signed by the researcher is refused", researcher, valid(nil), wire.CodeForbidden},
		{"consent for another patient is refused", patient, valid(action{"patientId": otherPatient.id}), wire.CodeForbidden},
		{"grantee that is not a researcher is refused", patient, valid(action{"granteeId": op.id}), wire.CodeInvalid},
		{"unknown grantee is not found", patient, valid(action{"granteeId": "nobody"}), wire.CodeNotFound},
		{"notAfter before notBefore is refused", patient, valid(action{"notBefore": t0.Add(2 * day).Format(time.RFC3339), "notAfter": t0.Add(day).Format(time.RFC3339)}), wire.CodeInvalid},
		{"consent already expired is refused", patient, valid(action{"notBefore": t0.Add(-2 * day).Format(time.RFC3339), "notAfter": t0.Add(-day).Format(time.RFC3339)}), wire.CodeInvalid},
		{"duplicate data types are refused", patient, valid(action{"dataTypes": []string{"spo2", "spo2"}}), wire.CodeInvalid},
		{"no data types is refused", patient, valid(action{"dataTypes": []string{}}), wire.CodeInvalid},
		{"upper-case purpose is refused", patient, valid(action{"purpose": "Study"}), wire.CodeInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := e.submit(wire.FnGrantConsent, e.sign(tt.signer, wire.ActionConsentGrant, tt.fields))
			require.Equal(t, tt.want, refusalCode(t, err), "refusal code (err %v)", err)
			if tt.want != "" {
				return
			}
			var cn wire.Consent
			e.mustEvaluate(&cn, wire.FnGetConsent, "cns-"+c.TxID[:24])
			assert.Equal(t, patient.id, cn.PatientID, "consent patient")
			assert.Equal(t, researcher.id, cn.GranteeID, "consent grantee")
			assert.Equal(t, "active", cn.Status, "consent status")
			assert.Equal(t, c.TxID, cn.GrantedTx, "consent grantedTx")
		})
	}

	cn := e.grant(patient, researcher, "cardio-study", []string{"spo2"}, t0.Add(-day), t0.Add(day))
	revoke := func(signer *principal) error {
		_, err := e.submit(wire.FnRevokeConsent, e.sign(signer, wire.ActionConsentRevoke, action{"consentId": cn.ID}))
		return err
	}
	revokes := []struct {
		name   string
		signer *principal
		want   wire.Code
	}{
		{"another patient cannot revoke the consent", otherPatient, wire.CodeForbidden},
		{"the researcher cannot revoke the consent", researcher, wire.CodeForbidden},
		{"the patient revokes the consent", patient, ""},
		{"revoking twice is a conflict", patient, wire.CodeConflict},
	}
	for _, tt := range revokes {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, refusalCode(t, revoke(tt.signer)), "refusal code")
		})
	}

	t.Run("consent list carries the full history", func(t *testing.T) {
		var list []wire.Consent
		e.mustEvaluate(&list, wire.FnListConsents, patient.id)
		require.Len(t, list, 3, "consents")
		var got *wire.Consent
		for i := range list {
			if list[i].ID == cn.ID {
				got = &list[i]
			}
		}
		require.NotNil(t, got, "consent %s missing from %+v", cn.ID, list)
		assert.Equal(t, "revoked", got.Status, "consent status")
		if assert.Len(t, got.History, 2, "consent history") {
			assert.Equal(t, []string{"active", cn.GrantedTx, "revoked", got.RevokedTx},
				[]string{got.History[0].Status, got.History[0].TxID, got.History[1].Status, got.History[1].TxID},
				"history: active by the grant, then revoked by the revocation")
		}
	})
	t.Run("unknown consent cannot be revoked", func(t *testing.T) {
		_, err := e.submit(wire.FnRevokeConsent, e.sign(patient, wire.ActionConsentRevoke, action{"consentId": "cns-000000000000000000000000"}))
		assert.Equal(t, wire.CodeNotFound, refusalCode(t, err))
	})
}
