package chaincode_test

import (
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/medprov/medprov/internal/testkit"
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
	require.Equal(t, len(items), res.Recorded, "setup readings recorded")
	spo2ByTime := []string{dev.id + ":4", dev.id + ":2", dev.id + ":6", dev.id + ":1", dev.id + ":7", dev.id + ":5", dev.id + ":3"}
	all := append([]string{dev.id + ":9", dev.id + ":8"}, spo2ByTime...)

	listAll := func(t *testing.T, typ, from, to, size string) []string {
		t.Helper()
		var ids []string
		bookmark := ""
		for range 20 {
			var page wire.ReadingPage
			e.mustEvaluate(&page, wire.FnListReadings, patient.id, typ, from, to, size, bookmark)
			require.Len(t, page.Items, page.Count, "items of a page and its count")
			for _, r := range page.Items {
				ids = append(ids, r.ID)
			}
			if page.Bookmark == "" {
				return ids
			}
			bookmark = page.Bookmark
		}
		require.Fail(t, "paging did not end")
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
			assert.Equal(t, tt.want, listAll(t, tt.typ, tt.from, tt.to, tt.size), "ids")
		})
	}
	t.Run("bookmark of another patient is refused", func(t *testing.T) {
		var page wire.ReadingPage
		e.mustEvaluate(&page, wire.FnListReadings, patient.id, "spo2", "", "", "1", "")
		_, err := e.evaluate(wire.FnListReadings, other.id, "spo2", "", "", "1", page.Bookmark)
		assert.Equal(t, wire.CodeInvalid, refusalCode(t, err))
	})
	t.Run("page size out of range is refused", func(t *testing.T) {
		_, err := e.evaluate(wire.FnListReadings, patient.id, "", "", "", "1001", "")
		assert.Equal(t, wire.CodeInvalid, refusalCode(t, err))
	})

	// A consent, a grant and a later revocation, a month after the batch.
	cn := e.grant(patient, researcher, "cardio-study", []string{"spo2"}, t0.Add(-90*day), t0.Add(90*day))
	var acc wire.AccessEvent
	e.mustSubmit(&acc, wire.FnRequestAccess, e.sign(researcher, wire.ActionAccessRequest, action{
		"patientId": patient.id, "purpose": "cardio-study", "dataTypes": []string{"spo2"},
		"from": t0.Add(-80 * day).Format(time.RFC3339), "to": t0.Format(time.RFC3339),
	}))
	require.Equal(t, wire.DecisionGranted, acc.Decision, "access decision (%+v)", acc)
	require.Equal(t, len(spo2ByTime), acc.Count, "readings granted")
	e.clock.Set(t0.Add(31 * day))
	defer e.clock.Set(t0)
	e.mustSubmit(nil, wire.FnRevokeConsent, e.sign(patient, wire.ActionConsentRevoke, action{"consentId": cn.ID}))

	t.Run("provenance links device, consent and access", func(t *testing.T) {
		var p wire.Provenance
		e.mustEvaluate(&p, wire.FnGetProvenance, dev.id+":1")
		assert.Equal(t, [3]string{dev.id + ":1", batch.TxID, dev.id}, [3]string{p.Reading.ID, p.Reading.TxID, p.Device.ID},
			"provenance reading id and tx, device id")
		if assert.Len(t, p.Consents, 1, "consents") {
			assert.Equal(t, [2]string{cn.ID, "revoked"}, [2]string{p.Consents[0].ID, p.Consents[0].Status}, "the revoked consent")
		}
		if assert.Len(t, p.Accesses, 1, "accesses") {
			assert.Equal(t, acc.ID, p.Accesses[0].ID, "access")
		}
	})
	t.Run("provenance of a type without consent lists none", func(t *testing.T) {
		var p wire.Provenance
		e.mustEvaluate(&p, wire.FnGetProvenance, dev.id+":8")
		assert.Empty(t, p.Consents, "consents")
		assert.Empty(t, p.Accesses, "accesses")
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
				e.mustEvaluate(&page, wire.FnListEvents, string(testkit.MustJSON(t, tt.filter)), "2", bookmark)
				got = append(got, page.Items...)
				if bookmark = page.Bookmark; bookmark == "" {
					break
				}
			}
			assert.Equal(t, tt.want, types(got), "event types")
			for i := 1; i < len(got); i++ {
				assert.GreaterOrEqual(t, got[i].TxTime, got[i-1].TxTime, "events out of time order")
			}
		})
	}
	t.Run("batch audit event names the org and every patient", func(t *testing.T) {
		var page wire.AuditEventPage
		e.mustEvaluate(&page, wire.FnListEvents, string(testkit.MustJSON(t, wire.EventFilter{Type: "readings.recorded"})), "", "")
		require.Equal(t, 1, page.Count, "batch events")
		ev := page.Items[0]
		want := []string{other.id, patient.id}
		slices.Sort(want)
		assert.Equal(t, "org:HospitalMSP", ev.ActorID, "batch audit actor")
		assert.Equal(t, want, ev.PatientIDs, "batch audit patients")
		assert.Equal(t, batch.TxID, ev.ID, "batch audit id")
	})
	t.Run("malformed filter is refused", func(t *testing.T) {
		_, err := e.evaluate(wire.FnListEvents, `{"patient":"x"}`, "", "")
		assert.Equal(t, wire.CodeInvalid, refusalCode(t, err))
	})
}
