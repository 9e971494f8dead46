package chaincode_test

import (
	"slices"
	"strconv"
	"testing"
	"time"

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
	if res, _ := e.record(items...); res.Recorded != len(items) {
		t.Fatalf("setup recorded %d of %d: %+v", res.Recorded, len(items), res.Results)
	}
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
					e.mustSubmit(nil, "RevokeConsent", e.sign(patient, wire.ActionConsentRevoke, action{"consentId": cn.ID}))
				}
			}
			if !tt.at.IsZero() {
				e.clock.Set(tt.at)
			}
			var got wire.AccessEvent
			commit := e.mustSubmit(&got, "RequestAccess", e.sign(researcher, wire.ActionAccessRequest, tt.req))

			wantDecision := wire.DecisionGranted
			if tt.reason != "" {
				wantDecision = wire.DecisionDenied
			}
			if got.Decision != wantDecision || got.Reason != tt.reason {
				t.Fatalf("decision %s (%s), want %s (%s)", got.Decision, got.Reason, wantDecision, tt.reason)
			}
			if !slices.Equal(got.ReadingIDs, tt.ids) || got.Count != len(tt.ids) {
				t.Errorf("readingIds %v (count %d), want %v", got.ReadingIDs, got.Count, tt.ids)
			}
			if got.ID != "acc-"+commit.TxID[:24] || got.TxID != commit.TxID || got.ActorID != researcher.id {
				t.Errorf("access event %+v does not name its transaction and researcher", got)
			}

			// The decision is committed either way.
			var stored wire.AccessEvent
			e.mustEvaluate(&stored, "GetAccessEvent", got.ID)
			if stored.Decision != got.Decision || stored.Reason != got.Reason || !slices.Equal(stored.ReadingIDs, got.ReadingIDs) {
				t.Errorf("stored %+v, returned %+v", stored, got)
			}
			var log wire.AccessEventPage
			e.mustEvaluate(&log, "GetAccessLog", patient.id, "1000", "")
			if !slices.ContainsFunc(log.Items, func(a wire.AccessEvent) bool { return a.ID == got.ID }) {
				t.Errorf("access log lacks %s", got.ID)
			}
			var audit wire.AuditEventPage
			e.mustEvaluate(&audit, "ListEvents", mustJSON(t, wire.EventFilter{PatientID: patient.id, ActorID: researcher.id}), "", "")
			wantType := "access." + wantDecision
			if audit.Count != 1 || audit.Items[0].Type != wantType || audit.Items[0].SubjectID != got.ID || audit.Items[0].Decision != wantDecision {
				t.Errorf("audit events of the researcher = %+v, want one %s of %s", audit.Items, wantType, got.ID)
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
			e.mustSubmit(&got, "RequestAccess", e.sign(researcher, wire.ActionAccessRequest, req))
			all = append(all, got.ReadingIDs...)
			cursor = got.NextCursor
			if cursor == "" {
				break
			}
			if got.Count != 2 {
				t.Fatalf("page %d has %d ids and a cursor, want 2", page, got.Count)
			}
		}
		if want := []string{rid(3), rid(1), rid(2), rid(4), rid(5)}; !slices.Equal(all, want) {
			t.Errorf("paged ids %v, want %v", all, want)
		}
	})

	t.Run("refused requests write nothing", func(t *testing.T) {
		researcher := e.actor("researcher")
		var before wire.AccessEventPage
		e.mustEvaluate(&before, "GetAccessLog", patient.id, "1000", "")
		replayed := e.sign(researcher, wire.ActionAccessRequest, request)
		e.mustSubmit(nil, "RequestAccess", replayed)
		cases := []struct {
			name string
			env  string
			want wire.Code
		}{
			{"replayed nonce", replayed, wire.CodeConflict},
			{"stale issuedAt", e.sign(researcher, wire.ActionAccessRequest, with(request, action{"issuedAt": t0.Add(-10 * time.Minute).Format(time.RFC3339)})), wire.CodeUnauthenticated},
			{"forged signature", e.sign(&principal{id: researcher.id, key: mustKey(t)}, wire.ActionAccessRequest, request), wire.CodeUnauthenticated},
			{"from after to", e.sign(researcher, wire.ActionAccessRequest, with(request, action{"from": t0.Format(time.RFC3339), "to": t0.Add(-time.Hour).Format(time.RFC3339)})), wire.CodeInvalid},
			{"limit too large", e.sign(researcher, wire.ActionAccessRequest, with(request, action{"limit": 1001})), wire.CodeInvalid},
			{"patient cannot request access", e.sign(patient, wire.ActionAccessRequest, request), wire.CodeForbidden},
		}
		for _, c := range cases {
			_, err := e.submit("RequestAccess", c.env)
			if got := refusalCode(t, err); got != c.want {
				t.Errorf("%s: code = %q, want %q", c.name, got, c.want)
			}
		}
		var after wire.AccessEventPage
		e.mustEvaluate(&after, "GetAccessLog", patient.id, "1000", "")
		if after.Count != before.Count+1 {
			t.Errorf("access log grew from %d to %d, want only the first request logged", before.Count, after.Count)
		}
	})
}
