package chaincode_test

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/medprov/medprov/wire"
)

// TestRequestAccessByRead: a signed FHIR Observation read is decided as
// the access request it spells out, logged like one, and refused without a
// trace when it is not a read the ledger accepts.
func TestRequestAccessByRead(t *testing.T) {
	e := newEnv(t)
	op := e.actor("operator")
	patient := e.actor("patient")
	other := e.actor("patient")
	researcher := e.actor("researcher")
	dev := e.device(op, patient)
	day := 24 * time.Hour
	items := []wire.ReadingInput{
		reading(t, dev, 1, "spo2", t0.Add(-3*time.Hour)),
		reading(t, dev, 2, "heart_rate", t0.Add(-2*time.Hour)),
		reading(t, dev, 3, "spo2", t0.Add(-1*time.Hour)),
	}
	res, _ := e.record(items...)
	require.Equal(t, len(items), res.Recorded, "setup readings recorded")
	e.grant(patient, researcher, "study", []string{"spo2"}, t0.Add(-day), t0.Add(day))
	from, to := t0.Add(-12*time.Hour).Format(time.RFC3339), t0.Add(time.Hour).Format(time.RFC3339)
	search := func(q url.Values) string { return "/fhir/R4/Observation?" + q.Encode() }
	spo2 := url.Values{"patient": {patient.id}, "code": {"http://loinc.org|59408-5"}, "purpose": {"study"}, "date": {"ge" + from, "le" + to}}

	tests := []struct {
		name   string
		signer *principal
		path   string
		reason string   // "" = granted
		ids    []string // granted reading ids
	}{
		{"a researcher's search within its consent is granted", researcher, search(spo2), "",
			[]string{dev.id + ":1", dev.id + ":3"}},
		{"a search by LOINC of a type not consented is denied", researcher,
			search(url.Values{"patient": {patient.id}, "code": {"8867-4"}, "purpose": {"study"}, "date": {"ge" + from, "le" + to}}),
			wire.ReasonDataTypeNotConsented, nil},
		{"a search without a window is outside every consent", researcher,
			search(url.Values{"patient": {patient.id}, "code": {"59408-5"}, "purpose": {"study"}}),
			wire.ReasonRangeOutsideConsent, nil},
		{"a search for another purpose is denied", researcher,
			search(url.Values{"patient": {patient.id}, "code": {"59408-5"}, "purpose": {"marketing"}, "date": {"ge" + from, "le" + to}}),
			wire.ReasonPurposeMismatch, nil},
		{"a read by id releases exactly that reading", researcher,
			"/fhir/R4/Observation/" + items[2].DataHash + "?purpose=study", "", []string{dev.id + ":3"}},
		{"a read by id of a type not consented is denied", researcher,
			"/fhir/R4/Observation/" + items[1].DataHash + "?purpose=study", wire.ReasonDataTypeNotConsented, nil},
		{"a search by identifier releases that reading", researcher,
			search(url.Values{"identifier": {"urn:medprov:reading|" + dev.id + ":1"}, "purpose": {"study"}}), "", []string{dev.id + ":1"}},
		{"the patient reads its own readings without a consent", patient,
			search(url.Values{"patient": {"Patient/" + patient.id}, "code": {"8867-4,urn:medprov:reading-type|spo2"}, "purpose": {"patrqt"}}), "",
			[]string{dev.id + ":2", dev.id + ":1", dev.id + ":3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := e.sign(tt.signer, wire.ActionHTTPGet, action{"method": "GET", "path": tt.path})
			var got wire.AccessEvent
			commit := e.mustSubmit(&got, wire.FnRequestAccessByRead, env)
			want := wire.DecisionGranted
			if tt.reason != "" {
				want = wire.DecisionDenied
			}
			require.Equal(t, [2]string{want, tt.reason}, [2]string{got.Decision, got.Reason}, "decision and reason")
			assert.Equal(t, tt.ids, got.ReadingIDs, "granted readings")
			assert.Equal(t, [3]string{tt.signer.id, patient.id, commit.TxID}, [3]string{got.ActorID, got.PatientID, got.TxID}, "actor, patient, tx")
			var log wire.AccessEventPage
			e.mustEvaluate(&log, wire.FnGetAccessLog, patient.id, "1000", "")
			assert.Contains(t, log.Items, got, "the patient's access log holds the decision")
		})
	}

	t.Run("refused reads write nothing", func(t *testing.T) {
		var before wire.AccessEventPage
		e.mustEvaluate(&before, wire.FnGetAccessLog, patient.id, "1000", "")
		replayed := e.sign(researcher, wire.ActionHTTPGet, action{"method": "GET", "path": search(spo2)})
		_, err := e.submit(wire.FnRequestAccessByRead, replayed)
		require.NoError(t, err, "first use of the envelope")
		cases := []struct {
			name string
			env  string
			want wire.Code
		}{
			{"a replayed read", replayed, wire.CodeConflict},
			{"a read signed for another method", e.sign(researcher, wire.ActionHTTPGet, action{"method": "POST", "path": search(spo2)}), wire.CodeInvalid},
			{"another action's envelope", e.sign(researcher, wire.ActionAccessRequest, action{"patientId": patient.id}), wire.CodeInvalid},
			{"a path that is no Observation read", e.sign(researcher, wire.ActionHTTPGet, action{"method": "GET", "path": "/fhir/R4/Consent?patient=" + patient.id}), wire.CodeNotFound},
			{"a read without a purpose", e.sign(researcher, wire.ActionHTTPGet, action{"method": "GET", "path": "/fhir/R4/Observation/" + items[0].DataHash}), wire.CodeInvalid},
			{"an unknown reading", e.sign(researcher, wire.ActionHTTPGet, action{"method": "GET", "path": "/fhir/R4/Observation/" + strings.Repeat("a", 64) + "?purpose=study"}), wire.CodeNotFound},
			{"a patient's read of another patient's reading", e.sign(other, wire.ActionHTTPGet, action{"method": "GET", "path": "/fhir/R4/Observation/" + items[0].DataHash + "?purpose=patrqt"}), wire.CodeForbidden},
			{"an operator's read", e.sign(op, wire.ActionHTTPGet, action{"method": "GET", "path": search(spo2)}), wire.CodeForbidden},
			{"a forged signature", e.sign(&principal{id: researcher.id, key: other.key}, wire.ActionHTTPGet, action{"method": "GET", "path": search(spo2)}), wire.CodeUnauthenticated},
		}
		for _, c := range cases {
			_, err := e.submit(wire.FnRequestAccessByRead, c.env)
			assert.Equal(t, c.want, refusalCode(t, err), "%s: refusal code", c.name)
		}
		var after wire.AccessEventPage
		e.mustEvaluate(&after, wire.FnGetAccessLog, patient.id, "1000", "")
		assert.Equal(t, before.Count+1, after.Count, "only the first read is logged")
	})

	t.Run("readings are found by their dataHash", func(t *testing.T) {
		var got wire.Reading
		e.mustEvaluate(&got, wire.FnGetReadingByHash, items[1].DataHash)
		assert.Equal(t, dev.id+":2", got.ID, "reading of the hash")
		_, err := e.evaluate(wire.FnGetReadingByHash, strings.Repeat("b", 64))
		assert.Equal(t, wire.CodeNotFound, refusalCode(t, err), "unknown hash")
		_, err = e.evaluate(wire.FnGetReadingByHash, "not-a-hash")
		assert.Equal(t, wire.CodeInvalid, refusalCode(t, err), "malformed hash")
	})
}
