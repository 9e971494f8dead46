package fabric_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/medprov/medprov/wire"

	"github.com/medprov/medprov/envelope"
	"github.com/medprov/medprov/internal/testnet"
	"github.com/medprov/medprov/ledger"
	"github.com/medprov/medprov/ledger/fabric"
)

// connect opens a Transactor for one organisation of the network.
func connect(t *testing.T, profilePath, org string, tune func(*fabric.Config)) *fabric.Transactor {
	t.Helper()
	profile, err := fabric.LoadProfile(profilePath)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := profile.Config(org)
	if err != nil {
		t.Fatal(err)
	}
	if tune != nil {
		tune(&cfg)
	}
	tr, err := fabric.New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := tr.Close(); err != nil {
			t.Error(err)
		}
	})
	return tr
}

// actorArg returns RegisterActor's argument for a new actor with a fresh key.
func actorArg(t testing.TB, id, role string) string {
	t.Helper()
	key, err := envelope.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := envelope.MarshalPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	arg, err := json.Marshal(map[string]string{"id": id, "role": role, "publicKey": string(pub)})
	if err != nil {
		t.Fatal(err)
	}
	return string(arg)
}

func registerActor(t *testing.T, tr ledger.Transactor, id, role string) *ledger.Commit {
	t.Helper()
	c, err := tr.Submit(t.Context(), ledger.Proposal{
		Function: "RegisterActor",
		Args:     []string{actorArg(t, id, role)},
		AsAdmin:  true,
	})
	if err != nil {
		t.Fatalf("RegisterActor %s: %v", id, err)
	}
	return c
}

