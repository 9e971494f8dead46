package chaincode_test

import (
	"slices"
	"testing"
	"time"

	"github.com/medprov/medprov/wire"
)

func TestQueries(t *testing.T) {
	e := newEnv(t)
	e.clock.Step(time.Millisecond) // audit events order by transaction time
	op := e.actor("operator")
	patient := e.actor("patient")
	other := e.actor("patient")
	researcher := e.actor("researcher")
	dev := e.device(op, patient)
	otherDev := e.device(op, other)
	day := 24 * time.Hour

	// Seven spo2 readings over three months and two heart-rate readings,
	// recorded out of time order; one reading of another patient.
	var items []wire.ReadingInput
	offsets := []time.Duration{-5 * day, -40 * day, -1 * day, -70 * day, -2 * day, -39 * day, -3 * day}
	for i, off := range offsets {
		items = append(items, reading(t, dev, uint64(i+1), "spo2", t0.Add(off)))
	}
	items = append(items, reading(t, dev, 8, "heart-rate", t0.Add(-day)), reading(t, dev, 9, "heart-rate", t0.Add(-60*day)))
	items = append(items, reading(t, otherDev, 1, "spo2", t0.Add(-day)))
	res, batch := e.record(items...)
	if res.Recorded != len(items) {
		t.Fatalf("setup recorded %d of %d", res.Recorded, len(items))
	}
	spo2ByTime := []string{dev.id + ":4", dev.id + ":2", dev.id + ":6", dev.id + ":1", dev.id + ":7", dev.id + ":5", dev.id + ":3"}
	all := append([]string{dev.id + ":9", dev.id + ":8"}, spo2ByTime...)

	listAll := func(t *testing.T, typ, from, to, size string) []string {
		t.Helper()
		var ids []string
		bookmark := ""
		for range 20 {
			var page wire.ReadingPage
			e.mustEvaluate(&page, "ListReadings", patient.id, typ, from, to, size, bookmark)
			if page.Count != len(page.Items) {
				t.Fatalf("count %d for %d items", page.Count, len(page.Items))
			}
			for _, r := range page.Items {
				ids = append(ids, r.ID)
			}
			if page.Bookmark == "" {
				return ids
			}
			bookmark = page.Bookmark
		}
		t.Fatal("paging did not end")
		return nil
	}
	readingTests := []struct {
		name, typ, from, to, size string
		want                      []string
	}{
		{"all readings of a patient by type then time", "", "", "", "", all},
		{"one type in time order", "spo2", "", "", "", spo2ByTime},
		{"pages of two return the same order", "spo2", "", "", "2", spo2ByTime},
		{"time range spanning months", "spo2", t0.Add(-41 * day).Format(time.RFC3339), t0.Add(-2 * day).Format(time.RFC3339), "3", spo2ByTime[1:6]},
		{"empty range returns nothing", "spo2", t0.Add(day).Format(time.RFC3339), "", "", nil},
	}
	for _, tt := range readingTests {
		t.Run(tt.name, func(t *testing.T) {
			if got := listAll(t, tt.typ, tt.from, tt.to, tt.size); !slices.Equal(got, tt.want) {
				t.Errorf("ids %v, want %v", got, tt.want)
			}
		})
	}
	t.Run("bookmark of another patient is refused", func(t *testing.T) {
		var page wire.ReadingPage
		e.mustEvaluate(&page, "ListReadings", patient.id, "spo2", "", "", "1", "")
		_, err := e.evaluate("ListReadings", other.id, "spo2", "", "", "1", page.Bookmark)
		if got := refusalCode(t, err); got != wire.CodeInvalid {
			t.Errorf("code = %q, want invalid", got)
		}
	})
	t.Run("page size out of range is refused", func(t *testing.T) {
		_, err := e.evaluate("ListReadings", patient.id, "", "", "", "1001", "")
		if got := refusalCode(t, err); got != wire.CodeInvalid {
			t.Errorf("code = %q, want invalid", got)
		}
	})

	// A consent, a grant and a later revocation, a month after the batch.
	cn := e.grant(patient, researcher, "cardio-study", []string{"spo2"}, t0.Add(-90*day), t0.Add(90*day))
	var acc wire.AccessEvent
	e.mustSubmit(&acc, "RequestAccess", e.sign(researcher, wire.ActionAccessRequest, action{
		"patientId": patient.id, "purpose": "cardio-study", "dataTypes": []string{"spo2"},
		"from": t0.Add(-80 * day).Format(time.RFC3339), "to": t0.Format(time.RFC3339),
	}))
	if acc.Decision != wire.DecisionGranted || acc.Count != len(spo2ByTime) {
		t.Fatalf("access %+v, want granted with %d readings", acc, len(spo2ByTime))
	}
	e.clock.Set(t0.Add(31 * day))
	defer e.clock.Set(t0)
	e.mustSubmit(nil, "RevokeConsent", e.sign(patient, wire.ActionConsentRevoke, action{"consentId": cn.ID}))

	t.Run("provenance links device, consent and access", func(t *testing.T) {
		var p wire.Provenance
		e.mustEvaluate(&p, "GetProvenance", dev.id+":1")
		if p.Reading.ID != dev.id+":1" || p.Reading.TxID != batch.TxID || p.Device.ID != dev.id {
			t.Errorf("provenance reading %+v device %+v", p.Reading, p.Device)
		}
		if len(p.Consents) != 1 || p.Consents[0].ID != cn.ID || p.Consents[0].Status != "revoked" {
			t.Errorf("consents %+v, want the revoked %s", p.Consents, cn.ID)
		}
		if len(p.Accesses) != 1 || p.Accesses[0].ID != acc.ID {
			t.Errorf("accesses %+v, want %s", p.Accesses, acc.ID)
		}
	})
	t.Run("provenance of a type without consent lists none", func(t *testing.T) {
		var p wire.Provenance
		e.mustEvaluate(&p, "GetProvenance", dev.id+":8")
		if len(p.Consents) != 0 || len(p.Accesses) != 0 {
			t.Errorf("consents %+v accesses %+v, want none", p.Consents, p.Accesses)
		}
	})

	types := func(evs []wire.AuditEvent) []string {
		var out []string
		for _, ev := range evs {
			out = append(out, ev.Type)
		}
		return out
	}
	eventTests := []struct {
		name   string
		filter wire.EventFilter
		want   []string
	}{
		{"events of a patient in time order", wire.EventFilter{PatientID: patient.id},
			[]string{"actor.registered", "device.registered", "readings.recorded", "consent.granted", "access.granted", "consent.revoked"}},
		{"events of an actor", wire.EventFilter{ActorID: researcher.id}, []string{"access.granted"}},
		{"events of a type", wire.EventFilter{Type: "actor.registered"},
			[]string{"actor.registered", "actor.registered", "actor.registered", "actor.registered"}},
		{"events of a patient and type", wire.EventFilter{PatientID: other.id, Type: "readings.recorded"}, []string{"readings.recorded"}},
		{"events in a time window", wire.EventFilter{From: t0.Add(day).Format(time.RFC3339)}, []string{"consent.revoked"}},
		{"events before a time", wire.EventFilter{PatientID: patient.id, To: t0.Add(day).Format(time.RFC3339)},
			[]string{"actor.registered", "device.registered", "readings.recorded", "consent.granted", "access.granted"}},
	}
	for _, tt := range eventTests {
		t.Run(tt.name, func(t *testing.T) {
			var got []wire.AuditEvent
			bookmark := ""
			for range 20 {
				var page wire.AuditEventPage
				e.mustEvaluate(&page, "ListEvents", mustJSON(t, tt.filter), "2", bookmark)
				got = append(got, page.Items...)
				if bookmark = page.Bookmark; bookmark == "" {
					break
				}
			}
			if !slices.Equal(types(got), tt.want) {
				t.Errorf("types %v, want %v", types(got), tt.want)
			}
			for i := 1; i < len(got); i++ {
				if got[i].TxTime < got[i-1].TxTime {
					t.Errorf("events out of time order: %s after %s", got[i].TxTime, got[i-1].TxTime)
				}
			}
		})
	}
	t.Run("batch audit event names the org and every patient", func(t *testing.T) {
		var page wire.AuditEventPage
		e.mustEvaluate(&page, "ListEvents", mustJSON(t, wire.EventFilter{Type: "readings.recorded"}), "", "")
		if page.Count != 1 {
			t.Fatalf("got %d batch events, want 1", page.Count)
		}
		ev := page.Items[0]
		want := []string{other.id, patient.id}
		slices.Sort(want)
		if ev.ActorID != "org:HospitalMSP" || !slices.Equal(ev.PatientIDs, want) || ev.ID != batch.TxID {
			t.Errorf("batch audit %+v, want org actor and patients %v", ev, want)
		}
	})
	t.Run("malformed filter is refused", func(t *testing.T) {
		_, err := e.evaluate("ListEvents", `{"patient":"x"}`, "", "")
		if got := refusalCode(t, err); got != wire.CodeInvalid {
			t.Errorf("code = %q, want invalid", got)
		}
	})
}

