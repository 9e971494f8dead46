package chaincode_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/medprov/medprov/internal/testkit"
	"github.com/medprov/medprov/ledger"
	"github.com/medprov/medprov/wire"
)

func TestDevices(t *testing.T) {
	e := newEnv(t)
	op := e.actor("operator")
	otherOp := e.actor("operator")
	patient := e.actor("patient")
	researcher := e.actor("researcher")
	dev := e.device(op, patient)

	registerArgs := func(deviceID, patientID, key string) action {
		return action{"deviceId": deviceID, "patientId": patientID, "deviceType": "ecg", "publicKey": key}
	}
	tests := []struct {
		name   string
		fn     string
		signer *principal
		action string
		fields action
		want   wire.Code
	}{
		{"operator registers a device", wire.FnRegisterDevice, op, wire.ActionDeviceRegister, registerArgs("dev-a", patient.id, freshPEM(t)), ""},
		{"duplicate device is a conflict", wire.FnRegisterDevice, op, wire.ActionDeviceRegister, registerArgs(dev.id, patient.id, freshPEM(t)), wire.CodeConflict},
		{"device key of another device is a conflict", wire.FnRegisterDevice, op, wire.ActionDeviceRegister, registerArgs("dev-b", patient.id, dev.pem), wire.CodeConflict},
		{"device key of an actor is a conflict", wire.FnRegisterDevice, op, wire.ActionDeviceRegister, registerArgs("dev-c", patient.id, patient.pem), wire.CodeConflict},
		{"unknown patient is not found", wire.FnRegisterDevice, op, wire.ActionDeviceRegister, registerArgs("dev-d", "nobody", freshPEM(t)), wire.CodeNotFound},
		{"binding to a non-patient is refused", wire.FnRegisterDevice, op, wire.ActionDeviceRegister, registerArgs("dev-e", researcher.id, freshPEM(t)), wire.CodeInvalid},
		{"malformed device key is refused", wire.FnRegisterDevice, op, wire.ActionDeviceRegister, registerArgs("dev-f", patient.id, "not a key"), wire.CodeInvalid},
		{"device id with a colon is refused", wire.FnRegisterDevice, op, wire.ActionDeviceRegister, registerArgs("dev:g", patient.id, freshPEM(t)), wire.CodeInvalid},
		{"patient cannot register a device", wire.FnRegisterDevice, patient, wire.ActionDeviceRegister, registerArgs("dev-h", patient.id, freshPEM(t)), wire.CodeForbidden},
		{"another operator cannot revoke the device", wire.FnRevokeDevice, otherOp, wire.ActionDeviceRevoke, action{"deviceId": dev.id}, wire.CodeForbidden},
		{"unknown device cannot be revoked", wire.FnRevokeDevice, op, wire.ActionDeviceRevoke, action{"deviceId": "nothing"}, wire.CodeNotFound},
		{"its operator revokes the device", wire.FnRevokeDevice, op, wire.ActionDeviceRevoke, action{"deviceId": dev.id}, ""},
		{"revoking twice is a conflict", wire.FnRevokeDevice, op, wire.ActionDeviceRevoke, action{"deviceId": dev.id}, wire.CodeConflict},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := e.l.Height()
			c, err := e.submit(tt.fn, e.sign(tt.signer, tt.action, tt.fields))
			require.Equal(t, tt.want, refusalCode(t, err), "refusal code (err %v)", err)
			if tt.want != "" {
				return
			}
			var d wire.Device
			e.mustEvaluate(&d, wire.FnGetDevice, tt.fields["deviceId"].(string))
			assert.Equal(t, op.id, d.OperatorID, "device operator")
			assert.Equal(t, patient.id, d.PatientID, "device patient")
			wantStatus := "active"
			if tt.fn == wire.FnRevokeDevice {
				wantStatus = "revoked"
				assert.Equal(t, c.TxID, d.RevokedTx, "revokedTx")
			}
			assert.Equal(t, wantStatus, d.Status, "device status")
			evs := eventsOf(t, e, start, c.TxID)
			wantEvent := map[string]string{wire.FnRegisterDevice: wire.EventDeviceRegistered, wire.FnRevokeDevice: wire.EventDeviceRevoked}[tt.fn]
			if assert.Len(t, evs, 1, "events of the transaction") {
				assert.Equal(t, wantEvent, evs[0].Name, "event name")
				var payload wire.Device
				if assert.NoError(t, json.Unmarshal(evs[0].Payload, &payload), "event payload") {
					assert.Equal(t, d, payload, "the event carries the device")
				}
			}
		})
	}
}

