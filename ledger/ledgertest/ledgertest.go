// Package ledgertest is the conformance suite for [ledger.Transactor]. Every
// backend's tests call [Run] with ledgers running the medprov chaincode, so
// that no backend drifts from the contract documented on ledger.Transactor.
// It is imported only by tests.
package ledgertest

import (
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/medprov/medprov/internal/testkit"
	"github.com/medprov/medprov/ledger"
	"github.com/medprov/medprov/wire"
)

// eventWait bounds how long the suite waits for an event stream, so that a
// backend that never delivers fails instead of hanging. It is no timing
// assertion: a healthy backend delivers in well under a second.
const eventWait = 2 * time.Minute

// chaincodeTime is how the medprov chaincode writes a transaction's time.
const chaincodeTime = "2006-01-02T15:04:05.000000000Z"

// Run checks the Transactors open returns against every clause of the
// ledger.Transactor contract, one subtest per clause, driving the medprov
// chaincode. open is called once per subtest and returns a Transactor of a
// ledger that runs the medprov chaincode on the local clock, with the
// admin identity of its organisation available for AsAdmin. Ledgers need
// not be empty nor separate (Transactors may share one network): the suite
// names every actor and device afresh. Subtests run one after another; the
// suite closes every Transactor open returns, and checks that Close
// succeeds.
func Run(t *testing.T, open func(t *testing.T) ledger.Transactor) {
	tests := []struct {
		name string
		run  func(t *testing.T, tr ledger.Transactor)
	}{
		{"submit returns the commit of the transaction with the chaincode's payload", testSubmitCommit},
		{"a submitted transaction is committed when submit returns", testSubmitReturnsAfterCommit},
		{"evaluate returns the chaincode's payload and commits nothing", testEvaluateCommitsNothing},
		{"only the admin identity may register actors", testAsAdmin},
		{"a chaincode refusal is a ChaincodeError carrying the medprov code", testRefusals},
		{"a refused submit writes nothing", testRefusalWritesNothing},
		{"a signed payload that could be read two ways is refused", testAmbiguousPayloads},
		{"Tx locates a committed transaction", testTx},
		{"Tx of an unknown transaction is not found", testTxUnknown},
		{"events arrive in block order from the start block", testEventsInOrder},
		{"events resume from a later block", testEventsResume},
		{"the event channel is closed when the context ends", testEventsClose},
		{"concurrent submits all commit", testConcurrentSubmits},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := open(t)
			require.NotNil(t, tr, "open returned no Transactor")
			t.Cleanup(func() { assert.NoError(t, tr.Close(), "Close") })
			tt.run(t, tr)
		})
	}
}

func testSubmitCommit(t *testing.T, tr ledger.Transactor) {
	id := newID(t, "patient")
	arg, _ := actorArg(t, id, wire.RolePatient)
	c, err := tr.Submit(t.Context(), ledger.Proposal{Function: wire.FnRegisterActor, Args: []string{arg}, AsAdmin: true})
	require.NoError(t, err, "Submit %s", wire.FnRegisterActor)
	assert.NotEmpty(t, c.TxID, "commit TxID")
	assert.NotZero(t, c.Block, "commit block (block 0 is the genesis block)")
	require.False(t, c.Timestamp.IsZero(), "commit timestamp")

	var got wire.Actor
	require.NoError(t, json.Unmarshal(c.Payload, &got), "commit payload %q", c.Payload)
	assert.Equal(t, id, got.ID, "registered actor id")
	assert.Equal(t, c.TxID, got.RegisteredTx, "the chaincode saw the commit's transaction ID")
	assert.Equal(t, c.Timestamp.UTC().Format(chaincodeTime), got.RegisteredAt, "the chaincode saw the commit's timestamp")
}

func testSubmitReturnsAfterCommit(t *testing.T, tr ledger.Transactor) {
	a := registerActor(t, tr, wire.RoleOperator)

	info, err := tr.Tx(t.Context(), a.commit.TxID)
	require.NoError(t, err, "Tx right after Submit")
	assert.Equal(t, a.commit.Block, info.Block, "block of the transaction")
	assert.True(t, info.Valid, "transaction is valid")

	var got wire.Actor
	evaluateJSON(t, tr, &got, wire.FnGetActor, a.id)
	assert.Equal(t, a.id, got.ID, "GetActor right after Submit")
	assert.Equal(t, a.commit.TxID, got.RegisteredTx, "GetActor names the registering transaction")
}

