package fabric_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/medprov/medprov/internal/testkit"
	"github.com/medprov/medprov/internal/testnet"
	"github.com/medprov/medprov/ledger"
	"github.com/medprov/medprov/ledger/fabric"
	"github.com/medprov/medprov/ledger/ledgertest"
	"github.com/medprov/medprov/wire"
)

// dial opens a Transactor for one organisation of the network; the caller
// closes it.
func dial(tb testing.TB, profilePath, org string, tune func(*fabric.Config)) *fabric.Transactor {
	tb.Helper()
	profile, err := fabric.LoadProfile(profilePath)
	require.NoError(tb, err, "LoadProfile")
	cfg, err := profile.Config(org)
	require.NoError(tb, err, "profile.Config(%q)", org)
	if tune != nil {
		tune(&cfg)
	}
	tr, err := fabric.New(tb.Context(), cfg)
	require.NoError(tb, err, "fabric.New")
	return tr
}

// connect is dial, closing the Transactor when the test ends.
func connect(t *testing.T, profilePath, org string, tune func(*fabric.Config)) *fabric.Transactor {
	t.Helper()
	tr := dial(t, profilePath, org, tune)
	t.Cleanup(func() { assert.NoError(t, tr.Close(), "Close") })
	return tr
}

// actorArg returns RegisterActor's argument for a new actor with a fresh key.
func actorArg(tb testing.TB, id, role string) string {
	tb.Helper()
	return string(testkit.MustJSON(tb, wire.ActorInput{ID: id, Role: role, PublicKey: testkit.PublicPEM(tb, testkit.MustKey(tb))}))
}

func registerActor(t *testing.T, tr ledger.Transactor, id, role string) *ledger.Commit {
	t.Helper()
	c, err := tr.Submit(t.Context(), ledger.Proposal{
		Function: wire.FnRegisterActor,
		Args:     []string{actorArg(t, id, role)},
		AsAdmin:  true,
	})
	require.NoError(t, err, "RegisterActor %s", id)
	return c
}

// TestConformance runs the ledger.Transactor suite against a real network,
// as the hospital organisation, and then what only a network of two
// organisations shows.
func TestConformance(t *testing.T) {
	profile := testnet.StartFabric(t)
	ledgertest.Run(t, func(t *testing.T) ledger.Transactor {
		return dial(t, profile, "hospital", nil)
	})

	t.Run("an actor an admin registers is read back by both organisations", func(t *testing.T) {
		hospital := connect(t, profile, "hospital", nil)
		research := connect(t, profile, "ResearchMSP", nil)
		first := registerActor(t, hospital, "patient-1", wire.RolePatient)
		var got wire.Actor
		require.NoError(t, json.Unmarshal(first.Payload, &got), "RegisterActor payload")
		assert.Equal(t, "patient-1", got.ID, "registered actor id")
		assert.Equal(t, "HospitalMSP", got.Org, "registered actor org")
		assert.Equal(t, first.TxID, got.RegisteredTx, "registered actor tx")

		for name, tr := range map[string]*fabric.Transactor{"hospital": hospital, "research": research} {
			raw, err := tr.Evaluate(t.Context(), ledger.Proposal{Function: wire.FnGetActor, Args: []string{"patient-1"}})
			require.NoError(t, err, "%s GetActor", name)
			var read wire.Actor
			require.NoError(t, json.Unmarshal(raw, &read), "%s GetActor payload", name)
			assert.Equal(t, got, read, "%s GetActor", name)
		}
		info, err := research.Tx(t.Context(), first.TxID)
		require.NoError(t, err, "the research peer locates the hospital's transaction")
		assert.Equal(t, first.TxID, info.TxID, "research Tx: TxID")
		assert.Equal(t, first.Block, info.Block, "research Tx: block")
		assert.True(t, info.Timestamp.Equal(first.Timestamp), "research Tx: timestamp %v, want %v", info.Timestamp, first.Timestamp)
		assert.True(t, info.Valid, "research Tx: valid")
	})
}

