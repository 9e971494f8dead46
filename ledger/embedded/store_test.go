package embedded_test

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/opt"

	"github.com/medprov/medprov/ledger"
	"github.com/medprov/medprov/ledger/embedded"
)

func TestNewRefusesOtherStoreFormats(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(t *testing.T, dir string)
	}{
		{name: "a bbolt ledger.db of an earlier version is refused", prepare: func(t *testing.T, dir string) {
			require.NoError(t, os.WriteFile(filepath.Join(dir, "ledger.db"), []byte("bbolt pages"), 0o600))
		}},
		{name: "a store with another format marker is refused", prepare: func(t *testing.T, dir string) {
			l := openLedger(t, dir, nil)
			submit(t, l, "Put", "k", "v")
			require.NoError(t, l.Close(), "Close")
			editStore(t, dir, func(db *leveldb.DB) error {
				return db.Put([]byte("mformat"), []byte("leveldb/0"), &opt.WriteOptions{Sync: true})
			})
		}},
		{name: "a store holding records without a format marker is refused", prepare: func(t *testing.T, dir string) {
			editStore0(t, dir, func(db *leveldb.DB) error {
				return db.Put([]byte("sk"), []byte("v"), &opt.WriteOptions{Sync: true})
			})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			tt.prepare(t, dir)
			l, err := embedded.New(t.Context(), embedded.Config{Dir: dir, Chaincode: newChaincode(t), Logger: slog.New(slog.DiscardHandler)})
			if err == nil {
				closeAtEnd(t, l)
			}
			require.Error(t, err, "New succeeded, want ErrStoreFormat")
			assert.ErrorIs(t, err, embedded.ErrStoreFormat, "New")
		})
	}
	t.Run("the refusal names the old file", func(t *testing.T) {
		dir := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(dir, "ledger.db"), nil, 0o600))
		_, err := embedded.New(t.Context(), embedded.Config{Dir: dir, Chaincode: newChaincode(t), Logger: slog.New(slog.DiscardHandler)})
		assert.ErrorContains(t, err, filepath.Join(dir, "ledger.db"), "New names the old file")
	})
}

// editStore0 creates the store directory and runs edit on it.
func editStore0(t *testing.T, dir string, edit func(db *leveldb.DB) error) {
	t.Helper()
	db, err := leveldb.OpenFile(filepath.Join(dir, embedded.StoreDir), nil)
	require.NoError(t, err, "create the store")
	require.NoError(t, edit(db), "edit the store")
	require.NoError(t, db.Close(), "close the store")
}

func TestRangeReadsAreValidated(t *testing.T) {
	// Every transaction counts the owner's assets with a range query and
	// adds one under a new key: only the range read can see the conflict
	// (a phantom), so a lost count means range validation failed.
	l := newLedger(t)
	const workers, perWorker = 6, 10
	var wg sync.WaitGroup
	errs := make(chan error, workers*perWorker)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWorker {
				_, err := l.Submit(t.Context(), ledger.Proposal{Function: "AddCounted", Args: []string{"carol", "w" + strconv.Itoa(w) + "-" + strconv.Itoa(i)}})
				if err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		assert.NoError(t, err, "AddCounted")
	}
	got := decode[[]string](t, evaluate(t, l, "AllAssets", "carol"))
	require.Len(t, got, workers*perWorker, "carol's assets")
	counts := map[string]bool{}
	for _, id := range got {
		v := evaluate(t, l, "GetAsset", "carol", id)
		assert.False(t, counts[v], "two assets were added when carol had %s (a phantom read was committed)", v)
		counts[v] = true
	}
	for n := range workers * perWorker {
		assert.True(t, counts[strconv.Itoa(n)], "no asset was added when carol had %d", n)
	}
	assert.NoError(t, l.Verify(t.Context()), "Verify")
}

func TestCloseDuringReads(t *testing.T) {
	// Reads racing Close either finish or fail with ErrUnavailable; none
	// touches the closed store.
	l := openLedger(t, t.TempDir(), nil)
	submit(t, l, "Put", "k", "v")
	submit(t, l, "Emit", "e", "Happened")
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				_, err := l.Evaluate(t.Context(), ledger.Proposal{Function: "History", Args: []string{"k"}})
				if err == nil {
					err = l.Verify(t.Context())
				}
				if err == nil {
					_, err = l.Block(t.Context(), 1)
				}
				if err != nil {
					if !errors.Is(err, ledger.ErrUnavailable) {
						errs <- err
					}
					return
				}
			}
		}()
	}
	ch, err := l.Events(t.Context(), 0)
	require.NoError(t, err, "Events")
	assert.NoError(t, l.Close(), "Close")
	wg.Wait()
	close(errs)
	for err := range errs {
		assert.NoError(t, err, "read racing Close: want success or ErrUnavailable")
	}
	for range ch { // closed once the ledger is closed
	}
}
