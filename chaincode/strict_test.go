package chaincode_test

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/medprov/medprov/internal/testkit"
	"github.com/medprov/medprov/ledger"
	"github.com/medprov/medprov/wire"
)

// signRaw returns the envelope of payload, exactly these bytes, signed by
// p: a payload that no map or struct would marshal to.
func (e *env) signRaw(p *principal, payload string) string {
	e.tb.Helper()
	return string(testkit.MustJSON(e.tb, testkit.MustSign(e.tb, p.key, []byte(payload))))
}

// header returns the first members of an action payload of p, with a fresh
// nonce and the ledger's current time, ready for more members.
func (e *env) header(p *principal, action string) string {
	e.tb.Helper()
	return `{"action":` + jsonString(e.tb, action) + `,"actorId":` + jsonString(e.tb, p.id) +
		`,"issuedAt":"` + e.clock.Now().Format(time.RFC3339) + `","nonce":"` + testkit.Nonce(e.tb) + `"`
}

// refusalMessage returns the message of the chaincode refusal err.
func refusalMessage(tb testing.TB, err error) string {
	tb.Helper()
	var ce *ledger.ChaincodeError
	require.ErrorAs(tb, err, &ce)
	r, ok := wire.ParseError(ce.Message)
	require.True(tb, ok, "refusal carries no medprov code: %q", ce.Message)
	return r.Message
}

func jsonString(tb testing.TB, s string) string {
	tb.Helper()
	return string(testkit.MustJSON(tb, s))
}

