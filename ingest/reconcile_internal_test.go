package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/medprov/medprov/ledger"
	"github.com/medprov/medprov/wire"
)

func TestSeenEncoding(t *testing.T) {
	tests := []struct {
		name string
		in   Seen
	}{
		{"a pending reading has no block", Seen{State: StatePending, DataHash: "aa"}},
		{"a recorded reading keeps its block", Seen{State: StateRecorded, DataHash: "bb", Block: 7, bound: 7}},
		{"a reading found recorded earlier keeps a bound", Seen{State: StateRecorded, DataHash: "cc", bound: 9}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got Seen
			require.NoError(t, decodeSeen(encodeSeen(tt.in), &got))
			assert.Equal(t, tt.in, got)
		})
	}
	t.Run("a memory written before blocks were kept still reads", func(t *testing.T) {
		var got Seen
		require.NoError(t, decodeSeen(append([]byte{byte(StateRecorded)}, "dd"...), &got))
		assert.Equal(t, Seen{State: StateRecorded, DataHash: "dd"}, got)
	})
}

func TestIntactPrefix(t *testing.T) {
	for n := range 6 {
		for intact := range n + 1 {
			t.Run(fmt.Sprintf("%d of %d blocks intact are found", intact, n), func(t *testing.T) {
				asked := 0
				got, err := intactPrefix(n, func(i int) (bool, error) { asked++; return i < intact, nil })
				require.NoError(t, err)
				assert.Equal(t, intact, got)
				assert.LessOrEqual(t, asked, 3, "lookups for at most 5 blocks")
			})
		}
	}
}

// unreliableLedger answers Tx with the faults a check must survive, which
// the embedded ledger cannot be made to produce: unreachable for a while,
// or refusing the query. It records every batch it is asked to commit.
type unreliableLedger struct {
	mu          sync.Mutex
	unavailable int   // fail this many Tx calls with ErrUnavailable
	refuse      error // then fail every Tx call with this, if set
	txCalls     int
	committed   []string
}

func (u *unreliableLedger) Tx(_ context.Context, txID string) (*ledger.TxInfo, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.txCalls++
	if u.unavailable > 0 {
		u.unavailable--
		return nil, fmt.Errorf("dial peer: %w", ledger.ErrUnavailable)
	}
	if u.refuse != nil {
		return nil, u.refuse
	}
	return &ledger.TxInfo{TxID: txID, Block: 1, Valid: true}, nil
}

func (u *unreliableLedger) Submit(_ context.Context, p ledger.Proposal) (*ledger.Commit, error) {
	var in wire.BatchInput
	if err := json.Unmarshal([]byte(p.Args[0]), &in); err != nil {
		return nil, err
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	res := wire.BatchResult{TxID: "tx2"}
	for i, it := range in.Readings {
		u.committed = append(u.committed, it.ID())
		res.Results = append(res.Results, wire.ItemResult{Index: i, ReadingID: it.ID(), Status: wire.StatusRecorded})
	}
	b, err := json.Marshal(res)
	return &ledger.Commit{TxID: "tx2", Block: 2, Payload: b}, err
}

func (u *unreliableLedger) Evaluate(context.Context, ledger.Proposal) ([]byte, error) {
	return nil, errors.New("not used")
}

func (u *unreliableLedger) Events(context.Context, uint64) (<-chan ledger.Event, error) {
	return nil, errors.New("not used")
}

func (u *unreliableLedger) Close() error { return nil }

type plainBlobs struct{}

func (plainBlobs) PutMany(_ context.Context, blobs [][]byte) ([]string, error) {
	cids := make([]string, len(blobs))
	for i := range blobs {
		cids[i] = fmt.Sprintf("cid-%d", i)
	}
	return cids, nil
}

type plainSealer struct{}

func (plainSealer) Seal(_ context.Context, _, _ string, p []byte) ([]byte, error) { return p, nil }

func TestReconcileWithAnUnreliableLedger(t *testing.T) {
	tests := []struct {
		name    string
		ledger  *unreliableLedger
		wantErr bool
		wantTx  int
	}{
		{"an unreachable ledger is asked again until it answers", &unreliableLedger{unavailable: 2}, false, 3},
		{"a ledger that refuses the check is reported and batching starts anyway", &unreliableLedger{refuse: errors.New("access denied")}, true, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "q.db")
			q, _ := openTestQueue(t, path, 100)
			recs := appendN(t, q, "d1", 1, 3)
			outs := make([]Outcome, len(recs))
			for i, r := range recs {
				outs[i] = Outcome{RecordID: r.ID, State: StateRecorded, TxID: "tx1", Block: 1}
			}
			require.NoError(t, q.Done(t.Context(), recs, outs))
			require.NoError(t, q.Close())

			p, err := Open(t.Context(), Config{Ledger: tt.ledger, Blobs: plainBlobs{}, Sealer: plainSealer{},
				Queue: QueueConfig{Path: path}, Batcher: BatcherConfig{MinBackoff: 1, MaxBackoff: 2}})
			require.NoError(t, err)
			t.Cleanup(func() { assert.NoError(t, p.Close()) })
			got, err := p.AwaitReconciled(t.Context())
			require.NoError(t, err)
			assert.True(t, got.Done, "done")
			assert.Equal(t, tt.wantErr, got.Err != nil, "error: %v", got.Err)
			assert.Zero(t, got.Resubmitted, "resubmitted")
			if !tt.wantErr {
				assert.Equal(t, 3, got.Checked, "checked")
			}
			tt.ledger.mu.Lock()
			assert.Equal(t, tt.wantTx, tt.ledger.txCalls, "Tx lookups")
			tt.ledger.mu.Unlock()

			rc, err := p.Submit(t.Context(), []Reading{{PatientID: "p1", Payload: []byte("x"), DataHash: "h9", DeviceID: "d1", Seq: 9}}, true)
			require.NoError(t, err)
			o := p.Await(t.Context(), rc)
			assert.Equal(t, StateRecorded, o[0].State, "a new reading is recorded after the check")
		})
	}
}
