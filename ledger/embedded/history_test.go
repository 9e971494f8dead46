package embedded_test

import (
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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
				c, err := l.Submit(t.Context(), ledger.Proposal{Function: "Put", Args: []string{"shared", v}})
				if !assert.NoError(t, err, "Put %s", v) {
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
		require.Len(t, got, writers, "history entries")
		// position is where a transaction stands in the chain: (block, index).
		position := func(c *ledger.Commit) [2]uint64 {
			blk, err := l.Block(t.Context(), c.Block)
			require.NoError(t, err, "Block %d", c.Block)
			for i, tx := range blk.Transactions {
				if tx.TxID == c.TxID {
					return [2]uint64{c.Block, uint64(i)}
				}
			}
			require.Failf(t, "transaction not in its block", "tx %s not in block %d", c.TxID, c.Block)
			return [2]uint64{}
		}
		var prev [2]uint64
		for i, m := range got {
			c := commits[m.TxID]
			require.NotNil(t, c, "history[%d] names unknown tx %s", i, m.TxID)
			assert.Equal(t, values[m.TxID], m.Value, "history[%d] of tx %s", i, m.TxID)
			pos := position(c)
			if i > 0 {
				assert.True(t, pos[0] < prev[0] || pos[0] == prev[0] && pos[1] < prev[1],
					"history[%d] is tx %d of block %d, after tx %d of block %d: not newest first", i, pos[1], pos[0], prev[1], prev[0])
			}
			prev = pos
		}
		assert.Equal(t, got[0].Value, evaluate(t, l, "Get", "shared"), "state is the newest history value")
	})
	t.Run("a key among many written by one transaction resolves to its own value", func(t *testing.T) {
		c := submit(t, l, "Bulk", "p", "300", "40")
		for _, i := range []int{0, 149, 299} {
			got := decode[[]Mod](t, evaluate(t, l, "BulkHistory", "p", fmt.Sprintf("%08d", i)))
			if assert.Len(t, got, 1, "history of bulk key %d", i) {
				assert.Equal(t, c.TxID, got[0].TxID, "writer of bulk key %d", i)
				assert.False(t, got[0].IsDelete, "bulk key %d deleted", i)
				assert.Len(t, got[0].Value, 40, "value of bulk key %d", i)
			}
		}
	})
	t.Run("history of a deleted key records the deletion without a value", func(t *testing.T) {
		submit(t, l, "Put", "gone", "here")
		del := submit(t, l, "Del", "gone")
		got := decode[[]Mod](t, evaluate(t, l, "History", "gone"))
		require.Len(t, got, 2, "history entries")
		assert.Equal(t, Mod{TxID: del.TxID, Time: got[0].Time, IsDelete: true}, got[0], "the deletion, without a value")
		assert.Equal(t, "here", got[1].Value, "the write before the deletion")
	})
	t.Run("a key never written has no history", func(t *testing.T) {
		assert.Empty(t, decode[[]Mod](t, evaluate(t, l, "History", "never")), "history")
	})
}

func TestHistoryRefusesABrokenPointer(t *testing.T) {
	dir := t.TempDir()
	l := openLedger(t, dir, nil)
	c := submit(t, l, "Put", "k", "v")
	require.NoError(t, l.Close(), "Close")
	// Turn the history entry of k into a deletion the block does not hold.
	editStore(t, dir, func(db *leveldb.DB) error {
		key := append([]byte{'h', 1, 'k'}, 0, 0, 0, 0, 0, 0, 0, byte(c.Block), 0, 0, 0, 0)
		if _, err := db.Get(key, nil); err != nil {
			return fmt.Errorf("history entry of k: %w", err)
		}
		return db.Put(key, []byte{1}, &opt.WriteOptions{Sync: true})
	})
	l = openLedger(t, dir, nil)
	closeAtEnd(t, l)
	_, err := l.Evaluate(t.Context(), ledger.Proposal{Function: "History", Args: []string{"k"}})
	var ce *ledger.ChaincodeError
	require.ErrorAs(t, err, &ce)
	assert.Contains(t, ce.Message, "disagree", "the refusal says index and write set disagree")
}

func TestHistorySurvivesRestartWithTimestamps(t *testing.T) {
	dir := t.TempDir()
	start := time.Date(2026, 3, 4, 5, 6, 7, 89, time.UTC)
	l := openLedger(t, dir, newFakeClock(start).Now)
	c1 := submit(t, l, "Put", "k", "one")
	c2 := submit(t, l, "Put", "k", "two")
	require.NoError(t, l.Close(), "Close")
	l = openLedger(t, dir, nil)
	closeAtEnd(t, l)
	got := decode[[]Mod](t, evaluate(t, l, "History", "k"))
	want := []Mod{
		{TxID: c2.TxID, Time: c2.Timestamp.UTC().Format(time.RFC3339Nano), Value: "two"},
		{TxID: c1.TxID, Time: c1.Timestamp.UTC().Format(time.RFC3339Nano), Value: "one"},
	}
	assert.Equal(t, want, got, "history")
}
