package ingest

import (
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

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
