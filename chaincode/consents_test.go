package chaincode_test

import (
	"testing"
	"time"

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
			c, err := e.submit("GrantConsent", e.sign(tt.signer, wire.ActionConsentGrant, tt.fields))
			if got := refusalCode(t, err); got != tt.want {
				t.Fatalf("code = %q, want %q (err %v)", got, tt.want, err)
			}
			if tt.want != "" {
				return
			}
			var cn wire.Consent
			e.mustEvaluate(&cn, "GetConsent", "cns-"+c.TxID[:24])
			if cn.PatientID != patient.id || cn.GranteeID != researcher.id || cn.Status != "active" || cn.GrantedTx != c.TxID {
				t.Errorf("consent = %+v", cn)
			}
		})
	}

	cn := e.grant(patient, researcher, "cardio-study", []string{"spo2"}, t0.Add(-day), t0.Add(day))
	revoke := func(signer *principal) error {
		_, err := e.submit("RevokeConsent", e.sign(signer, wire.ActionConsentRevoke, action{"consentId": cn.ID}))
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
			if got := refusalCode(t, revoke(tt.signer)); got != tt.want {
				t.Fatalf("code = %q, want %q", got, tt.want)
			}
		})
	}

	t.Run("consent list carries the full history", func(t *testing.T) {
		var list []wire.Consent
		e.mustEvaluate(&list, "ListConsents", patient.id)
		if len(list) != 3 {
			t.Fatalf("got %d consents, want 3", len(list))
		}
		var got *wire.Consent
		for i := range list {
			if list[i].ID == cn.ID {
				got = &list[i]
			}
		}
		if got == nil {
			t.Fatalf("consent %s missing from %+v", cn.ID, list)
		}
		if got.Status != "revoked" || len(got.History) != 2 ||
			got.History[0].Status != "active" || got.History[0].TxID != cn.GrantedTx ||
			got.History[1].Status != "revoked" || got.History[1].TxID != got.RevokedTx {
			t.Errorf("consent %+v, history %+v; want active then revoked", got, got.History)
		}
	})
	t.Run("unknown consent cannot be revoked", func(t *testing.T) {
		_, err := e.submit("RevokeConsent", e.sign(patient, wire.ActionConsentRevoke, action{"consentId": "cns-000000000000000000000000"}))
		if got := refusalCode(t, err); got != wire.CodeNotFound {
			t.Errorf("code = %q, want not_found", got)
		}
	})
}