func TestParseError(t *testing.T) {
	tests := []struct {
		name string
		msg  string
		want *wire.Error
	}{
		{"bare refusal", "[medprov:forbidden] device revoked", &wire.Error{Code: wire.CodeForbidden, Message: "device revoked"}},
		{"refusal wrapped by Fabric", "chaincode response 500, [medprov:conflict] replayed nonce", &wire.Error{Code: wire.CodeConflict, Message: "replayed nonce"}},
		{"unknown code is skipped for a later marker", "[medprov:teapot] x [medprov:not_found] actor a not found", &wire.Error{Code: wire.CodeNotFound, Message: "actor a not found"}},
		{"message without marker", "chaincode response 500, boom", nil},
		{"unterminated marker", "[medprov:invalid", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := wire.ParseError(tt.msg)
			if (tt.want == nil) != !ok {
				t.Fatalf("ok = %v, want %v", ok, tt.want != nil)
			}
			if tt.want != nil && *got != *tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
	t.Run("Error and ParseError round-trip", func(t *testing.T) {
		e := &wire.Error{Code: wire.CodeUnauthenticated, Message: "bad signature"}
		got, ok := wire.ParseError("wrapped: " + e.Error())
		if !ok || *got != *e || e.Status() != 401 {
			t.Errorf("round trip %+v %v, status %d", got, ok, e.Status())
		}
	})
}
