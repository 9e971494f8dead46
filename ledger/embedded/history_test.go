package embedded_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/opt"

	"github.com/medprov/medprov/ledger"
)

func TestHistoryResolvesValuesFromBlocks(t *testing.T) {
	l := newLedger(t)

	t.Run("blind writes of one key in one block keep their order and values", func(t *testing.T) {
		const writers = 12
		var (
			mu      sync.Mutex
			commits = map[string]*ledger.Commit{}
			values  = map[string]string{}
			wg      sync.WaitGroup
		)
		for i := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				v := "v" + strconv.Itoa(i)
				c, err := l.Submit(context.Background(), ledger.Proposal{Function: "Put", Args: []string{"shared", v}})
				if err != nil {
					t.Errorf("Put %s: %v", v, err)
					return
				}
				mu.Lock()
				commits[c.TxID] = c
				values[c.TxID] = v
				mu.Unlock()
			}()
		}
		wg.Wait()
		got := decode[[]Mod](t, evaluate(t, l, "History", "shared"))
		if len(got) != writers {
			t.Fatalf("history has %d entries, want %d", len(got), writers)
		}
		// position is where a transaction stands in the chain: (block, index).
		position := func(c *ledger.Commit) [2]uint64 {
			blk, err := l.Block(t.Context(), c.Block)
			if err != nil {
				t.Fatal(err)
			}
			for i, tx := range blk.Transactions {
				if tx.TxID == c.TxID {
					return [2]uint64{c.Block, uint64(i)}
				}
			}
			t.Fatalf("tx %s not in block %d", c.TxID, c.Block)
			return [2]uint64{}
		}
		var prev [2]uint64
		for i, m := range got {
			c := commits[m.TxID]
			if c == nil {
				t.Fatalf("history[%d] names unknown tx %s", i, m.TxID)
			}
			if want := values[m.TxID]; m.Value != want {
				t.Errorf("history[%d] of tx %s = %q, want %q", i, m.TxID, m.Value, want)
			}
			pos := position(c)
			if i > 0 && (pos[0] > prev[0] || pos[0] == prev[0] && pos[1] >= prev[1]) {
				t.Errorf("history[%d] is tx %d of block %d, after tx %d of block %d: not newest first", i, pos[1], pos[0], prev[1], prev[0])
			}
			prev = pos
		}
		if final := evaluate(t, l, "Get", "shared"); final != got[0].Value {
			t.Errorf("state = %q, newest history value = %q", final, got[0].Value)
		}
	})
	t.Run("a key among many written by one transaction resolves to its own value", func(t *testing.T) {
		c := submit(t, l, "Bulk", "p", "300", "40")
		for _, i := range []int{0, 149, 299} {
			got := decode[[]Mod](t, evaluate(t, l, "BulkHistory", "p", fmt.Sprintf("%08d", i)))
			if len(got) != 1 || got[0].TxID != c.TxID || got[0].IsDelete || len(got[0].Value) != 40 {
				t.Errorf("history of bulk key %d = %+v, want one 40-byte write by %s", i, got, c.TxID)
			}
		}
	})
	t.Run("history of a deleted key records the deletion without a value", func(t *testing.T) {
		submit(t, l, "Put", "gone", "here")
		del := submit(t, l, "Del", "gone")
		got := decode[[]Mod](t, evaluate(t, l, "History", "gone"))
		if len(got) != 2 || got[0].TxID != del.TxID || !got[0].IsDelete || got[0].Value != "" || got[1].Value != "here" {
			t.Errorf("history = %+v, want the deletion by %s, then here", got, del.TxID)
		}
	})
	t.Run("a key never written has no history", func(t *testing.T) {
		if got := decode[[]Mod](t, evaluate(t, l, "History", "never")); len(got) != 0 {
			t.Errorf("history = %+v, want none", got)
		}
	})
}

func TestHistoryRefusesABrokenPointer(t *testing.T) {
	dir := t.TempDir()
	l := openLedger(t, dir, nil)
	c := submit(t, l, "Put", "k", "v")
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// Turn the history entry of k into a deletion the block does not hold.
	editStore(t, dir, func(db *leveldb.DB) error {
		key := append([]byte{'h', 1, 'k'}, 0, 0, 0, 0, 0, 0, 0, byte(c.Block), 0, 0, 0, 0)
		if _, err := db.Get(key, nil); err != nil {
			return fmt.Errorf("history entry of k: %w", err)
		}
		return db.Put(key, []byte{1}, &opt.WriteOptions{Sync: true})
	})
	l = openLedger(t, dir, nil)
	t.Cleanup(func() { _ = l.Close() })
	_, err := l.Evaluate(t.Context(), ledger.Proposal{Function: "History", Args: []string{"k"}})
	var ce *ledger.ChaincodeError
	if !errors.As(err, &ce) || !contains(ce.Message, "disagree") {
		t.Errorf("History error = %v, want a refusal saying index and write set disagree", err)
	}
}

func TestHistorySurvivesRestartWithTimestamps(t *testing.T) {
	dir := t.TempDir()
	start := time.Date(2026, 3, 4, 5, 6, 7, 89, time.UTC)
	l := openLedger(t, dir, newFakeClock(start).Now)
	c1 := submit(t, l, "Put", "k", "one")
	c2 := submit(t, l, "Put", "k", "two")
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openLedger(t, dir, nil)
	t.Cleanup(func() { _ = l.Close() })
	got := decode[[]Mod](t, evaluate(t, l, "History", "k"))
	want := []Mod{
		{TxID: c2.TxID, Time: c2.Timestamp.UTC().Format(time.RFC3339Nano), Value: "two"},
		{TxID: c1.TxID, Time: c1.Timestamp.UTC().Format(time.RFC3339Nano), Value: "one"},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("history = %+v, want %+v", got, want)
	}
}
