package ingest

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/medprov/medprov/ledger"
	"github.com/medprov/medprov/wire"
)

// faultyLedger is a Recorder that fails on demand: the faults the batcher
// must survive (an unreachable ledger, a refused transaction) cannot be
// caused on the embedded ledger. It records what it committed so the tests
// can count each reading exactly once.
type faultyLedger struct {
	mu          sync.Mutex
	unavailable int             // fail this many calls with ErrUnavailable
	refuse      map[uint64]bool // a batch containing one of these seqs is refused whole
	committed   map[string]int
	sizes       []int
}

func (f *faultyLedger) RecordReadings(ctx context.Context, items []wire.ReadingInput) (*BatchResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.unavailable > 0 {
		f.unavailable--
		return nil, fmt.Errorf("dial peer: %w", ledger.ErrUnavailable)
	}
	for _, it := range items {
		if f.refuse[it.Seq] {
			return nil, &ledger.ChaincodeError{Message: "[medprov:invalid] bad item"}
		}
	}
	f.sizes = append(f.sizes, len(items))
	res := &BatchResult{TxID: fmt.Sprintf("tx%d", len(f.sizes)), Block: uint64(len(f.sizes))}
	for _, it := range items {
		st := wire.StatusRecorded
		if f.committed[it.ID()] > 0 {
			st = wire.StatusExists
		}
		f.committed[it.ID()]++
		res.Results = append(res.Results, wire.ItemResult{ReadingID: it.ID(), Status: st})
	}
	return res, nil
}

func runBatcher(t *testing.T, q *Queue, rec Recorder, cfg BatcherConfig) (*Batcher, func()) {
	t.Helper()
	b := NewBatcher(q, rec, cfg, nil, nil)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { b.Run(ctx); close(done) }()
	return b, func() { cancel(); <-done }
}

func appendN(t *testing.T, q *Queue, dev string, from, n int) []Record {
	t.Helper()
	recs := make([]Record, n)
	for i := range recs {
		recs[i].Item = item(dev, uint64(from+i), fmt.Sprintf("h%d", from+i))
	}
	errs, err := q.Append(t.Context(), recs)
	require.NoError(t, err)
	for i, e := range errs {
		require.NoError(t, e, "record %d", i)
	}
	return recs
}

func waitAll(t *testing.T, chans []<-chan Outcome) []Outcome {
	t.Helper()
	outs := make([]Outcome, len(chans))
	for i, ch := range chans {
		select {
		case outs[i] = <-ch:
		case <-time.After(20 * time.Second):
			require.Failf(t, "no outcome", "no outcome for record %d within 20s", i)
		}
	}
	return outs
}

func TestBatcher(t *testing.T) {
	tests := []struct {
		name         string
		ledger       *faultyLedger
		n            int
		cfg          BatcherConfig
		wantRejected map[uint64]bool
		wantSizes    func([]int) bool
	}{
		{
			name:   "readings are cut into batches of at most MaxBatch",
			ledger: &faultyLedger{}, n: 1200, cfg: BatcherConfig{MaxBatch: 500, MaxWait: 10 * time.Millisecond},
			wantSizes: func(s []int) bool {
				total := 0
				for _, n := range s {
					if n > 500 {
						return false
					}
					total += n
				}
				return total == 1200
			},
		},
		{
			name:   "an unavailable ledger is retried until it answers",
			ledger: &faultyLedger{unavailable: 3}, n: 10, cfg: BatcherConfig{MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond},
		},
		{
			name:   "one refused item does not sink the others",
			ledger: &faultyLedger{refuse: map[uint64]bool{7: true}}, n: 20, cfg: BatcherConfig{MaxBatch: 20, MaxWait: 50 * time.Millisecond},
			wantRejected: map[uint64]bool{7: true},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.ledger.committed = map[string]int{}
			q, _ := openTestQueue(t, filepath.Join(t.TempDir(), "q.db"), 100000)
			b, stop := runBatcher(t, q, tt.ledger, tt.cfg)
			defer stop()
			recs := appendN(t, q, "d1", 0, tt.n)
			outs := waitAll(t, b.Add(recs, true))
			for i, o := range outs {
				seq := recs[i].Item.Seq
				want := StateRecorded
				if tt.wantRejected[seq] {
					want = StateRejected
				}
				assert.Equal(t, want, o.State, "seq %d", seq)
				if want == StateRecorded {
					assert.Equal(t, 1, tt.ledger.committed[recs[i].Item.ID()], "seq %d: times committed", seq)
				}
			}
			if tt.wantSizes != nil {
				assert.True(t, tt.wantSizes(tt.ledger.sizes), "batch sizes = %v", tt.ledger.sizes)
			}
			assert.Zero(t, q.Pending(), "Pending() after all outcomes")
		})
	}
}

func TestBatcherReplaysAfterRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q.db")
	q, _ := openTestQueue(t, path, 1000)
	// The ledger is down for the whole first life of the gateway.
	down := &faultyLedger{unavailable: 1 << 30, committed: map[string]int{}}
	b1, stop := runBatcher(t, q, down, BatcherConfig{MinBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond, MaxWait: time.Millisecond})
	recs := appendN(t, q, "d1", 0, 50)
	b1.Add(recs, false)
	time.Sleep(20 * time.Millisecond) // let it fail a few attempts; no assertion depends on timing
	stop()
	require.NoError(t, q.Close())

	q2, pending := openTestQueue(t, path, 1000)
	require.Len(t, pending, len(recs), "records replayed")
	up := &faultyLedger{committed: map[string]int{}}
	b, stop2 := runBatcher(t, q2, up, BatcherConfig{})
	defer stop2()
	outs := waitAll(t, b.Add(pending, true))
	for i, o := range outs {
		assert.Equal(t, StateRecorded, o.State, "record %d", i)
	}
	assert.Len(t, up.committed, len(recs), "readings on the ledger")
}

func TestTransient(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"an unavailable ledger is transient", fmt.Errorf("x: %w", ledger.ErrUnavailable), true},
		{"a deadline is transient", context.DeadlineExceeded, true},
		{"a refusal by the chaincode is final", &ledger.ChaincodeError{Message: "chaincode response 500, [medprov:invalid] bad batch"}, false},
		{"an endorsement failure without the chaincode's verdict is transient", &ledger.ChaincodeError{Message: "connection refused to chaincode server"}, true},
		{"an MVCC conflict is transient", &ledger.ChaincodeError{TxID: "t", Message: "transaction invalidated in block 9: MVCC_READ_CONFLICT"}, true},
		{"an unknown error is final", errors.New("boom"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, transient(tt.err), "transient(%v)", tt.err)
		})
	}
}

func TestLagIsTheAgeOfTheOldestWaitingRecord(t *testing.T) {
	q, _ := openTestQueue(t, filepath.Join(t.TempDir(), "q.db"), 100)
	b := NewBatcher(q, &faultyLedger{committed: map[string]int{}}, BatcherConfig{MaxBatch: 1, MaxWait: time.Hour}, nil, nil)
	require.Zero(t, b.Lag(), "empty batcher lag")
	old := time.Now().Add(-time.Minute)
	b.Add([]Record{{ID: 1, EnqueuedAt: old}, {ID: 2, EnqueuedAt: time.Now()}}, false)
	batch, _ := b.cut()
	require.Len(t, batch, 1, "records cut")
	// Record 1 left with the cut; record 2 is fresh, whatever the cut did.
	assert.LessOrEqual(t, b.Lag(), 10*time.Second, "lag after the old record was cut, want the fresh record's age")
	b.Add([]Record{{ID: 3, EnqueuedAt: old}}, false)
	b.cut() // record 2 leaves; the minute-old record 3 waits
	assert.GreaterOrEqual(t, b.Lag(), 50*time.Second, "lag with a minute-old record waiting, want about a minute")
}

func TestLoggableKeepsIDsOutOfLogs(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"a chaincode refusal is logged by its code only",
			fmt.Errorf("RecordReadings: %w", &ledger.ChaincodeError{TxID: "tx1", Message: "chaincode response 500, [medprov:forbidden] device dev-7 revoked"}),
			"chaincode refused: forbidden"},
		{"a chaincode error without a code is logged by its status",
			&ledger.ChaincodeError{Status: 500, Message: "endorsement of dev-7:1 failed"}, "chaincode error (status 500)"},
		{"a transport error is logged as it is", fmt.Errorf("dial peer: %w", ledger.ErrUnavailable), "dial peer: ledger unavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := loggable(tt.err)
			assert.Equal(t, tt.want, got)
			assert.NotContains(t, got, "dev-7")
		})
	}
}