func testEvaluateCommitsNothing(t *testing.T, tr ledger.Transactor) {
	id := newID(t, "patient")
	arg, _ := actorArg(t, id, wire.RolePatient)
	p := ledger.Proposal{Function: wire.FnRegisterActor, Args: []string{arg}, AsAdmin: true}
	out, err := tr.Evaluate(t.Context(), p)
	require.NoError(t, err, "Evaluate %s", wire.FnRegisterActor)
	var got wire.Actor
	require.NoError(t, json.Unmarshal(out, &got), "Evaluate payload %q", out)
	assert.Equal(t, id, got.ID, "evaluated actor id")

	_, err = tr.Evaluate(t.Context(), ledger.Proposal{Function: wire.FnGetActor, Args: []string{id}})
	assert.Equal(t, wire.CodeNotFound, refusalCode(t, err), "an evaluated registration is not on the ledger")
	_, err = tr.Submit(t.Context(), p)
	assert.NoError(t, err, "submitting the evaluated registration (its id and key were not taken)")
}

func testAsAdmin(t *testing.T, tr ledger.Transactor) {
	tests := []struct {
		name    string
		asAdmin bool
		want    wire.Code
	}{
		{"the admin identity registers an actor", true, ""},
		{"the client identity is refused", false, wire.CodeForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			arg, _ := actorArg(t, newID(t, "patient"), wire.RolePatient)
			_, err := tr.Submit(t.Context(), ledger.Proposal{Function: wire.FnRegisterActor, Args: []string{arg}, AsAdmin: tt.asAdmin})
			assert.Equal(t, tt.want, refusalCode(t, err), "refusal code (err %v)", err)
		})
	}
}

func testRefusals(t *testing.T, tr ledger.Transactor) {
	op := registerActor(t, tr, wire.RoleOperator)
	patient := registerActor(t, tr, wire.RolePatient)
	takenArg, _ := actorArg(t, op.id, wire.RoleOperator)
	clientArg, _ := actorArg(t, newID(t, "patient"), wire.RolePatient)
	forger := &principal{id: op.id, key: testkit.MustKey(t)}

	tests := []struct {
		name     string
		submit   bool
		proposal ledger.Proposal
		want     wire.Code
	}{
		{"a malformed actor is invalid", true,
			ledger.Proposal{Function: wire.FnRegisterActor, Args: []string{`{"id":`}, AsAdmin: true}, wire.CodeInvalid},
		{"a forged signature is unauthenticated", true,
			ledger.Proposal{Function: wire.FnRegisterDevice, Args: []string{deviceRegistration(t, forger, patient, newID(t, "dev"))}}, wire.CodeUnauthenticated},
		{"a client identity registering an actor is forbidden", true,
			ledger.Proposal{Function: wire.FnRegisterActor, Args: []string{clientArg}}, wire.CodeForbidden},
		{"an unknown actor is not found", false,
			ledger.Proposal{Function: wire.FnGetActor, Args: []string{newID(t, "nobody")}}, wire.CodeNotFound},
		{"a duplicate actor id is a conflict", true,
			ledger.Proposal{Function: wire.FnRegisterActor, Args: []string{takenArg}, AsAdmin: true}, wire.CodeConflict},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			if tt.submit {
				_, err = tr.Submit(t.Context(), tt.proposal)
			} else {
				_, err = tr.Evaluate(t.Context(), tt.proposal)
			}
			var ce *ledger.ChaincodeError
			require.ErrorAs(t, err, &ce)
			got, ok := wire.ParseError(ce.Message)
			require.True(t, ok, "ChaincodeError message %q carries no [medprov:<code>] marker", ce.Message)
			assert.Equal(t, tt.want, got.Code, "refusal code of %q", ce.Message)
			assert.NotErrorIs(t, err, ledger.ErrUnavailable, "a refusal is no unavailable ledger")
		})
	}
}

func testRefusalWritesNothing(t *testing.T, tr ledger.Transactor) {
	op := registerActor(t, tr, wire.RoleOperator)
	patient := registerActor(t, tr, wire.RolePatient)
	id := newID(t, "patient")
	arg, key := actorArg(t, id, wire.RolePatient)
	_, err := tr.Submit(t.Context(), ledger.Proposal{Function: wire.FnRegisterActor, Args: []string{arg}})
	require.Equal(t, wire.CodeForbidden, refusalCode(t, err), "client registration (err %v)", err)

	_, err = tr.Evaluate(t.Context(), ledger.Proposal{Function: wire.FnGetActor, Args: []string{id}})
	assert.Equal(t, wire.CodeNotFound, refusalCode(t, err), "the refused actor is not on the ledger")
	// The refused registration claimed no key: a device may take it.
	devID := newID(t, "dev")
	_, err = tr.Submit(t.Context(), ledger.Proposal{Function: wire.FnRegisterDevice,
		Args: []string{deviceRegistrationWithKey(t, op, patient, devID, testkit.PublicPEM(t, key))}})
	assert.NoError(t, err, "registering a device with the refused actor's key")
}