func TestTransactorAgainstFabric(t *testing.T) {
	profile := testnet.StartFabric(t)
	hospital := connect(t, profile, "hospital", nil)
	research := connect(t, profile, "ResearchMSP", nil)

	first := registerActor(t, hospital, "patient-1", "patient")

	t.Run("an admin registers an actor that both organisations read back", func(t *testing.T) {
		var got wire.Actor
		if err := json.Unmarshal(first.Payload, &got); err != nil {
			t.Fatalf("RegisterActor payload: %v", err)
		}
		if got.ID != "patient-1" || got.Org != "HospitalMSP" || got.RegisteredTx != first.TxID {
			t.Errorf("registered actor = %+v, want id patient-1, org HospitalMSP, tx %s", got, first.TxID)
		}
		if first.Block == 0 || first.Timestamp.IsZero() {
			t.Errorf("commit = block %d at %v, want a block after genesis and a timestamp", first.Block, first.Timestamp)
		}
		for name, tr := range map[string]*fabric.Transactor{"hospital": hospital, "research": research} {
			raw, err := tr.Evaluate(t.Context(), ledger.Proposal{Function: "GetActor", Args: []string{"patient-1"}})
			if err != nil {
				t.Fatalf("%s GetActor: %v", name, err)
			}
			var read wire.Actor
			if err := json.Unmarshal(raw, &read); err != nil {
				t.Fatalf("%s GetActor payload: %v", name, err)
			}
			if read.ID != got.ID || read.PublicKey != got.PublicKey || read.RegisteredTx != first.TxID {
				t.Errorf("%s GetActor = %+v, want %+v", name, read, got)
			}
		}
	})

	t.Run("refusals are chaincode errors carrying the medprov code", func(t *testing.T) {
		tests := []struct {
			name     string
			submit   bool
			proposal ledger.Proposal
			wantCode wire.Code
		}{
			{
				name:     "a client identity may not register actors",
				submit:   true,
				proposal: ledger.Proposal{Function: "RegisterActor", Args: []string{actorArg(t, "patient-2", "patient")}},
				wantCode: wire.CodeForbidden,
			},
			{
				name:     "a duplicate actor id is a conflict",
				submit:   true,
				proposal: ledger.Proposal{Function: "RegisterActor", Args: []string{actorArg(t, "patient-1", "patient")}, AsAdmin: true},
				wantCode: wire.CodeConflict,
			},
			{
				name:     "an unknown actor is not found",
				proposal: ledger.Proposal{Function: "GetActor", Args: []string{"nobody"}},
				wantCode: wire.CodeNotFound,
			},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				var err error
				if tc.submit {
					_, err = hospital.Submit(t.Context(), tc.proposal)
				} else {
					_, err = hospital.Evaluate(t.Context(), tc.proposal)
				}
				var ccErr *ledger.ChaincodeError
				if !errors.As(err, &ccErr) {
					t.Fatalf("error = %v, want *ledger.ChaincodeError", err)
				}
				parsed, ok := wire.ParseError(ccErr.Message)
				if !ok || parsed.Code != tc.wantCode {
					t.Errorf("message %q: code %v (marker found: %v), want %s", ccErr.Message, parsed, ok, tc.wantCode)
				}
			})
		}
	})

	second := registerActor(t, hospital, "researcher-1", "researcher")

	t.Run("events arrive in block order from the start block", func(t *testing.T) {
		tests := []struct {
			name   string
			start  uint64
			wantTx []string
		}{
			{"from the first registration", first.Block, []string{first.TxID, second.TxID}},
			{"from the second registration", second.Block, []string{second.TxID}},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
				defer cancel()
				events, err := hospital.Events(ctx, tc.start)
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for len(got) < len(tc.wantTx) {
					ev, ok := <-events
					if !ok {
						t.Fatalf("event channel closed after %v, want %v", got, tc.wantTx)
					}
					if ev.Block < tc.start {
						t.Errorf("event from block %d, before start block %d", ev.Block, tc.start)
					}
					if ev.Name != wire.EventActorRegistered {
						continue
					}
					got = append(got, ev.TxID)
				}
				if fmt.Sprint(got) != fmt.Sprint(tc.wantTx) {
					t.Errorf("ActorRegistered transactions = %v, want %v", got, tc.wantTx)
				}
			})
		}
	})

	t.Run("Tx locates a committed transaction", func(t *testing.T) {
		info, err := research.Tx(t.Context(), second.TxID)
		if err != nil {
			t.Fatal(err)
		}
		want := ledger.TxInfo{TxID: second.TxID, Block: second.Block, Timestamp: second.Timestamp, Valid: true}
		if info.TxID != want.TxID || info.Block != want.Block || !info.Timestamp.Equal(want.Timestamp) || info.Valid != want.Valid {
			t.Errorf("Tx = %+v, want %+v", *info, want)
		}
	})

	t.Run("Tx of an unknown transaction is not found", func(t *testing.T) {
		_, err := hospital.Tx(t.Context(), "0000000000000000000000000000000000000000000000000000000000000000")
		if !errors.Is(err, ledger.ErrNotFound) {
			t.Errorf("error = %v, want ledger.ErrNotFound", err)
		}
	})
}

