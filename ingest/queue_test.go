package ingest

import (
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"github.com/medprov/medprov/internal/testkit"
	"github.com/medprov/medprov/wire"
)

func item(dev string, seq uint64, hash string) wire.ReadingInput {
	return wire.ReadingInput{DeviceID: dev, Seq: seq, Type: "heart_rate", Unit: "bpm", MeasuredAt: "2026-11-21T10:00:00Z", DataHash: hash}
}

// openTestQueue opens the queue at path and closes it when the test ends
// (Close is idempotent, so a test may also close it itself).
func openTestQueue(t *testing.T, path string, max int) (*Queue, []Record) {
	t.Helper()
	q, recs, err := OpenQueue(t.Context(), QueueConfig{Path: path, MaxPending: max})
	require.NoError(t, err, "OpenQueue")
	t.Cleanup(func() { assert.NoError(t, q.Close(), "closing the queue") })
	return q, recs
}

func TestQueueAppend(t *testing.T) {
	tests := []struct {
		name   string
		first  wire.ReadingInput
		second wire.ReadingInput
		check  func(t *testing.T, err error)
	}{
		{"a new seq is enqueued", item("d1", 1, "aa"), item("d1", 2, "bb"), func(t *testing.T, err error) {
			assert.NoError(t, err)
		}},
		{"an identical retry is a duplicate, not a conflict", item("d1", 1, "aa"), item("d1", 1, "aa"), func(t *testing.T, err error) {
			var d *DuplicateError
			require.ErrorAs(t, err, &d)
			assert.Equal(t, StatePending, d.Seen.State)
		}},
		{"the same seq with another hash is a conflict", item("d1", 1, "aa"), item("d1", 1, "cc"), func(t *testing.T, err error) {
			require.ErrorIs(t, err, ErrConflict)
		}},
		{"the same seq of another device is independent", item("d1", 1, "aa"), item("d2", 1, "aa"), func(t *testing.T, err error) {
			assert.NoError(t, err)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, _ := openTestQueue(t, filepath.Join(t.TempDir(), "q.db"), 10)
			errs, err := q.Append(t.Context(), []Record{{Item: tt.first}})
			require.NoError(t, err, "first append")
			require.NoError(t, errs[0], "first append")
			errs, err = q.Append(t.Context(), []Record{{Item: tt.second}})
			require.NoError(t, err, "second append")
			tt.check(t, errs[0])
		})
	}
}

func TestQueueSurvivesReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q.db")
	q, _ := openTestQueue(t, path, 100)
	recs := []Record{{Item: item("d1", 1, "a")}, {Item: item("d1", 2, "b")}, {Item: item("d1", 3, "c")}}
	_, err := q.Append(t.Context(), recs)
	require.NoError(t, err)
	require.NoError(t, q.Done(t.Context(), recs[1:2], []Outcome{{RecordID: recs[1].ID, State: StateRecorded}}))
	require.NoError(t, q.Close())
	q2, pending := openTestQueue(t, path, 100)
	require.Len(t, pending, 2, "pending after reopen: %+v, want seq 1 and 3", pending)
	require.Equal(t, uint64(1), pending[0].Item.Seq, "first pending seq")
	require.Equal(t, uint64(3), pending[1].Item.Seq, "second pending seq")
	assert.Equal(t, 2, q2.Pending(), "Pending()")
	s, err := q2.Lookup("d1", 2)
	if assert.NoError(t, err, "Lookup(d1,2)") {
		assert.Equal(t, StateRecorded, s.State, "Lookup(d1,2)")
	}
	// IDs keep increasing across restarts.
	next := []Record{{Item: item("d1", 4, "d")}}
	_, err = q2.Append(t.Context(), next)
	require.NoError(t, err)
	assert.Greater(t, next[0].ID, recs[2].ID, "ID after reopen")
}

func TestQueueRejectedSeqIsFreed(t *testing.T) {
	q, _ := openTestQueue(t, filepath.Join(t.TempDir(), "q.db"), 10)
	recs := []Record{{Item: item("d1", 1, "a")}}
	_, err := q.Append(t.Context(), recs)
	require.NoError(t, err)
	require.NoError(t, q.Done(t.Context(), recs[:1], []Outcome{{RecordID: recs[0].ID, State: StateRejected, Code: "forbidden"}}))
	errs, err := q.Append(t.Context(), []Record{{Item: item("d1", 1, "other")}})
	require.NoError(t, err, "re-use of a rejected seq")
	require.NoError(t, errs[0], "re-use of a rejected seq")
}

func TestQueueFull(t *testing.T) {
	q, _ := openTestQueue(t, filepath.Join(t.TempDir(), "q.db"), 2)
	_, err := q.Append(t.Context(), []Record{{Item: item("d", 1, "a")}, {Item: item("d", 2, "b")}})
	require.NoError(t, err)
	_, err = q.Append(t.Context(), []Record{{Item: item("d", 3, "c")}})
	require.ErrorIs(t, err, ErrQueueFull, "append beyond MaxPending")
	assert.Equal(t, 2, q.Pending(), "Pending() after refused append")
}