func testTx(t *testing.T, tr ledger.Transactor) {
	a := registerActor(t, tr, wire.RoleResearcher)
	got, err := tr.Tx(t.Context(), a.commit.TxID)
	require.NoError(t, err, "Tx")
	assert.Equal(t, a.commit.TxID, got.TxID, "TxID")
	assert.Equal(t, a.commit.Block, got.Block, "block")
	assert.True(t, got.Timestamp.Equal(a.commit.Timestamp), "timestamp %v, want the commit's %v", got.Timestamp, a.commit.Timestamp)
	assert.True(t, got.Valid, "valid")
}

func testTxUnknown(t *testing.T, tr ledger.Transactor) {
	_, err := tr.Tx(t.Context(), strings.Repeat("0", 64))
	require.ErrorIs(t, err, ledger.ErrNotFound)
}

func testEventsInOrder(t *testing.T, tr ledger.Transactor) {
	op := registerActor(t, tr, wire.RoleOperator)
	events := subscribe(t, tr, op.commit.Block)
	// Committed after the subscription: delivered live.
	patient := registerActor(t, tr, wire.RolePatient)
	refusedID := newID(t, "patient")
	refusedArg, _ := actorArg(t, refusedID, wire.RolePatient)
	_, err := tr.Submit(t.Context(), ledger.Proposal{Function: wire.FnRegisterActor, Args: []string{refusedArg}})
	require.Equal(t, wire.CodeForbidden, refusalCode(t, err), "client registration (err %v)", err)
	devID := newID(t, "dev")
	dev := submit(t, tr, wire.FnRegisterDevice, deviceRegistration(t, op, patient, devID))

	all := collect(t, events, dev.TxID)
	type event struct {
		TxID    string
		Block   uint64
		Name    string
		Subject string
	}
	want := []event{
		{op.commit.TxID, op.commit.Block, wire.EventActorRegistered, op.id},
		{patient.commit.TxID, patient.commit.Block, wire.EventActorRegistered, patient.id},
		{dev.TxID, dev.Block, wire.EventDeviceRegistered, devID},
	}
	ours := map[string]bool{op.commit.TxID: true, patient.commit.TxID: true, dev.TxID: true}
	var got []event
	for i, ev := range all {
		assert.GreaterOrEqual(t, ev.Block, op.commit.Block, "event %d (tx %s) is from before the start block", i, ev.TxID)
		if i > 0 {
			assert.GreaterOrEqual(t, ev.Block, all[i-1].Block, "event %d (tx %s) is out of block order", i, ev.TxID)
		}
		var subject struct {
			ID string `json:"id"`
		}
		require.NoError(t, json.Unmarshal(ev.Payload, &subject), "payload of event %s of tx %s", ev.Name, ev.TxID)
		assert.NotEqual(t, refusedID, subject.ID, "the refused registration delivered event %+v", ev)
		if ours[ev.TxID] {
			got = append(got, event{ev.TxID, ev.Block, ev.Name, subject.ID})
		}
	}
	assert.Equal(t, want, got, "events of this test's transactions")
}

func testEventsResume(t *testing.T, tr ledger.Transactor) {
	first := registerActor(t, tr, wire.RolePatient)
	second := registerActor(t, tr, wire.RolePatient)
	require.Greater(t, second.commit.Block, first.commit.Block, "a transaction submitted after another returned is in a later block")

	all := collect(t, subscribe(t, tr, second.commit.Block), second.commit.TxID)
	for _, ev := range all {
		assert.GreaterOrEqual(t, ev.Block, second.commit.Block, "event of tx %s is from before the start block", ev.TxID)
		assert.NotEqual(t, first.commit.TxID, ev.TxID, "the event of the earlier block was delivered")
	}
	last := all[len(all)-1]
	assert.Equal(t, second.commit.Block, last.Block, "block of the resumed event")
	assert.Equal(t, wire.EventActorRegistered, last.Name, "name of the resumed event")
}

