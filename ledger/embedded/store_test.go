package embedded_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

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
			if err := os.WriteFile(filepath.Join(dir, "ledger.db"), []byte("bbolt pages"), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "a store with another format marker is refused", prepare: func(t *testing.T, dir string) {
			l := openLedger(t, dir, nil)
			submit(t, l, "Put", "k", "v")
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
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
				_ = l.Close()
				t.Fatal("New succeeded, want ErrStoreFormat")
			}
			if !errors.Is(err, embedded.ErrStoreFormat) {
				t.Errorf("New error = %v, want ErrStoreFormat", err)
			}
		})
	}
	t.Run("the refusal names the old file", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "ledger.db"), nil, 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := embedded.New(t.Context(), embedded.Config{Dir: dir, Chaincode: newChaincode(t), Logger: slog.New(slog.DiscardHandler)})
		if err == nil || !contains(err.Error(), filepath.Join(dir, "ledger.db")) {
			t.Errorf("New error = %v, want it to name %s", err, filepath.Join(dir, "ledger.db"))
		}
	})
}

// editStore0 creates the store directory and runs edit on it.
func editStore0(t *testing.T, dir string, edit func(db *leveldb.DB) error) {
	t.Helper()
	db, err := leveldb.OpenFile(filepath.Join(dir, embedded.StoreDir), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := edit(db); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
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
				_, err := l.Submit(context.Background(), ledger.Proposal{Function: "AddCounted", Args: []string{"carol", "w" + strconv.Itoa(w) + "-" + strconv.Itoa(i)}})
				if err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("AddCounted: %v", err)
	}
	got := decode[[]string](t, evaluate(t, l, "AllAssets", "carol"))
	if len(got) != workers*perWorker {
		t.Fatalf("carol has %d assets, want %d", len(got), workers*perWorker)
	}
	counts := map[string]bool{}
	for _, id := range got {
		v := evaluate(t, l, "GetAsset", "carol", id)
		if counts[v] {
			t.Errorf("two assets were added when carol had %s (a phantom read was committed)", v)
		}
		counts[v] = true
	}
	for n := range workers * perWorker {
		if !counts[strconv.Itoa(n)] {
			t.Errorf("no asset was added when carol had %d", n)
		}
	}
	if err := l.Verify(t.Context()); err != nil {
		t.Errorf("Verify: %v", err)
	}
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
				_, err := l.Evaluate(context.Background(), ledger.Proposal{Function: "History", Args: []string{"k"}})
				if err == nil {
					err = l.Verify(context.Background())
				}
				if err == nil {
					_, err = l.Block(context.Background(), 1)
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
	ch, err := l.Events(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("read racing Close: %v, want success or ErrUnavailable", err)
	}
	for range ch { // closed once the ledger is closed
	}
}
