package chaincode_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/medprov/medprov/wire"

	"github.com/medprov/medprov/ledger"
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
	fresh := func() string { _, k := newKey(t); return k }
	tests := []struct {
		name   string
		fn     string
		signer *principal
		action string
		fields action
		want   wire.Code
	}{
		{"operator registers a device", "RegisterDevice", op, wire.ActionDeviceRegister, registerArgs("dev-a", patient.id, fresh()), ""},
		{"duplicate device is a conflict", "RegisterDevice", op, wire.ActionDeviceRegister, registerArgs(dev.id, patient.id, fresh()), wire.CodeConflict},
		{"device key of another device is a conflict", "RegisterDevice", op, wire.ActionDeviceRegister, registerArgs("dev-b", patient.id, dev.pem), wire.CodeConflict},
		{"device key of an actor is a conflict", "RegisterDevice", op, wire.ActionDeviceRegister, registerArgs("dev-c", patient.id, patient.pem), wire.CodeConflict},
		{"unknown patient is not found", "RegisterDevice", op, wire.ActionDeviceRegister, registerArgs("dev-d", "nobody", fresh()), wire.CodeNotFound},
		{"binding to a non-patient is refused", "RegisterDevice", op, wire.ActionDeviceRegister, registerArgs("dev-e", researcher.id, fresh()), wire.CodeInvalid},
		{"malformed device key is refused", "RegisterDevice", op, wire.ActionDeviceRegister, registerArgs("dev-f", patient.id, "not a key"), wire.CodeInvalid},
		{"device id with a colon is refused", "RegisterDevice", op, wire.ActionDeviceRegister, registerArgs("dev:g", patient.id, fresh()), wire.CodeInvalid},
		{"patient cannot register a device", "RegisterDevice", patient, wire.ActionDeviceRegister, registerArgs("dev-h", patient.id, fresh()), wire.CodeForbidden},
		{"another operator cannot revoke the device", "RevokeDevice", otherOp, wire.ActionDeviceRevoke, action{"deviceId": dev.id}, wire.CodeForbidden},
		{"unknown device cannot be revoked", "RevokeDevice", op, wire.ActionDeviceRevoke, action{"deviceId": "nothing"}, wire.CodeNotFound},
		{"its operator revokes the device", "RevokeDevice", op, wire.ActionDeviceRevoke, action{"deviceId": dev.id}, ""},
		{"revoking twice is a conflict", "RevokeDevice", op, wire.ActionDeviceRevoke, action{"deviceId": dev.id}, wire.CodeConflict},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := e.l.Height()
			c, err := e.submit(tt.fn, e.sign(tt.signer, tt.action, tt.fields))
			if got := refusalCode(t, err); got != tt.want {
				t.Fatalf("code = %q, want %q (err %v)", got, tt.want, err)
			}
			if tt.want != "" {
				return
			}
			var d wire.Device
			e.mustEvaluate(&d, "GetDevice", tt.fields["deviceId"].(string))
			if d.OperatorID != op.id || d.PatientID != patient.id {
				t.Errorf("device bound to operator %s, patient %s; want %s, %s", d.OperatorID, d.PatientID, op.id, patient.id)
			}
			wantStatus := "active"
			if tt.fn == "RevokeDevice" {
				wantStatus = "revoked"
				if d.RevokedTx != c.TxID {
					t.Errorf("revokedTx = %q, want %q", d.RevokedTx, c.TxID)
				}
			}
			if d.Status != wantStatus {
				t.Errorf("status = %q, want %q", d.Status, wantStatus)
			}
			evs := eventsOf(t, e, start, c.TxID)
			wantEvent := map[string]string{"RegisterDevice": wire.EventDeviceRegistered, "RevokeDevice": wire.EventDeviceRevoked}[tt.fn]
			var payload wire.Device
			if len(evs) != 1 || evs[0].Name != wantEvent || json.Unmarshal(evs[0].Payload, &payload) != nil || payload != d {
				t.Errorf("events %+v, want one %s carrying the device %+v", evs, wantEvent, d)
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
	if _, err := e.submit("RevokeDevice", e.sign(op, wire.ActionDeviceRevoke, action{"deviceId": revoked.id})); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	at := t0.Add(-time.Hour)

	// Readings already on the ledger before the cases run.
	first := reading(t, devA, 1, "spo2", at)
	res, firstCommit := e.record(first)
	if res.Recorded != 1 {
		t.Fatalf("setup batch recorded %d, want 1: %+v", res.Recorded, res.Results)
	}

	forged := reading(t, devA, 10, "spo2", at)
	forged.Signature = reading(t, &principal{id: devA.id, key: mustKey(t)}, 10, "spo2", at).Signature
	otherDevKey := reading(t, devB, 11, "spo2", at)
	otherDevKey.DeviceID = devA.id // devB's key signed a reading claimed for devA
	unknown := reading(t, &principal{id: "dev-unknown", key: mustKey(t)}, 1, "spo2", at)
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
			if res.TxID != c.TxID {
				t.Errorf("result txId = %q, want %q", res.TxID, c.TxID)
			}
			if len(res.Results) != len(tt.want) {
				t.Fatalf("got %d results, want %d", len(res.Results), len(tt.want))
			}
			var recorded []string
			for i, w := range tt.want {
				r := res.Results[i]
				if r.Index != i || r.Status != w.status || r.Code != w.code {
					t.Errorf("item %d = %+v, want status %s code %q", i, r, w.status, w.code)
				}
				if r.Status == wire.StatusRecorded {
					recorded = append(recorded, r.ReadingID)
					if r.TxID != c.TxID {
						t.Errorf("item %d txId = %q, want this transaction", i, r.TxID)
					}
				}
			}
			if res.Recorded != len(recorded) {
				t.Errorf("recorded = %d, want %d", res.Recorded, len(recorded))
			}
			ev := batchEvent(t, e, start, c.TxID)
			if recorded == nil {
				recorded = []string{}
			}
			if !slices.Equal(ev.ReadingIDs, recorded) {
				t.Errorf("event readingIds = %v, want %v", ev.ReadingIDs, recorded)
			}
		})
	}

	t.Run("identical retry names the original transaction", func(t *testing.T) {
		res, _ := e.record(first)
		if got := res.Results[0]; got.Status != wire.StatusExists || got.TxID != firstCommit.TxID {
			t.Errorf("retry = %+v, want exists with txId %s", got, firstCommit.TxID)
		}
	})
	t.Run("recorded reading carries its patient and transaction", func(t *testing.T) {
		var r wire.Reading
		e.mustEvaluate(&r, "GetReading", devA.id+":1")
		want := wire.Reading{
			DocType: "reading", ID: devA.id + ":1", DeviceID: devA.id, PatientID: patient.id, Seq: 1,
			Type: "spo2", Unit: "%", MeasuredAt: first.MeasuredAt, DataHash: first.DataHash,
			Signature: first.Signature, CID: first.CID, CipherHash: first.CipherHash, Size: first.Size,
			TxID: firstCommit.TxID, TxTime: "2030-03-10T12:00:00.000000000Z",
		}
		if r != want {
			t.Errorf("GetReading = %+v\nwant %+v", r, want)
		}
	})
	t.Run("rejected reading is not on the ledger", func(t *testing.T) {
		_, err := e.evaluate("GetReading", devA.id+":10")
		if got := refusalCode(t, err); got != wire.CodeNotFound {
			t.Errorf("code = %q, want not_found", got)
		}
	})

	refusals := []struct {
		name string
		arg  string
	}{
		{"empty batch is refused", `{"readings":[]}`},
		{"batch over 1000 items is refused", mustJSON(t, wire.BatchInput{Readings: make([]wire.ReadingInput, 1001)})},
		{"malformed batch is refused", `{"readings":`},
		{"unknown batch field is refused", `{"readings":[],"x":1}`},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.submit("RecordReadings", tt.arg)
			if got := refusalCode(t, err); got != wire.CodeInvalid {
				t.Errorf("code = %q, want invalid", got)
			}
		})
	}
	t.Run("item with an unknown field is rejected alone", func(t *testing.T) {
		g, err := json.Marshal(good(50))
		if err != nil {
			t.Fatal(err)
		}
		arg := `{"readings":[` + string(g) + `,{"deviceId":"x","seq":1,"extra":true}]}`
		var res wire.BatchResult
		e.mustSubmit(&res, "RecordReadings", arg)
		if res.Recorded != 1 || res.Results[1].Code != wire.CodeInvalid {
			t.Errorf("result = %+v, want item 0 recorded and item 1 invalid", res)
		}
	})
}

// batchEvent returns the ReadingsRecorded event of txID, read from the
// ledger's event stream from block start on.
func batchEvent(t *testing.T, e *env, start uint64, txID string) wire.ReadingsRecordedEvent {
	t.Helper()
	evs := eventsOf(t, e, start, txID)
	if len(evs) != 1 || evs[0].Name != wire.EventReadingsRecorded {
		t.Fatalf("transaction %s emitted %+v, want one ReadingsRecorded event", txID, evs)
	}
	var ev wire.ReadingsRecordedEvent
	if err := json.Unmarshal(evs[0].Payload, &ev); err != nil {
		t.Fatal(err)
	}
	if ev.TxID != txID {
		t.Errorf("event txId = %q, want %q", ev.TxID, txID)
	}
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
	if err != nil {
		t.Fatal(err)
	}
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