func testEventsClose(t *testing.T, tr ledger.Transactor) {
	a := registerActor(t, tr, wire.RolePatient)
	ctx, cancel := context.WithTimeout(t.Context(), eventWait)
	defer cancel()
	events, err := tr.Events(ctx, a.commit.Block)
	require.NoError(t, err, "Events")
	collect(t, events, a.commit.TxID) // the stream is live

	cancel()
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		for range events { // events already in flight may still arrive
		}
	}()
	select {
	case <-closed:
	case <-time.After(eventWait):
		require.Fail(t, "event channel still open after the context ended", "waited %v", eventWait)
	}
}

func testConcurrentSubmits(t *testing.T, tr ledger.Transactor) {
	const workers = 8
	type result struct {
		id     string
		commit *ledger.Commit
		err    error
		read   wire.Actor
		rerr   error
	}
	results := make([]result, workers)
	args := make([]string, workers)
	for i := range results {
		results[i].id = newID(t, "patient")
		args[i], _ = actorArg(t, results[i].id, wire.RolePatient)
	}
	var wg sync.WaitGroup
	for i := range results {
		wg.Go(func() {
			r := &results[i]
			r.commit, r.err = tr.Submit(t.Context(), ledger.Proposal{Function: wire.FnRegisterActor, Args: []string{args[i]}, AsAdmin: true})
			if r.err != nil {
				return
			}
			var out []byte
			out, r.rerr = tr.Evaluate(t.Context(), ledger.Proposal{Function: wire.FnGetActor, Args: []string{r.id}})
			if r.rerr == nil {
				r.rerr = json.Unmarshal(out, &r.read)
			}
		})
	}
	wg.Wait()

	txIDs := map[string]bool{}
	for _, r := range results {
		if !assert.NoError(t, r.err, "concurrent Submit of %s", r.id) {
			continue
		}
		txIDs[r.commit.TxID] = true
		if assert.NoError(t, r.rerr, "GetActor %s after its Submit returned", r.id) {
			assert.Equal(t, r.commit.TxID, r.read.RegisteredTx, "actor %s names its transaction", r.id)
		}
		info, err := tr.Tx(t.Context(), r.commit.TxID)
		if assert.NoError(t, err, "Tx of %s", r.commit.TxID) {
			assert.Equal(t, r.commit.Block, info.Block, "block of %s", r.commit.TxID)
			assert.True(t, info.Valid, "%s is valid", r.commit.TxID)
		}
	}
	assert.Len(t, txIDs, workers, "distinct transaction IDs")
}

// principal is an actor with its signing key and registering commit.
type principal struct {
	id     string
	key    *ecdsa.PrivateKey
	commit *ledger.Commit
}

// newID returns an actor or device id no earlier run has used.
func newID(t *testing.T, prefix string) string {
	t.Helper()
	return prefix + "-" + testkit.Nonce(t)[:16]
}

// actorArg returns RegisterActor's argument for actor id with a fresh key.
func actorArg(t *testing.T, id, role string) (string, *ecdsa.PrivateKey) {
	t.Helper()
	k := testkit.MustKey(t)
	return string(testkit.MustJSON(t, wire.ActorInput{ID: id, Role: role, PublicKey: testkit.PublicPEM(t, k)})), k
}

// registerActor registers a new actor with the admin identity.
func registerActor(t *testing.T, tr ledger.Transactor, role string) *principal {
	t.Helper()
	p := &principal{id: newID(t, role)}
	var arg string
	arg, p.key = actorArg(t, p.id, role)
	c, err := tr.Submit(t.Context(), ledger.Proposal{Function: wire.FnRegisterActor, Args: []string{arg}, AsAdmin: true})
	require.NoError(t, err, "register %s %s", role, p.id)
	p.commit = c
	return p
}