func TestStoppedPeerIsUnavailable(t *testing.T) {
	network := testnet.StartFabricNetwork(t, testnet.FabricOptions{})
	hospital := connect(t, network.Profile, "hospital", func(c *fabric.Config) {
		c.EvaluateTimeout = 5 * time.Second
		c.EndorseTimeout = 5 * time.Second
	})
	before := registerActor(t, hospital, "operator-1", wire.RoleOperator)

	eventsCtx, stopEvents := context.WithTimeout(t.Context(), 5*time.Minute)
	defer stopEvents()
	events, err := hospital.Events(eventsCtx, before.Block)
	require.NoError(t, err, "Events")
	ev, ok := <-events
	require.True(t, ok, "event channel closed before the first event")
	require.Equal(t, before.TxID, ev.TxID, "transaction of the first event")

	require.NoError(t, network.Stop(t.Context(), "peer.hospital"))

	t.Run("calls to a stopped peer fail as unavailable", func(t *testing.T) {
		calls := []struct {
			name string
			call func() error
		}{
			{"evaluate", func() error {
				_, err := hospital.Evaluate(t.Context(), ledger.Proposal{Function: wire.FnGetActor, Args: []string{"operator-1"}})
				return err
			}},
			{"submit", func() error {
				_, err := hospital.Submit(t.Context(), ledger.Proposal{
					Function: wire.FnRegisterActor, Args: []string{actorArg(t, "operator-2", wire.RoleOperator)}, AsAdmin: true,
				})
				return err
			}},
			{"tx", func() error {
				_, err := hospital.Tx(t.Context(), before.TxID)
				return err
			}},
		}
		for _, c := range calls {
			start := time.Now()
			err := c.call()
			t.Logf("%s failed after %v: %v", c.name, time.Since(start).Round(time.Millisecond), err)
			assert.ErrorIs(t, err, ledger.ErrUnavailable, c.name)
		}
	})

	t.Run("the same transactor works again once the peer is back", func(t *testing.T) {
		require.NoError(t, network.Up(t.Context()))
		var lastErr error
		// The client reconnects with gRPC backoff; poll without a deadline
		// assertion, bounded by attempts.
		for range 30 {
			_, lastErr = hospital.Evaluate(t.Context(), ledger.Proposal{Function: wire.FnGetActor, Args: []string{"operator-1"}})
			if lastErr == nil {
				return
			}
			time.Sleep(time.Second)
		}
		require.NoError(t, lastErr, "GetActor after restart")
	})

	t.Run("the event stream resumes after the restart without repeating events", func(t *testing.T) {
		after := registerActor(t, hospital, "operator-3", wire.RoleOperator)
		for ev := range events {
			require.NotEqual(t, before.TxID, ev.TxID, "event of tx %s delivered twice", before.TxID)
			if ev.TxID == after.TxID {
				assert.Equal(t, after.Block, ev.Block, "event block")
				return
			}
		}
		require.Fail(t, "event stream closed", "closed before the event of tx %s", after.TxID)
	})

	t.Run("without the other organisation's peer writes are unavailable but reads work", func(t *testing.T) {
		require.NoError(t, network.Stop(t.Context(), "peer.research"))
		_, err := hospital.Submit(t.Context(), ledger.Proposal{
			Function: wire.FnRegisterActor, Args: []string{actorArg(t, "operator-4", wire.RoleOperator)}, AsAdmin: true,
		})
		t.Logf("submit without the research peer: %v", err)
		assert.ErrorIs(t, err, ledger.ErrUnavailable, "submit (both organisations must endorse)")
		_, err = hospital.Evaluate(t.Context(), ledger.Proposal{Function: wire.FnGetActor, Args: []string{"operator-1"}})
		assert.NoError(t, err, "GetActor on the hospital peer")
	})

	t.Run("a stopped chaincode server makes the ledger unavailable, not a refusal", func(t *testing.T) {
		require.NoError(t, network.Stop(t.Context(), "chaincode.hospital"))
		_, err := hospital.Evaluate(t.Context(), ledger.Proposal{Function: wire.FnGetActor, Args: []string{"operator-1"}})
		t.Logf("evaluate without the chaincode server: %v", err)
		require.ErrorIs(t, err, ledger.ErrUnavailable, "evaluate")
		var ccErr *ledger.ChaincodeError
		assert.NotErrorAs(t, err, &ccErr, "evaluate error is a refusal")
	})
}

// BenchmarkSubmit measures one RegisterActor from proposal to commit status
// on a one-orderer network (both organisations endorse).
func BenchmarkSubmit(b *testing.B) {
	network := testnet.StartFabricNetwork(b, testnet.FabricOptions{})
	tr := dial(b, network.Profile, "hospital", nil)
	defer func() { assert.NoError(b, tr.Close(), "Close") }()
	args := make([]string, b.N)
	for i := range args {
		args[i] = actorArg(b, fmt.Sprintf("bench-%d", i), wire.RolePatient)
	}
	b.ResetTimer()
	for i := range b.N {
		_, err := tr.Submit(b.Context(), ledger.Proposal{Function: wire.FnRegisterActor, Args: []string{args[i]}, AsAdmin: true})
		require.NoError(b, err, "Submit")
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/commit")
}
