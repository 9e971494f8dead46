package chaincode_test

import (
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/medprov/medprov/internal/testkit"
	"github.com/medprov/medprov/wire"
)

func TestRequestAccess(t *testing.T) {
	e := newEnv(t)
	op := e.actor("operator")
	patient := e.actor("patient")
	dev := e.device(op, patient)
	day := 24 * time.Hour

	// Readings: spo2 in February and on 10 March, heart-rate on 10 March.
	items := []wire.ReadingInput{
		reading(t, dev, 1, "spo2", t0.Add(-20*day)),
		reading(t, dev, 2, "spo2", t0.Add(-3*time.Hour)),
		reading(t, dev, 3, "heart-rate", t0.Add(-150*time.Minute)),
		reading(t, dev, 4, "spo2", t0.Add(-2*time.Hour)),
		reading(t, dev, 5, "spo2", t0.Add(-1*time.Hour)),
		reading(t, dev, 6, "temperature", t0.Add(-1*time.Hour)),
	}
	res, _ := e.record(items...)
	require.Equal(t, len(items), res.Recorded, "setup readings recorded: %+v", res.Results)
	rid := func(seq uint64) string { return dev.id + ":" + strconv.FormatUint(seq, 10) }

	type consent struct {
		purpose string
		types   []string
		nb, na  time.Time
		revoke  bool
	}
	base := consent{"cardio-study", []string{"spo2", "heart-rate"}, t0.Add(-30 * day), t0.Add(30 * day), false}
	request := action{
		"patientId": patient.id, "purpose": "cardio-study", "dataTypes": []string{"spo2", "heart-rate"},
		"from": t0.Add(-25 * day).Format(time.RFC3339), "to": t0.Format(time.RFC3339),
	}
	with := func(a action, over action) action {
		out := action{}
		for k, v := range a {
			out[k] = v
		}
		for k, v := range over {
			out[k] = v
		}
		return out
	}
	tests := []struct {
		name     string
		consents []consent
		at       time.Time // request time; zero = t0
		req      action
		reason   string // "" = granted
		ids      []string
	}{
		{"matching consent grants the readings in order", []consent{base}, time.Time{}, request, "",
			[]string{rid(3), rid(1), rid(2), rid(4), rid(5)}},
		{"time range narrows the grant", []consent{base}, time.Time{},
			with(request, action{"dataTypes": []string{"spo2"}, "from": t0.Add(-150 * time.Minute).Format(time.RFC3339)}), "",
			[]string{rid(4), rid(5)}},
		{"no consent is denied", nil, time.Time{}, request, wire.ReasonNoConsent, nil},
		{"consent not yet valid is denied", []consent{{base.purpose, base.types, t0.Add(day), t0.Add(30 * day), false}}, time.Time{},
			request, wire.ReasonConsentNotYetValid, nil},
		{"expired consent is denied", []consent{{base.purpose, base.types, t0.Add(-30 * day), t0.Add(time.Hour), false}}, t0.Add(2 * time.Hour),
			request, wire.ReasonConsentExpired, nil},
		{"revoked consent is denied", []consent{{base.purpose, base.types, base.nb, base.na, true}}, time.Time{},
			request, wire.ReasonConsentRevoked, nil},
		{"wrong purpose is denied", []consent{base}, time.Time{},
			with(request, action{"purpose": "marketing"}), wire.ReasonPurposeMismatch, nil},
		{"wrong data type is denied", []consent{base}, time.Time{},
			with(request, action{"dataTypes": []string{"spo2", "temperature"}}), wire.ReasonDataTypeNotConsented, nil},
		{"range outside the consent window is denied", []consent{base}, time.Time{},
			with(request, action{"from": t0.Add(-40 * day).Format(time.RFC3339)}), wire.ReasonRangeOutsideConsent, nil},
		{"most specific reason among consents is reported", []consent{
			{"other-study", base.types, base.nb, base.na, false},
			{base.purpose, base.types, base.nb, base.na, true},
		}, time.Time{}, request, wire.ReasonConsentRevoked, nil},
		{"one valid consent among failing ones grants", []consent{
			{base.purpose, base.types, base.nb, base.na, true}, base,
		}, time.Time{}, request, "", []string{rid(3), rid(1), rid(2), rid(4), rid(5)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.clock.Set(t0)
			defer e.clock.Set(t0)
			researcher := e.actor("researcher")
			for _, c := range tt.consents {
				cn := e.grant(patient, researcher, c.purpose, c.types, c.nb, c.na)
				if c.revoke {
					e.mustSubmit(nil, wire.FnRevokeConsent, e.sign(patient, wire.ActionConsentRevoke, action{"consentId": cn.ID}))
				}
			}
			if !tt.at.IsZero() {
				e.clock.Set(tt.at)
			}
			var got wire.AccessEvent
			commit := e.mustSubmit(&got, wire.FnRequestAccess, e.sign(researcher, wire.ActionAccessRequest, tt.req))

			wantDecision := wire.DecisionGranted
			if tt.reason != "" {
				wantDecision = wire.DecisionDenied
			}
			require.Equal(t, [2]string{wantDecision, tt.reason}, [2]string{got.Decision, got.Reason}, "decision and reason")
			assert.Equal(t, tt.ids, got.ReadingIDs, "readingIds")
			assert.Equal(t, len(tt.ids), got.Count, "count")
			assert.Equal(t, "acc-"+commit.TxID[:24], got.ID, "access event id names its transaction")
			assert.Equal(t, commit.TxID, got.TxID, "access event txId")
			assert.Equal(t, researcher.id, got.ActorID, "access event actor")

			// The decision is committed either way.
			var stored wire.AccessEvent
			e.mustEvaluate(&stored, wire.FnGetAccessEvent, got.ID)
			assert.Equal(t, got.Decision, stored.Decision, "stored decision")
			assert.Equal(t, got.Reason, stored.Reason, "stored reason")
			assert.Equal(t, got.ReadingIDs, stored.ReadingIDs, "stored readingIds")
			var log wire.AccessEventPage
			e.mustEvaluate(&log, wire.FnGetAccessLog, patient.id, "1000", "")
			assert.True(t, slices.ContainsFunc(log.Items, func(a wire.AccessEvent) bool { return a.ID == got.ID }), "access log lacks %s", got.ID)
			var audit wire.AuditEventPage
			e.mustEvaluate(&audit, wire.FnListEvents, string(testkit.MustJSON(t, wire.EventFilter{PatientID: patient.id, ActorID: researcher.id})), "", "")
			wantType := "access." + wantDecision
			if assert.Equal(t, 1, audit.Count, "audit events of the researcher: %+v", audit.Items) {
				ev := audit.Items[0]
				assert.Equal(t, [3]string{wantType, got.ID, wantDecision}, [3]string{ev.Type, ev.SubjectID, ev.Decision}, "audit event type, subject and decision")
			}
		})
	}

	t.Run("granted readings are paged with a cursor", func(t *testing.T) {
		researcher := e.actor("researcher")
		e.grant(patient, researcher, base.purpose, base.types, base.nb, base.na)
		var all []string
		cursor := ""
		for page := 0; page < 5; page++ {
			req := with(request, action{"limit": 2})
			if cursor != "" {
				req["cursor"] = cursor
			}
			var got wire.AccessEvent
			e.mustSubmit(&got, wire.FnRequestAccess, e.sign(researcher, wire.ActionAccessRequest, req))
			all = append(all, got.ReadingIDs...)
			cursor = got.NextCursor
			if cursor == "" {
				break
			}
			require.Equal(t, 2, got.Count, "ids on page %d, which has a cursor", page)
		}
		assert.Equal(t, []string{rid(3), rid(1), rid(2), rid(4), rid(5)}, all, "paged ids")
	})

	t.Run("refused requests write nothing", func(t *testing.T) {
		researcher := e.actor("researcher")
		var before wire.AccessEventPage
		e.mustEvaluate(&before, wire.FnGetAccessLog, patient.id, "1000", "")
		replayed := e.sign(researcher, wire.ActionAccessRequest, request)
		e.mustSubmit(nil, wire.FnRequestAccess, replayed)
		cases := []struct {
			name string
			env  string
			want wire.Code
		}{
			{"replayed nonce", replayed, wire.CodeConflict},
			{"stale issuedAt", e.sign(researcher, wire.ActionAccessRequest, with(request, action{"issuedAt": t0.Add(-10 * time.Minute).Format(time.RFC3339)})), wire.CodeUnauthenticated},
			{"forged signature", e.sign(&principal{id: researcher.id, key: testkit.MustKey(t)}, wire.ActionAccessRequest, request), wire.CodeUnauthenticated},
			{"from after to", e.sign(researcher, wire.ActionAccessRequest, with(request, action{"from": t0.Format(time.RFC3339), "to": t0.Add(-time.Hour).Format(time.RFC3339)})), wire.CodeInvalid},
			{"limit too large", e.sign(researcher, wire.ActionAccessRequest, with(request, action{"limit": 1001})), wire.CodeInvalid},
			{"a patient cannot request another patient's data", e.sign(e.actor("patient"), wire.ActionAccessRequest, request), wire.CodeForbidden},
			{"an operator cannot request access", e.sign(op, wire.ActionAccessRequest, request), wire.CodeForbidden},
			{"a researcher cannot name itself as the patient", e.sign(researcher, wire.ActionAccessRequest, with(request, action{"patientId": researcher.id})), wire.CodeInvalid},
		}
		for _, c := range cases {
			_, err := e.submit(wire.FnRequestAccess, c.env)
			assert.Equal(t, c.want, refusalCode(t, err), "%s: refusal code", c.name)
		}
		var after wire.AccessEventPage
		e.mustEvaluate(&after, wire.FnGetAccessLog, patient.id, "1000", "")
		assert.Equal(t, before.Count+1, after.Count, "access log size: want only the first request logged")
	})
}