func TestStoppedPeerIsUnavailable(t *testing.T) {
	network := testnet.StartFabricNetwork(t, testnet.FabricOptions{})
	hospital := connect(t, network.Profile, "hospital", func(c *fabric.Config) {
		c.EvaluateTimeout = 5 * time.Second
		c.EndorseTimeout = 5 * time.Second
	})
	before := registerActor(t, hospital, "operator-1", "operator")

	eventsCtx, stopEvents := context.WithTimeout(t.Context(), 5*time.Minute)
	defer stopEvents()
	events, err := hospital.Events(eventsCtx, before.Block)
	if err != nil {
		t.Fatal(err)
	}
	if ev := <-events; ev.TxID != before.TxID {
		t.Fatalf("first event is from tx %s, want %s", ev.TxID, before.TxID)
	}

	if err := network.Stop(t.Context(), "peer.hospital"); err != nil {
		t.Fatal(err)
	}

	t.Run("calls to a stopped peer fail as unavailable", func(t *testing.T) {
		calls := map[string]func() error{
			"evaluate": func() error {
				_, err := hospital.Evaluate(t.Context(), ledger.Proposal{Function: "GetActor", Args: []string{"operator-1"}})
				return err
			},
			"submit": func() error {
				_, err := hospital.Submit(t.Context(), ledger.Proposal{
					Function: "RegisterActor", Args: []string{actorArg(t, "operator-2", "operator")}, AsAdmin: true,
				})
				return err
			},
			"tx": func() error {
				_, err := hospital.Tx(t.Context(), before.TxID)
				return err
			},
		}
		for name, call := range calls {
			start := time.Now()
			err := call()
			t.Logf("%s failed after %v: %v", name, time.Since(start).Round(time.Millisecond), err)
			if !errors.Is(err, ledger.ErrUnavailable) {
				t.Errorf("%s error = %v, want ledger.ErrUnavailable", name, err)
			}
		}
	})

	t.Run("the same transactor works again once the peer is back", func(t *testing.T) {
		if err := network.Up(t.Context()); err != nil {
			t.Fatal(err)
		}
		var lastErr error
		// The client reconnects with gRPC backoff; poll without a deadline
		// assertion, bounded by attempts.
		for range 30 {
			_, lastErr = hospital.Evaluate(t.Context(), ledger.Proposal{Function: "GetActor", Args: []string{"operator-1"}})
			if lastErr == nil {
				return
			}
			time.Sleep(time.Second)
		}
		t.Fatalf("GetActor after restart: %v", lastErr)
	})

	t.Run("the event stream resumes after the restart without repeating events", func(t *testing.T) {
		after := registerActor(t, hospital, "operator-3", "operator")
		for ev := range events {
			if ev.TxID == before.TxID {
				t.Fatalf("event of tx %s delivered twice", before.TxID)
			}
			if ev.TxID == after.TxID {
				if ev.Block != after.Block {
					t.Errorf("event block = %d, want %d", ev.Block, after.Block)
				}
				return
			}
		}
		t.Fatalf("event stream closed before the event of tx %s", after.TxID)
	})

	t.Run("without the other organisation's peer writes are unavailable but reads work", func(t *testing.T) {
		if err := network.Stop(t.Context(), "peer.research"); err != nil {
			t.Fatal(err)
		}
		_, err := hospital.Submit(t.Context(), ledger.Proposal{
			Function: "RegisterActor", Args: []string{actorArg(t, "operator-4", "operator")}, AsAdmin: true,
		})
		t.Logf("submit without the research peer: %v", err)
		if !errors.Is(err, ledger.ErrUnavailable) {
			t.Errorf("submit error = %v, want ledger.ErrUnavailable (both organisations must endorse)", err)
		}
		if _, err := hospital.Evaluate(t.Context(), ledger.Proposal{Function: "GetActor", Args: []string{"operator-1"}}); err != nil {
			t.Errorf("GetActor on the hospital peer: %v", err)
		}
	})

	t.Run("a stopped chaincode server makes the ledger unavailable, not a refusal", func(t *testing.T) {
		if err := network.Stop(t.Context(), "chaincode.hospital"); err != nil {
			t.Fatal(err)
		}
		_, err := hospital.Evaluate(t.Context(), ledger.Proposal{Function: "GetActor", Args: []string{"operator-1"}})
		t.Logf("evaluate without the chaincode server: %v", err)
		var ccErr *ledger.ChaincodeError
		if !errors.Is(err, ledger.ErrUnavailable) || errors.As(err, &ccErr) {
			t.Errorf("evaluate error = %v, want ledger.ErrUnavailable", err)
		}
	})
}

// BenchmarkSubmit measures one RegisterActor from proposal to commit status
// on a one-orderer network (both organisations endorse).
func BenchmarkSubmit(b *testing.B) {
	network := testnet.StartFabricNetwork(b, testnet.FabricOptions{})
	profile, err := fabric.LoadProfile(network.Profile)
	if err != nil {
		b.Fatal(err)
	}
	cfg, err := profile.Config("hospital")
	if err != nil {
		b.Fatal(err)
	}
	tr, err := fabric.New(b.Context(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer tr.Close()
	args := make([]string, b.N)
	for i := range args {
		args[i] = actorArg(b, fmt.Sprintf("bench-%d", i), "patient")
	}
	b.ResetTimer()
	for i := range b.N {
		if _, err := tr.Submit(b.Context(), ledger.Proposal{Function: "RegisterActor", Args: []string{args[i]}, AsAdmin: true}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/commit")
}
