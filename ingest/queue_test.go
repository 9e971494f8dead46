package ingest

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/medprov/medprov/wire"
)

func item(dev string, seq uint64, hash string) wire.ReadingInput {
	return wire.ReadingInput{DeviceID: dev, Seq: seq, Type: "heart_rate", Unit: "bpm", MeasuredAt: "2026-11-21T10:00:00Z", DataHash: hash}
}

func openTestQueue(t *testing.T, path string, max int) (*Queue, []Record) {
	t.Helper()
	q, recs, err := OpenQueue(t.Context(), QueueConfig{Path: path, MaxPending: max})
	if err != nil {
		t.Fatalf("OpenQueue: %v", err)
	}
	return q, recs
}

func TestQueueAppend(t *testing.T) {
	tests := []struct {
		name    string
		first   wire.ReadingInput
		second  wire.ReadingInput
		wantErr func(error) bool
	}{
		{"a new seq is enqueued", item("d1", 1, "aa"), item("d1", 2, "bb"), func(err error) bool { return err == nil }},
		{"an identical retry is a duplicate, not a conflict", item("d1", 1, "aa"), item("d1", 1, "aa"), func(err error) bool {
			var d *DuplicateError
			return errors.As(err, &d) && d.Seen.State == StatePending
		}},
		{"the same seq with another hash is a conflict", item("d1", 1, "aa"), item("d1", 1, "cc"), func(err error) bool { return errors.Is(err, ErrConflict) }},
		{"the same seq of another device is independent", item("d1", 1, "aa"), item("d2", 1, "aa"), func(err error) bool { return err == nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, _ := openTestQueue(t, filepath.Join(t.TempDir(), "q.db"), 10)
			defer q.Close()
			errs, err := q.Append(t.Context(), []Record{{Item: tt.first}})
			if err != nil || errs[0] != nil {
				t.Fatalf("first append: %v %v", err, errs)
			}
			errs, err = q.Append(t.Context(), []Record{{Item: tt.second}})
			if err != nil {
				t.Fatalf("second append: %v", err)
			}
			if !tt.wantErr(errs[0]) {
				t.Errorf("second append result = %v", errs[0])
			}
		})
	}
}

func TestQueueSurvivesReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q.db")
	q, _ := openTestQueue(t, path, 100)
	recs := []Record{{Item: item("d1", 1, "a")}, {Item: item("d1", 2, "b")}, {Item: item("d1", 3, "c")}}
	if _, err := q.Append(t.Context(), recs); err != nil {
		t.Fatal(err)
	}
	if err := q.Done(t.Context(), recs[1:2], []Outcome{{RecordID: recs[1].ID, State: StateRecorded}}); err != nil {
		t.Fatal(err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	q2, pending := openTestQueue(t, path, 100)
	defer q2.Close()
	if len(pending) != 2 || pending[0].Item.Seq != 1 || pending[1].Item.Seq != 3 {
		t.Fatalf("pending after reopen = %+v, want seq 1 and 3", pending)
	}
	if got := q2.Pending(); got != 2 {
		t.Errorf("Pending() = %d, want 2", got)
	}
	s, err := q2.Lookup("d1", 2)
	if err != nil || s.State != StateRecorded {
		t.Errorf("Lookup(d1,2) = %+v, %v; want recorded", s, err)
	}
	// IDs keep increasing across restarts.
	next := []Record{{Item: item("d1", 4, "d")}}
	if _, err := q2.Append(t.Context(), next); err != nil {
		t.Fatal(err)
	}
	if next[0].ID <= recs[2].ID {
		t.Errorf("ID after reopen = %d, want > %d", next[0].ID, recs[2].ID)
	}
}

func TestQueueRejectedSeqIsFreed(t *testing.T) {
	q, _ := openTestQueue(t, filepath.Join(t.TempDir(), "q.db"), 10)
	defer q.Close()
	recs := []Record{{Item: item("d1", 1, "a")}}
	if _, err := q.Append(t.Context(), recs); err != nil {
		t.Fatal(err)
	}
	if err := q.Done(t.Context(), recs[:1], []Outcome{{RecordID: recs[0].ID, State: StateRejected, Code: "forbidden"}}); err != nil {
		t.Fatal(err)
	}
	errs, err := q.Append(t.Context(), []Record{{Item: item("d1", 1, "other")}})
	if err != nil || errs[0] != nil {
		t.Fatalf("re-use of a rejected seq: %v %v", err, errs)
	}
}

func TestQueueFull(t *testing.T) {
	q, _ := openTestQueue(t, filepath.Join(t.TempDir(), "q.db"), 2)
	defer q.Close()
	if _, err := q.Append(t.Context(), []Record{{Item: item("d", 1, "a")}, {Item: item("d", 2, "b")}}); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Append(t.Context(), []Record{{Item: item("d", 3, "c")}}); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("append beyond MaxPending: err = %v, want ErrQueueFull", err)
	}
	if got := q.Pending(); got != 2 {
		t.Errorf("Pending() = %d after refused append, want 2", got)
	}
}

func TestQueueConcurrentAppendsGetUniqueIDs(t *testing.T) {
	q, _ := openTestQueue(t, filepath.Join(t.TempDir(), "q.db"), 100000)
	defer q.Close()
	const workers, each = 16, 50
	var mu sync.Mutex
	ids := map[uint64]bool{}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				recs := []Record{{Item: item(fmt.Sprintf("dev-%d", w), uint64(i), "h")}}
				errs, err := q.Append(t.Context(), recs)
				if err != nil || errs[0] != nil {
					t.Errorf("append: %v %v", err, errs)
					return
				}
				mu.Lock()
				ids[recs[0].ID] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(ids) != workers*each {
		t.Errorf("distinct IDs = %d, want %d", len(ids), workers*each)
	}
	if got := q.Pending(); got != workers*each {
		t.Errorf("Pending() = %d, want %d", got, workers*each)
	}
}

func TestQueueClosed(t *testing.T) {
	q, _ := openTestQueue(t, filepath.Join(t.TempDir(), "q.db"), 10)
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Append(t.Context(), []Record{{Item: item("d", 1, "a")}}); !errors.Is(err, ErrClosed) {
		t.Errorf("append after Close: %v, want ErrClosed", err)
	}
}

func BenchmarkQueueAppendParallel(b *testing.B) {
	q, _, err := OpenQueue(b.Context(), QueueConfig{Path: filepath.Join(b.TempDir(), "q.db"), MaxPending: 1 << 30})
	if err != nil {
		b.Fatal(err)
	}
	defer q.Close()
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
			if _, err := q.Append(b.Context(), []Record{{Item: item("bench", seq, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")}}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appends/s")
}