// deviceRegistration returns RegisterDevice's argument: op's signed
// device.register action for a device of patient with a fresh key.
// testAmbiguousPayloads signs payloads whose members another JSON parser
// could read differently (issue 10: "two readings of one signed payload"):
// the chaincode must refuse them as invalid, whatever the backend, and
// register nothing.
func testAmbiguousPayloads(t *testing.T, tr ledger.Transactor) {
	op := registerActor(t, tr, wire.RoleOperator)
	patient := registerActor(t, tr, wire.RolePatient)
	head := func() string {
		return fmt.Sprintf(`{"action":%q,"actorId":%q,"issuedAt":%q,"nonce":%q`, wire.ActionDeviceRegister, op.id,
			time.Now().UTC().Format(time.RFC3339), testkit.Nonce(t))
	}
	pem, err := json.Marshal(testkit.PublicPEM(t, testkit.MustKey(t)))
	require.NoError(t, err)
	tests := []struct {
		name    string
		payload func(devID string) string
	}{
		{"a duplicate deviceId", func(devID string) string {
			return head() + fmt.Sprintf(`,"deviceId":%q,"patientId":%q,"deviceType":"hr","publicKey":%s,"deviceId":"other-%s"}`, devID, patient.id, pem, devID)
		}},
		{"a case-folded deviceType", func(devID string) string {
			return head() + fmt.Sprintf(`,"deviceId":%q,"patientId":%q,"deviceType":"hr","publicKey":%s,"DEVICETYPE":"x"}`, devID, patient.id, pem)
		}},
		{"invalid UTF-8 in a value", func(devID string) string {
			return head() + fmt.Sprintf(`,"deviceId":%q,"patientId":%q,"deviceType":"h\xffr","publicKey":%s}`, devID, patient.id, pem)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name+" is invalid", func(t *testing.T) {
			devID := newID(t, "dev")
			payload := []byte(tt.payload(devID))
			if strings.Contains(tt.name, "UTF-8") {
				payload = []byte(strings.Replace(string(payload), `\xff`, "\xff", 1))
			}
			env := testkit.MustJSON(t, testkit.MustSign(t, op.key, payload))
			_, err := tr.Submit(t.Context(), ledger.Proposal{Function: wire.FnRegisterDevice, Args: []string{string(env)}})
			assert.Equal(t, wire.CodeInvalid, refusalCode(t, err), "err %v", err)
			_, err = tr.Evaluate(t.Context(), ledger.Proposal{Function: wire.FnGetDevice, Args: []string{devID}})
			assert.Equal(t, wire.CodeNotFound, refusalCode(t, err), "nothing was registered")
		})
	}
}

func deviceRegistration(t *testing.T, op, patient *principal, devID string) string {
	t.Helper()
	return deviceRegistrationWithKey(t, op, patient, devID, testkit.PublicPEM(t, testkit.MustKey(t)))
}

func deviceRegistrationWithKey(t *testing.T, op, patient *principal, devID, pemKey string) string {
	t.Helper()
	payload := wire.DeviceRegisterAction{
		ActionHeader: wire.ActionHeader{
			Action: wire.ActionDeviceRegister, ActorID: op.id,
			IssuedAt: time.Now().UTC().Format(time.RFC3339), Nonce: testkit.Nonce(t),
		},
		DeviceID: devID, PatientID: patient.id, DeviceType: "pulse-oximeter", PublicKey: pemKey,
	}
	return string(testkit.MustJSON(t, testkit.MustSign(t, op.key, testkit.MustJSON(t, payload))))
}

func submit(t *testing.T, tr ledger.Transactor, fn string, args ...string) *ledger.Commit {
	t.Helper()
	c, err := tr.Submit(t.Context(), ledger.Proposal{Function: fn, Args: args})
	require.NoError(t, err, "Submit %s", fn)
	return c
}

func evaluateJSON(t *testing.T, tr ledger.Transactor, out any, fn string, args ...string) {
	t.Helper()
	b, err := tr.Evaluate(t.Context(), ledger.Proposal{Function: fn, Args: args})
	require.NoError(t, err, "Evaluate %s", fn)
	require.NoError(t, json.Unmarshal(b, out), "%s result %q", fn, b)
}

// refusalCode returns the medprov code of a chaincode refusal, or "" if err
// is nil; any other error fails the test.
func refusalCode(t *testing.T, err error) wire.Code {
	t.Helper()
	if err == nil {
		return ""
	}
	var ce *ledger.ChaincodeError
	require.ErrorAs(t, err, &ce)
	r, ok := wire.ParseError(ce.Message)
	require.True(t, ok, "refusal carries no medprov code: %q", ce.Message)
	return r.Code
}

// subscribe returns the events from block start on, delivered until the
// test ends (or eventWait, so that a silent stream cannot hang the test).
func subscribe(t *testing.T, tr ledger.Transactor, start uint64) <-chan ledger.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), eventWait)
	t.Cleanup(cancel)
	events, err := tr.Events(ctx, start)
	require.NoError(t, err, "Events from block %d", start)
	return events
}

// collect reads events up to and including the one of transaction txID.
func collect(t *testing.T, events <-chan ledger.Event, txID string) []ledger.Event {
	t.Helper()
	var got []ledger.Event
	for ev := range events {
		got = append(got, ev)
		if ev.TxID == txID {
			return got
		}
	}
	require.Failf(t, "event channel closed", "closed after %d events, before the event of tx %s", len(got), txID)
	return nil
}