// TestStrictSignedPayloads reproduces the "two readings of one signed
// payload" attacks against the chaincode: every payload below carries a
// valid signature of a registered, active actor, and a JSON reader that
// took the last duplicate or matched names case-insensitively would see a
// different action than another reader of the same bytes. The chaincode
// must refuse each one as invalid and write nothing.
func TestStrictSignedPayloads(t *testing.T) {
	e := newEnv(t)
	patient := e.actor(wire.RolePatient)
	researcher := e.actor(wire.RoleResearcher)
	intruder := e.actor(wire.RoleResearcher)
	op := e.actor(wire.RoleOperator)
	day := 24 * time.Hour
	grantTail := func(grantee string) string {
		return `,"granteeId":` + jsonString(t, grantee) + `,"purpose":"cardio-study","dataTypes":["spo2"]` +
			`,"notBefore":"` + t0.Add(-day).Format(time.RFC3339) + `","notAfter":"` + t0.Add(30*day).Format(time.RFC3339) + `"`
	}
	devPEM := jsonString(t, freshPEM(t))
	tests := []struct {
		name    string
		fn      string
		signer  *principal
		payload func() string
		want    wire.Code
		why     string // part of the refusal message
	}{
		{"a plain consent grant is recorded (control)", wire.FnGrantConsent, patient, func() string {
			return e.header(patient, wire.ActionConsentGrant) + grantTail(researcher.id) + `}`
		}, "", ""},
		{"a consent grant with a second granteeId is refused", wire.FnGrantConsent, patient, func() string {
			return e.header(patient, wire.ActionConsentGrant) + grantTail(researcher.id) + `,"granteeId":` + jsonString(t, intruder.id) + `}`
		}, wire.CodeInvalid, `duplicate member name ("granteeId")`},
		{"a consent grant with a case-folded GranteeId is refused", wire.FnGrantConsent, patient, func() string {
			return e.header(patient, wire.ActionConsentGrant) + grantTail(researcher.id) + `,"GranteeId":` + jsonString(t, intruder.id) + `}`
		}, wire.CodeInvalid, `member name differs from a field name in case ("granteeId")`},
		{"a consent grant with an escaped second granteeId is refused", wire.FnGrantConsent, patient, func() string {
			return e.header(patient, wire.ActionConsentGrant) + grantTail(researcher.id) + `,"\u0067ranteeId":` + jsonString(t, intruder.id) + `}`
		}, wire.CodeInvalid, `duplicate member name ("granteeId")`},
		{"a consent grant with a second actorId is refused", wire.FnGrantConsent, patient, func() string {
			return e.header(patient, wire.ActionConsentGrant) + grantTail(researcher.id) + `,"actorId":"someone-else"}`
		}, wire.CodeInvalid, `duplicate member name ("actorId")`},
		{"a consent grant with an unknown member is refused", wire.FnGrantConsent, patient, func() string {
			return e.header(patient, wire.ActionConsentGrant) + grantTail(researcher.id) + `,"granteeIds":["x"]}`
		}, wire.CodeInvalid, "unknown member"},
		{"a consent grant with a lone surrogate is refused", wire.FnGrantConsent, patient, func() string {
			return strings.Replace(e.header(patient, wire.ActionConsentGrant)+grantTail(researcher.id)+`}`, `"spo2"`, `"spo2\ud800"`, 1)
		}, wire.CodeInvalid, "invalid UTF-8"},
		{"a consent grant with invalid UTF-8 is refused", wire.FnGrantConsent, patient, func() string {
			return strings.Replace(e.header(patient, wire.ActionConsentGrant)+grantTail(researcher.id)+`}`, `"spo2"`, "\"spo2\xff\"", 1)
		}, wire.CodeInvalid, "invalid UTF-8"},
		{"a consent grant with trailing data is refused", wire.FnGrantConsent, patient, func() string {
			return e.header(patient, wire.ActionConsentGrant) + grantTail(researcher.id) + `}{}`
		}, wire.CodeInvalid, "data after the JSON value"},
		{"a device registration with a second patientId is refused", wire.FnRegisterDevice, op, func() string {
			return e.header(op, wire.ActionDeviceRegister) + `,"deviceId":"dev-strict","patientId":` + jsonString(t, patient.id) +
				`,"deviceType":"pulse-oximeter","publicKey":` + devPEM + `,"patientId":"someone-else"}`
		}, wire.CodeInvalid, `duplicate member name ("patientId")`},
		{"a device registration with a Kelvin-sign publicKey is refused", wire.FnRegisterDevice, op, func() string {
			return e.header(op, wire.ActionDeviceRegister) + `,"deviceId":"dev-strict","patientId":` + jsonString(t, patient.id) +
				`,"deviceType":"pulse-oximeter","public` + "\u212a" + `ey":` + devPEM + `}`
		}, wire.CodeInvalid, `member name differs from a field name in case ("publicKey")`},
		{"a device registration with a dot-only deviceId is refused", wire.FnRegisterDevice, op, func() string {
			return e.header(op, wire.ActionDeviceRegister) + `,"deviceId":"..","patientId":` + jsonString(t, patient.id) +
				`,"deviceType":"pulse-oximeter","publicKey":` + devPEM + `}`
		}, wire.CodeInvalid, "deviceId must match"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.submit(tt.fn, e.signRaw(tt.signer, tt.payload()))
			require.Equal(t, tt.want, refusalCode(t, err), "refusal code (err %v)", err)
			if tt.want != "" {
				assert.Contains(t, refusalMessage(t, err), tt.why)
			}
		})
	}
	var consents []wire.Consent
	e.mustEvaluate(&consents, wire.FnListConsents, patient.id)
	require.Len(t, consents, 1, "only the control grant is recorded")
	assert.Equal(t, researcher.id, consents[0].GranteeID)
	_, err := e.evaluate(wire.FnGetDevice, "dev-strict")
	assert.Equal(t, wire.CodeNotFound, refusalCode(t, err), "no refused registration wrote a device")
}