func TestRecordReadings(t *testing.T) {
	e := newEnv(t)
	op := e.actor("operator")
	patient := e.actor("patient")
	devA := e.device(op, patient)
	devB := e.device(op, patient)
	revoked := e.device(op, patient)
	_, err := e.submit(wire.FnRevokeDevice, e.sign(op, wire.ActionDeviceRevoke, action{"deviceId": revoked.id}))
	require.NoError(t, err, "revoke")
	at := t0.Add(-time.Hour)

	// Readings already on the ledger before the cases run.
	first := reading(t, devA, 1, "spo2", at)
	res, firstCommit := e.record(first)
	require.Equal(t, 1, res.Recorded, "setup batch recorded: %+v", res.Results)

	forged := reading(t, devA, 10, "spo2", at)
	forged.Signature = reading(t, &principal{id: devA.id, key: testkit.MustKey(t)}, 10, "spo2", at).Signature
	otherDevKey := reading(t, devB, 11, "spo2", at)
	otherDevKey.DeviceID = devA.id // devB's key signed a reading claimed for devA
	unknown := reading(t, &principal{id: "dev-unknown", key: testkit.MustKey(t)}, 1, "spo2", at)
	dupSeq := reading(t, devA, 1, "spo2", at.Add(time.Second)) // seq 1 again, another payload
	sameHash := first
	sameHash.Seq = 99 // the signed hash of seq 1 replayed under another seq
	badHash := reading(t, devB, 12, "spo2", at)
	badHash.DataHash = strings.ToUpper(badHash.DataHash)
	inBatch := reading(t, devB, 20, "spo2", at)
	inBatchOther := reading(t, devB, 20, "spo2", at.Add(time.Second))
	twice := reading(t, devB, 30, "heart-rate", at)
	good := func(seq uint64) wire.ReadingInput { return reading(t, devB, seq, "heart-rate", at) }

	type want struct {
		status string
		code   wire.Code
	}
	rec := want{wire.StatusRecorded, ""}
	exists := want{wire.StatusExists, ""}
	tests := []struct {
		name  string
		items []wire.ReadingInput
		want  []want
	}{
		{"valid reading is recorded", []wire.ReadingInput{good(1)}, []want{rec}},
		{"forged signature is rejected", []wire.ReadingInput{forged}, []want{{wire.StatusRejected, wire.CodeUnauthenticated}}},
		{"another device's key is rejected", []wire.ReadingInput{otherDevKey}, []want{{wire.StatusRejected, wire.CodeUnauthenticated}}},
		{"unknown device is rejected", []wire.ReadingInput{unknown}, []want{{wire.StatusRejected, wire.CodeForbidden}}},
		{"revoked device is rejected", []wire.ReadingInput{reading(t, revoked, 1, "spo2", at)}, []want{{wire.StatusRejected, wire.CodeForbidden}}},
		{"duplicate seq with another payload is a conflict", []wire.ReadingInput{dupSeq}, []want{{wire.StatusRejected, wire.CodeConflict}}},
		{"identical retry is reported as existing", []wire.ReadingInput{first}, []want{exists}},
		{"signed hash replayed under another seq is a conflict", []wire.ReadingInput{sameHash}, []want{{wire.StatusRejected, wire.CodeConflict}}},
		{"upper-case dataHash is malformed", []wire.ReadingInput{badHash}, []want{{wire.StatusRejected, wire.CodeInvalid}}},
		{"duplicate seq inside one batch is a conflict", []wire.ReadingInput{inBatch, inBatchOther}, []want{rec, {wire.StatusRejected, wire.CodeConflict}}},
		{"identical item twice in one batch exists the second time", []wire.ReadingInput{twice, twice}, []want{rec, exists}},
		{"mixed batch records the good items", []wire.ReadingInput{good(40), forged, good(41), unknown, good(42)},
			[]want{rec, {wire.StatusRejected, wire.CodeUnauthenticated}, rec, {wire.StatusRejected, wire.CodeForbidden}, rec}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := e.l.Height()
			res, c := e.record(tt.items...)
			assert.Equal(t, c.TxID, res.TxID, "result txId")
			require.Len(t, res.Results, len(tt.want), "results")
			recorded := []string{}
			for i, w := range tt.want {
				r := res.Results[i]
				assert.Equal(t, want{w.status, w.code}, want{r.Status, r.Code}, "item %d (%+v)", i, r)
				assert.Equal(t, i, r.Index, "index of item %d", i)
				if r.Status == wire.StatusRecorded {
					recorded = append(recorded, r.ReadingID)
					assert.Equal(t, c.TxID, r.TxID, "item %d txId", i)
				}
			}
			assert.Equal(t, len(recorded), res.Recorded, "recorded")
			ev := batchEvent(t, e, start, c.TxID)
			assert.Equal(t, recorded, ev.ReadingIDs, "event readingIds")
		})
	}

	t.Run("identical retry names the original transaction", func(t *testing.T) {
		res, _ := e.record(first)
		got := res.Results[0]
		assert.Equal(t, wire.StatusExists, got.Status, "retry status")
		assert.Equal(t, firstCommit.TxID, got.TxID, "retry txId")
	})
	t.Run("recorded reading carries its patient and transaction", func(t *testing.T) {
		var r wire.Reading
		e.mustEvaluate(&r, wire.FnGetReading, devA.id+":1")
		want := wire.Reading{
			DocType: "reading", ID: devA.id + ":1", DeviceID: devA.id, PatientID: patient.id, Seq: 1,
			Type: "spo2", Unit: "%", MeasuredAt: first.MeasuredAt, DataHash: first.DataHash,
			Signature: first.Signature, CID: first.CID, CipherHash: first.CipherHash, Size: first.Size,
			TxID: firstCommit.TxID, TxTime: "2030-03-10T12:00:00.000000000Z",
		}
		assert.Equal(t, want, r, "GetReading")
	})
	t.Run("rejected reading is not on the ledger", func(t *testing.T) {
		_, err := e.evaluate(wire.FnGetReading, devA.id+":10")
		assert.Equal(t, wire.CodeNotFound, refusalCode(t, err))
	})

	refusals := []struct {
		name string
		arg  string
	}{
		{"empty batch is refused", `{"readings":[]}`},
		{"batch over 1000 items is refused", string(testkit.MustJSON(t, wire.BatchInput{Readings: make([]wire.ReadingInput, wire.MaxBatch+1)}))},
		{"malformed batch is refused", `{"readings":`},
		{"unknown batch field is refused", `{"readings":[],"x":1}`},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.submit(wire.FnRecordReadings, tt.arg)
			assert.Equal(t, wire.CodeInvalid, refusalCode(t, err))
		})
	}
	t.Run("item with an unknown field is rejected alone", func(t *testing.T) {
		g := testkit.MustJSON(t, good(50))
		arg := `{"readings":[` + string(g) + `,{"deviceId":"x","seq":1,"extra":true}]}`
		var res wire.BatchResult
		e.mustSubmit(&res, wire.FnRecordReadings, arg)
		assert.Equal(t, 1, res.Recorded, "recorded (%+v)", res)
		if assert.Len(t, res.Results, 2, "results") {
			assert.Equal(t, wire.CodeInvalid, res.Results[1].Code, "code of item 1")
		}
	})
}

// batchEvent returns the ReadingsRecorded event of txID, read from the
// ledger's event stream from block start on.
func batchEvent(t *testing.T, e *env, start uint64, txID string) wire.ReadingsRecordedEvent {
	t.Helper()
	evs := eventsOf(t, e, start, txID)
	require.Len(t, evs, 1, "events of transaction %s", txID)
	require.Equal(t, wire.EventReadingsRecorded, evs[0].Name, "event of transaction %s", txID)
	var ev wire.ReadingsRecordedEvent
	require.NoError(t, json.Unmarshal(evs[0].Payload, &ev), "event payload")
	assert.Equal(t, txID, ev.TxID, "event txId")
	return ev
}

// eventsOf returns the chaincode events of txID in blocks from start up to
// the current height.
func eventsOf(t *testing.T, e *env, start uint64, txID string) []ledger.Event {
	t.Helper()
	end := e.l.Height()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	ch, err := e.l.Events(ctx, start)
	require.NoError(t, err, "Events")
	var out []ledger.Event
	for ev := range ch {
		if ev.TxID == txID {
			out = append(out, ev)
		}
		if ev.Block+1 >= end {
			break
		}
	}
	return out
}