func TestQueueConcurrentAppendsGetUniqueIDs(t *testing.T) {
	q, _ := openTestQueue(t, filepath.Join(t.TempDir(), "q.db"), 100000)
	const workers, each = 16, 50
	var mu sync.Mutex
	ids := map[uint64]bool{}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// assert, not require: this is not the test's goroutine.
			for i := range each {
				recs := []Record{{Item: item(fmt.Sprintf("dev-%d", w), uint64(i), "h")}}
				errs, err := q.Append(t.Context(), recs)
				if !assert.NoError(t, err, "append") || !assert.NoError(t, errs[0], "append") {
					return
				}
				mu.Lock()
				ids[recs[0].ID] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	assert.Len(t, ids, workers*each, "distinct IDs")
	assert.Equal(t, workers*each, q.Pending(), "Pending()")
}

func TestQueueClosed(t *testing.T) {
	q, _ := openTestQueue(t, filepath.Join(t.TempDir(), "q.db"), 10)
	require.NoError(t, q.Close())
	_, err := q.Append(t.Context(), []Record{{Item: item("d", 1, "a")}})
	require.ErrorIs(t, err, ErrClosed, "append after Close")
}

func BenchmarkQueueAppendParallel(b *testing.B) {
	q, _, err := OpenQueue(b.Context(), QueueConfig{Path: filepath.Join(b.TempDir(), "q.db"), MaxPending: 1 << 30})
	require.NoError(b, err)
	b.Cleanup(func() { assert.NoError(b, q.Close(), "closing the queue") })
	var n uint64
	var mu sync.Mutex
	b.SetParallelism(32)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			mu.Lock()
			n++
			seq := n
			mu.Unlock()
			// assert, not require: RunParallel bodies are not the benchmark's goroutine.
			if _, err := q.Append(b.Context(), []Record{{Item: item("bench", seq, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")}}); !assert.NoError(b, err) {
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appends/s")
}

// benchItem is a reading record of realistic size: hex hashes, a DER
// signature in base64 and a CIDv1.
func benchItem(seq uint64) wire.ReadingInput {
	return wire.ReadingInput{
		DeviceID: "dev-000042", Seq: seq, Type: "heart_rate", Unit: "bpm", MeasuredAt: "2026-11-21T10:00:00Z",
		DataHash:   fmt.Sprintf("%064x", seq),
		Signature:  "MEUCIQDkz6h0b3Jw9b2pQ0tB7o0xvYt6c8bqk4l2f5nq8d7mJwIgYk8c1Qm9V0n0r4Jm6wq3b8Xh5uY2tQ7l1d9x3c0vZ2s=",
		CID:        "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku",
		CipherHash: fmt.Sprintf("%064x", seq*7),
		Size:       180,
	}
}

// BenchmarkQueueDone measures marking readings done as recorded, in
// batches of 500 as the batcher does: the write that follows every
// committed transaction. Appends are not timed. With a full retention,
// each Done also prunes as many readings as it retains. Without fsync, it
// shows the work apart from the disk's sync latency, which dominates and
// varies from run to run.
func BenchmarkQueueDone(b *testing.B) {
	for _, bb := range []struct {
		name   string
		cfg    QueueConfig
		noSync bool
	}{
		{"retention filling", QueueConfig{}, false},
		{"retention full", QueueConfig{RetainMax: 20000}, false},
		{"retention filling without fsync", QueueConfig{}, true},
		{"retention full without fsync", QueueConfig{RetainMax: 20000}, true},
	} {
		b.Run(bb.name, func(b *testing.B) {
			cfg := bb.cfg
			cfg.Path, cfg.MaxPending = filepath.Join(b.TempDir(), "q.db"), 1<<30
			q, _, err := OpenQueue(b.Context(), cfg)
			require.NoError(b, err)
			b.Cleanup(func() { assert.NoError(b, q.Close(), "closing the queue") })
			q.db.NoSync = bb.noSync
			const batch = 500
			seq, block := uint64(0), uint64(0)
			b.ResetTimer()
			for done := 0; done < b.N; done += batch {
				b.StopTimer()
				n := min(batch, b.N-done)
				recs := make([]Record, n)
				outs := make([]Outcome, n)
				block++
				for i := range recs {
					seq++
					recs[i] = Record{Item: benchItem(seq), PatientID: "pat-000042"}
				}
				_, err := q.Append(b.Context(), recs)
				require.NoError(b, err)
				for i := range recs {
					outs[i] = Outcome{RecordID: recs[i].ID, State: StateRecorded, TxID: fmt.Sprintf("%064x", block), Block: block}
				}
				b.StartTimer()
				require.NoError(b, q.Done(b.Context(), recs, outs))
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "readings/s")
		})
	}
}

// retainedBlocks lists the blocks of the retained readings, in key order.
func retainedBlocks(t *testing.T, q *Queue) []uint64 {
	t.Helper()
	var got []uint64
	require.NoError(t, q.scanRecent(0, func(m missing) error { got = append(got, m.block); return nil }))
	return got
}

func TestQueueRetentionIsBounded(t *testing.T) {
	start := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		cfg  QueueConfig
		// step is how far the clock moves between one block's Done and
		// the next.
		step       time.Duration
		wantBlocks []uint64
		wantProbes []uint64
	}{
		{
			name:       "the count bound keeps the newest readings",
			cfg:        QueueConfig{RetainMax: 5},
			wantBlocks: []uint64{4, 4, 5, 5, 5}, // blocks 1..5 of three readings each
			wantProbes: []uint64{4, 5},
		},
		{
			name:       "the age bound drops readings older than it",
			cfg:        QueueConfig{RetainFor: 90 * time.Minute},
			step:       time.Hour,
			wantBlocks: []uint64{4, 4, 4, 5, 5, 5},
			wantProbes: []uint64{4, 5},
		},
		{
			name:       "within both bounds every reading is kept",
			cfg:        QueueConfig{},
			step:       time.Minute,
			wantBlocks: []uint64{1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 5, 5, 5},
			wantProbes: []uint64{1, 2, 3, 4, 5},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := start
			cfg := tt.cfg
			cfg.Path, cfg.MaxPending, cfg.Now = filepath.Join(t.TempDir(), "q.db"), 100, func() time.Time { return now }
			q, _, err := OpenQueue(t.Context(), cfg)
			require.NoError(t, err)
			t.Cleanup(func() { assert.NoError(t, q.Close()) })
			for block := uint64(1); block <= 5; block++ {
				recs := appendN(t, q, "d1", int(block*10), 3)
				outs := make([]Outcome, len(recs))
				for i, r := range recs {
					outs[i] = Outcome{RecordID: r.ID, State: StateRecorded, TxID: fmt.Sprintf("tx%d", block), Block: block}
				}
				require.NoError(t, q.Done(t.Context(), recs, outs))
				now = now.Add(tt.step)
			}
			assert.Equal(t, tt.wantBlocks, retainedBlocks(t, q), "blocks of the retained readings")
			probes, err := q.blockProbes()
			require.NoError(t, err)
			var gotProbes []uint64
			for _, p := range probes {
				gotProbes = append(gotProbes, p.block)
			}
			assert.Equal(t, tt.wantProbes, gotProbes, "blocks with a transaction probe")
			hw, n, err := q.recentState()
			require.NoError(t, err)
			assert.Equal(t, len(tt.wantBlocks), n, "retained count")
			assert.Equal(t, highWater{block: 5, txID: "tx5"}, hw, "high-water mark")
			// Pruning the retention never forgets that a reading was recorded.
			s, err := q.Lookup("d1", 10)
			require.NoError(t, err)
			assert.Equal(t, Seen{State: StateRecorded, DataHash: "h10", Block: 1, bound: 1}, s, "memory of the oldest reading")
		})
	}
}

// TestQueueFromBeforeTheRetentionOpens: a queue file written before
// records were retained (its "pending" bucket holds exactly the records
// not yet done) opens with those records pending.
func TestQueueFromBeforeTheRetentionOpens(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q.db")
	db, err := bolt.Open(path, 0o600, nil)
	require.NoError(t, err)
	require.NoError(t, db.Update(func(tx *bolt.Tx) error {
		pend, err := tx.CreateBucket([]byte("pending"))
		require.NoError(t, err)
		seen, err := tx.CreateBucket([]byte("seen"))
		require.NoError(t, err)
		meta, err := tx.CreateBucket([]byte("meta"))
		require.NoError(t, err)
		rec := Record{ID: 7, Item: item("d1", 2, "bb")}
		require.NoError(t, pend.Put(idKey(7), testkit.MustJSON(t, rec)))
		require.NoError(t, seen.Put(seenKey("d1", 1), append([]byte{byte(StateRecorded)}, "aa"...)))
		require.NoError(t, seen.Put(seenKey("d1", 2), append([]byte{byte(StatePending)}, "bb"...)))
		return meta.Put(keyNextID, idKey(8))
	}))
	require.NoError(t, db.Close())

	for _, round := range []string{"first open", "second open"} {
		q, pending := openTestQueue(t, path, 10)
		require.Len(t, pending, 1, round)
		assert.Equal(t, uint64(7), pending[0].ID, round)
		s, err := q.Lookup("d1", 1)
		require.NoError(t, err)
		assert.Equal(t, StateRecorded, s.State, round)
		require.NoError(t, q.Close())
	}
}