// TestStrictEnvelopes: the envelope around a signed payload is read as
// strictly as the payload, so no reader can pick another payload from it.
func TestStrictEnvelopes(t *testing.T) {
	e := newEnv(t)
	patient := e.actor(wire.RolePatient)
	researcher := e.actor(wire.RoleResearcher)
	day := 24 * time.Hour
	grant := func() (payload, signature string) {
		env := testkit.MustSign(t, patient.key, []byte(e.header(patient, wire.ActionConsentGrant)+
			`,"granteeId":`+jsonString(t, researcher.id)+`,"purpose":"cardio-study","dataTypes":["spo2"]`+
			`,"notBefore":"`+t0.Add(-day).Format(time.RFC3339)+`","notAfter":"`+t0.Add(30*day).Format(time.RFC3339)+`"}`))
		return base64.StdEncoding.EncodeToString(env.Payload), base64.StdEncoding.EncodeToString(env.Signature)
	}
	tests := []struct {
		name     string
		envelope func() string
		want     wire.Code
	}{
		{"a plain envelope is accepted (control)", func() string {
			p, s := grant()
			return `{"payload":"` + p + `","signature":"` + s + `"}`
		}, ""},
		{"an envelope with two payload members is refused", func() string {
			p, s := grant()
			other, _ := grant()
			return `{"payload":"` + p + `","signature":"` + s + `","payload":"` + other + `"}`
		}, wire.CodeInvalid},
		{"an envelope with a Payload beside payload is refused", func() string {
			p, s := grant()
			other, _ := grant()
			return `{"payload":"` + p + `","signature":"` + s + `","Payload":"` + other + `"}`
		}, wire.CodeInvalid},
		{"an envelope with an unknown member is refused", func() string {
			p, s := grant()
			return `{"payload":"` + p + `","signature":"` + s + `","note":"hi"}`
		}, wire.CodeInvalid},
		{"an envelope with trailing data is refused", func() string {
			p, s := grant()
			return `{"payload":"` + p + `","signature":"` + s + `"} {}`
		}, wire.CodeInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.submit(wire.FnGrantConsent, tt.envelope())
			require.Equal(t, tt.want, refusalCode(t, err), "refusal code (err %v)", err)
			if tt.want != "" {
				assert.Contains(t, refusalMessage(t, err), "malformed envelope")
			}
		})
	}
}

// TestStrictIDsAndTimes covers the smaller wire rules as the chaincode
// applies them: one ID grammar without dot-only ids, and a measuredAt
// window.
func TestStrictIDsAndTimes(t *testing.T) {
	e := newEnv(t)
	for _, id := range []string{".", "..", "...", "-x", "_x", ".hidden"} {
		t.Run("actor id "+id+" is refused", func(t *testing.T) {
			in := wire.ActorInput{ID: id, Role: wire.RoleResearcher, PublicKey: freshPEM(t)}
			_, err := e.submitAdmin(wire.FnRegisterActor, string(testkit.MustJSON(t, in)))
			require.Equal(t, wire.CodeInvalid, refusalCode(t, err), "refusal code (err %v)", err)
		})
	}
	t.Run("an actor registration with a duplicate id member is refused", func(t *testing.T) {
		pem := jsonString(t, freshPEM(t))
		_, err := e.submitAdmin(wire.FnRegisterActor, `{"id":"res-a","role":"researcher","publicKey":`+pem+`,"id":"res-b"}`)
		require.Equal(t, wire.CodeInvalid, refusalCode(t, err), "refusal code (err %v)", err)
	})

	op := e.actor(wire.RoleOperator)
	patient := e.actor(wire.RolePatient)
	dev := e.device(op, patient)
	tests := []struct {
		name       string
		measuredAt time.Time
		wantStatus string
		wantCode   wire.Code
	}{
		{"a reading measured in year 0001 is rejected", time.Date(1, time.January, 1, 0, 0, 0, 0, time.UTC), wire.StatusRejected, wire.CodeInvalid},
		{"a reading measured at the Unix epoch is rejected", time.Unix(0, 0).UTC(), wire.StatusRejected, wire.CodeInvalid},
		{"a reading measured on 2000-01-01 is recorded", time.Date(2000, time.January, 1, 0, 0, 0, 0, time.UTC), wire.StatusRecorded, ""},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, _ := e.record(reading(t, dev, uint64(i+1), "spo2", tt.measuredAt))
			require.Len(t, res.Results, 1)
			assert.Equal(t, tt.wantStatus, res.Results[0].Status)
			assert.Equal(t, tt.wantCode, res.Results[0].Code)
		})
	}
	t.Run("a batch whose item repeats a member is refused whole", func(t *testing.T) {
		item := string(testkit.MustJSON(t, reading(t, dev, 10, "spo2", t0)))
		item = strings.TrimSuffix(item, "}") + `,"seq":11}`
		_, err := e.submit(wire.FnRecordReadings, `{"readings":[`+item+`]}`)
		require.Equal(t, wire.CodeInvalid, refusalCode(t, err), "refusal code (err %v)", err)
	})
}