func TestRequestAccessSelf(t *testing.T) {
	e := newEnv(t)
	e.clock.Step(time.Millisecond) // audit events order by transaction time
	op := e.actor("operator")
	patient := e.actor("patient")
	other := e.actor("patient")
	dev := e.device(op, patient)
	otherDev := e.device(op, other)
	res, _ := e.record(
		reading(t, dev, 1, "spo2", t0.Add(-3*time.Hour)),
		reading(t, dev, 2, "heart-rate", t0.Add(-2*time.Hour)),
		reading(t, dev, 3, "spo2", t0.Add(-1*time.Hour)),
		reading(t, otherDev, 1, "spo2", t0.Add(-1*time.Hour)),
	)
	require.Equal(t, 4, res.Recorded, "setup readings recorded: %+v", res.Results)
	request := func(patientID string, over action) action {
		a := action{
			"patientId": patientID, "purpose": "self-review", "dataTypes": []string{"spo2"},
			"from": t0.Add(-24 * time.Hour).Format(time.RFC3339), "to": t0.Add(time.Hour).Format(time.RFC3339),
		}
		for k, v := range over {
			a[k] = v
		}
		return a
	}
	accessLog := func(patientID string) []wire.AccessEvent {
		var log wire.AccessEventPage
		e.mustEvaluate(&log, wire.FnGetAccessLog, patientID, "1000", "")
		return log.Items
	}

	t.Run("a patient is granted its own readings without a consent", func(t *testing.T) {
		var got wire.AccessEvent
		commit := e.mustSubmit(&got, wire.FnRequestAccess, e.sign(patient, wire.ActionAccessRequest, request(patient.id, nil)))
		require.Equal(t, wire.DecisionGranted, got.Decision, "decision (reason %q)", got.Reason)
		assert.Equal(t, []string{dev.id + ":1", dev.id + ":3"}, got.ReadingIDs, "readingIds: the patient's spo2 readings in order")
		assert.Equal(t, 2, got.Count, "count")
		assert.Empty(t, got.ConsentID, "consentId of a self-access")
		assert.Empty(t, got.Reason, "reason of a grant")
		assert.Equal(t, [3]string{patient.id, patient.id, "self-review"}, [3]string{got.ActorID, got.PatientID, got.Purpose}, "actor, patient and purpose")
		assert.True(t, got.SelfAccess(), "the event is a self-access")
		assert.Equal(t, "acc-"+commit.TxID[:24], got.ID, "access event id names its transaction")

		assert.True(t, slices.ContainsFunc(accessLog(patient.id), func(a wire.AccessEvent) bool { return a.ID == got.ID }),
			"the patient's access log has the self-access")
		var audit wire.AuditEventPage
		e.mustEvaluate(&audit, wire.FnListEvents, string(testkit.MustJSON(t, wire.EventFilter{ActorID: patient.id, Type: wire.AuditAccessGranted})), "", "")
		if assert.Equal(t, 1, audit.Count, "access.granted audit events of the patient: %+v", audit.Items) {
			ev := audit.Items[0]
			assert.Equal(t, [3]string{got.ID, wire.DecisionGranted, patient.id}, [3]string{ev.SubjectID, ev.Decision, ev.PatientIDs[0]}, "audit subject, decision and patient")
		}
		var pv wire.Provenance
		e.mustEvaluate(&pv, wire.FnGetProvenance, dev.id+":1")
		assert.True(t, slices.ContainsFunc(pv.Accesses, func(a wire.AccessEvent) bool { return a.ID == got.ID }),
			"the reading's provenance lists the self-access that released it")
	})

	t.Run("a self-access pages with a cursor like a researcher's grant", func(t *testing.T) {
		var first, second wire.AccessEvent
		e.mustSubmit(&first, wire.FnRequestAccess, e.sign(patient, wire.ActionAccessRequest, request(patient.id, action{"limit": 1})))
		require.NotEmpty(t, first.NextCursor, "the first page has a cursor")
		e.mustSubmit(&second, wire.FnRequestAccess, e.sign(patient, wire.ActionAccessRequest, request(patient.id, action{"limit": 1, "cursor": first.NextCursor})))
		assert.Equal(t, []string{dev.id + ":1", dev.id + ":3"}, append(first.ReadingIDs, second.ReadingIDs...), "paged ids")
		assert.Empty(t, second.NextCursor, "the last page has no cursor")
	})

	t.Run("refused self-access requests write nothing", func(t *testing.T) {
		before, beforeOther := len(accessLog(patient.id)), len(accessLog(other.id))
		tests := []struct {
			name string
			env  string
			want wire.Code
		}{
			{"a patient asking for another patient's readings is forbidden", e.sign(patient, wire.ActionAccessRequest, request(other.id, nil)), wire.CodeForbidden},
			{"a malformed purpose is invalid", e.sign(patient, wire.ActionAccessRequest, request(patient.id, action{"purpose": "Self Review"})), wire.CodeInvalid},
			{"a cursor of another patient is invalid", e.sign(patient, wire.ActionAccessRequest, request(patient.id, action{"cursor": "AGEA"})), wire.CodeInvalid},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				_, err := e.submit(wire.FnRequestAccess, tt.env)
				assert.Equal(t, tt.want, refusalCode(t, err), "refusal code")
			})
		}
		assert.Len(t, accessLog(patient.id), before, "the patient's access log is unchanged")
		assert.Len(t, accessLog(other.id), beforeOther, "the other patient's access log is unchanged")
	})

	t.Run("an erased patient's own request is denied and logged", func(t *testing.T) {
		_, err := e.submit(wire.FnErasePatient, e.sign(patient, wire.ActionPatientErase, action{"reason": "gdpr-request"}))
		require.NoError(t, err, "erase")
		var got wire.AccessEvent
		e.mustSubmit(&got, wire.FnRequestAccess, e.sign(patient, wire.ActionAccessRequest, request(patient.id, nil)))
		assert.Equal(t, [2]string{wire.DecisionDenied, wire.ReasonPatientErased}, [2]string{got.Decision, got.Reason}, "decision and reason")
		assert.Empty(t, got.ReadingIDs, "nothing released")
		assert.True(t, slices.ContainsFunc(accessLog(patient.id), func(a wire.AccessEvent) bool { return a.ID == got.ID }),
			"the denial is in the patient's access log")
	})
}
