package embedded_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/opt"

	"github.com/medprov/medprov/internal/testkit"
	"github.com/medprov/medprov/ledger"
	"github.com/medprov/medprov/ledger/embedded"
	"github.com/medprov/medprov/wire"
)

// compositeKey is the chaincode's composite key of objectType and attrs.
func compositeKey(objectType string, attrs ...string) string {
	return "\x00" + objectType + "\x00" + strings.Join(attrs, "\x00") + "\x00"
}

// replaceInState replaces old with new in the stored value of state key.
func replaceInState(t *testing.T, dir, key, old, new string) {
	t.Helper()
	rewrite(t, dir, embedded.StateKey(key), func(b []byte) []byte {
		require.Contains(t, string(b), old, "state record")
		return bytes.Replace(b, []byte(old), []byte(new), 1)
	})
}

// TestStateEditsAreFound edits current state, the history index and the
// indexes directly in the stopped ledger's store, as someone with access
// to its files would, and checks that Verify (on the running ledger) and
// VerifyDir (offline) report each edit, naming the key's object type but
// none of its IDs.
func TestStateEditsAreFound(t *testing.T) {
	pristine := t.TempDir()
	m := newMedprov(t, pristine)
	pop := m.populate()
	researcherKey := compositeKey("actor", pop.researcher.id)
	consentKey := compositeKey("consent", pop.consentID)
	got, err := m.l.Evaluate(t.Context(), ledger.Proposal{Function: wire.FnGetConsent, Args: []string{pop.consentID}})
	require.NoError(t, err, "GetConsent")
	require.Contains(t, string(got), `"status":"revoked"`, "consent before tampering")
	require.NoError(t, m.l.Verify(t.Context()), "Verify before tampering")
	m.close()

	tests := []struct {
		name       string
		edit       func(t *testing.T, dir string)
		takeEffect *ledger.Proposal // a query that shows the edit took effect
		shows      string
		block      uint64
		objectType string
	}{
		{
			name: "a researcher made regulator is found",
			edit: func(t *testing.T, dir string) {
				replaceInState(t, dir, researcherKey, `"role":"researcher"`, `"role":"regulator"`)
			},
			takeEffect: &ledger.Proposal{Function: wire.FnGetActor, Args: []string{pop.researcher.id}},
			shows:      `"role":"regulator"`,
			block:      pop.researcher.block, objectType: "actor",
		},
		{
			name: "a revoked consent set back to active is found",
			edit: func(t *testing.T, dir string) {
				replaceInState(t, dir, consentKey, `"status":"revoked"`, `"status":"active"`)
			},
			takeEffect: &ledger.Proposal{Function: wire.FnGetConsent, Args: []string{pop.consentID}},
			shows:      `"status":"active"`,
			block:      pop.revoked, objectType: "consent",
		},
		{
			name: "a state record carrying another version is found",
			edit: func(t *testing.T, dir string) {
				rewrite(t, dir, embedded.StateKey(researcherKey), func(b []byte) []byte {
					b[7]++ // the block number of the version
					return b
				})
			},
			block: pop.researcher.block, objectType: "actor",
		},
		{
			name: "a deleted state record is found",
			edit: func(t *testing.T, dir string) {
				editStore(t, dir, func(db *leveldb.DB) error {
					return db.Delete(embedded.StateKey(consentKey), &opt.WriteOptions{Sync: true})
				})
			},
			block: pop.revoked, objectType: "consent",
		},
		{
			name: "an added state record is found",
			edit: func(t *testing.T, dir string) {
				editStore(t, dir, func(db *leveldb.DB) error {
					v := append(make([]byte, 12), `{"docType":"actor","id":"mallory","role":"regulator"}`...)
					v[7] = 3
					return db.Put(embedded.StateKey(compositeKey("actor", "mallory")), v, &opt.WriteOptions{Sync: true})
				})
			},
			block: 3, objectType: "actor",
		},
		{
			name: "a deleted history entry is found",
			edit: func(t *testing.T, dir string) {
				editStore(t, dir, func(db *leveldb.DB) error {
					return db.Delete(embedded.HistoryKey(consentKey, pop.revoked, 0), &opt.WriteOptions{Sync: true})
				})
			},
			block: pop.revoked, objectType: "consent",
		},
		{
			name: "a history entry turned into a deletion is found",
			edit: func(t *testing.T, dir string) {
				rewrite(t, dir, embedded.HistoryKey(researcherKey, pop.researcher.block, 0), func([]byte) []byte { return []byte{1} })
			},
			block: pop.researcher.block, objectType: "actor",
		},
		{
			name: "an added transaction index entry is found",
			edit: func(t *testing.T, dir string) {
				editStore(t, dir, func(db *leveldb.DB) error {
					loc, err := db.Get(embedded.TxKey(firstTxID(t, db, 2)), nil)
					if err != nil {
						return err
					}
					return db.Put(embedded.TxKey("forged-tx"), loc, &opt.WriteOptions{Sync: true})
				})
			},
			block: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := testkit.CopyDir(t, pristine)
			tt.edit(t, dir)

			_, err := embedded.VerifyDir(t.Context(), dir)
			assertTamperedAt(t, err, tt.block, tt.objectType, "VerifyDir")
			l, err := openMedprov(t, dir)
			require.NoError(t, err, "New: state edits are for Verify to find")
			closeAtEnd(t, l)
			if tt.takeEffect != nil {
				got, err := l.Evaluate(t.Context(), *tt.takeEffect)
				require.NoError(t, err, "query the edited record")
				assert.Contains(t, string(got), tt.shows, "the edit took effect")
			}
			err = l.Verify(t.Context())
			assertTamperedAt(t, err, tt.block, tt.objectType, "Verify")
			assert.NotContains(t, err.Error(), pop.researcher.id, "the report names an ID")
			assert.NotContains(t, err.Error(), pop.consentID, "the report names an ID")
		})
	}
	t.Run("a record of an unknown kind is found", func(t *testing.T) {
		dir := testkit.CopyDir(t, pristine)
		editStore(t, dir, func(db *leveldb.DB) error {
			return db.Put([]byte("xstray"), []byte("?"), &opt.WriteOptions{Sync: true})
		})
		_, err := embedded.VerifyDir(t.Context(), dir)
		assert.ErrorIs(t, err, embedded.ErrCorrupt, "VerifyDir")
	})
	t.Run("the untouched ledger verifies with every key counted", func(t *testing.T) {
		rep, err := embedded.VerifyDir(t.Context(), pristine)
		require.NoError(t, err, "VerifyDir")
		assert.Equal(t, pop.height, rep.Blocks, "blocks")
		assert.Equal(t, pop.height-1, rep.Transactions, "transactions (one per block)")
		assert.Greater(t, rep.Keys, uint64(30), "keys")
		assert.Greater(t, rep.HistoryEntries, rep.Keys, "history entries (the consent was written twice)")
		assert.True(t, rep.Anchored, "checked against the chain anchor")
	})
}

// firstTxID returns the ID of the first transaction of block n.
func firstTxID(t *testing.T, db *leveldb.DB, n uint64) string {
	t.Helper()
	raw, err := db.Get(embedded.BlockTxKey(n, 0), nil)
	require.NoError(t, err, "transaction record")
	l := int(raw[0]) // a uvarint below 128: IDs are 64 hex digits
	return string(raw[1 : 1+l])
}

// storeFiles returns the store files of dir whose names end in suffix (or
// start with it, for MANIFEST).
func storeFiles(t *testing.T, dir, pattern string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, embedded.StoreDir, pattern))
	require.NoError(t, err)
	return files
}

// outcome is what a ledger with one damaged byte did.
type outcome int

const (
	refusedAtOpen outcome = iota // New failed with ErrCorrupt
	foundByVerify                // New opened, Verify failed with ErrCorrupt
	unchanged                    // the byte held nothing: same chain, Verify passes
)

// reopenDamaged runs VerifyDir, then New and Verify, on dir, whose
// untouched chain had height blocks ending in tip, and fails the test
// unless both refuse it or both see the untouched chain.
func reopenDamaged(t *testing.T, dir string, height uint64, tip []byte, what string) outcome {
	t.Helper()
	rep, dirErr := embedded.VerifyDir(t.Context(), dir)
	l, err := openMedprov(t, dir)
	if err != nil {
		assert.ErrorIs(t, err, embedded.ErrCorrupt, "%s: New", what)
		assert.Error(t, dirErr, "%s: VerifyDir passed a store New refuses", what)
		return refusedAtOpen
	}
	defer func() { assert.NoError(t, l.Close(), "Close") }()
	if err := l.Verify(t.Context()); err != nil {
		assert.ErrorIs(t, err, embedded.ErrCorrupt, "%s: Verify", what)
		assert.Error(t, dirErr, "%s: VerifyDir passed a store Verify refuses", what)
		return foundByVerify
	}
	require.Equal(t, height, l.Height(), "%s: the chain changed length and nothing noticed", what)
	blk, err := l.Block(t.Context(), height-1)
	require.NoError(t, err, "%s: last block", what)
	require.Equal(t, tip, blk.Header.Hash(), "%s: the last block changed and nothing noticed", what)
	if assert.NoError(t, dirErr, "%s: VerifyDir refuses a store Verify passes", what) {
		assert.Equal(t, height, rep.Blocks, "%s: VerifyDir blocks", what)
	}
	return unchanged
}

// TestDamagedFilesNeverLoseABlock flips one byte of each kind of LevelDB
// file of a stopped ledger (the journal, a table, the manifest), at many
// offsets, and reopens it: every time, either New refuses to open, or
// Verify reports the damage, or the byte held nothing and the chain is
// whole. A damaged journal record that LevelDB used to drop ("orphan
// chunk"), taking a committed block with it, is refused at open.
func TestDamagedFilesNeverLoseABlock(t *testing.T) {
	journalDir := t.TempDir()
	m := newMedprov(t, journalDir)
	pop := m.populate()
	last, err := m.l.Block(t.Context(), pop.height-1)
	require.NoError(t, err, "last block")
	tip := last.Header.Hash()
	m.close()
	// Reopened once, the journal is compacted into a table under a new
	// manifest.
	tableDir := testkit.CopyDir(t, journalDir)
	l, err := openMedprov(t, tableDir)
	require.NoError(t, err, "reopen")
	require.NoError(t, l.Close(), "Close")

	tests := []struct {
		name    string
		dir     string
		pattern string
	}{
		{name: "a damaged journal is never silently shortened", dir: journalDir, pattern: "*.log"},
		{name: "a damaged table is never silently read", dir: tableDir, pattern: "*.ldb"},
		{name: "a damaged manifest is never silently dropped", dir: tableDir, pattern: "MANIFEST-*"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := storeFiles(t, tt.dir, tt.pattern)
			require.NotEmpty(t, files, "no %s file in the store", tt.pattern)
			var target string
			for _, f := range files { // the largest: the one holding the records
				if fi, err := os.Stat(f); err == nil && (target == "" || fi.Size() > mustSize(t, target)) {
					target = f
				}
			}
			size := mustSize(t, target)
			offsets := []int64{size / 2}
			for i := range int64(16) {
				offsets = append(offsets, i*size/16)
			}
			offsets = append(offsets, size-1)
			counts := map[outcome]int{}
			for i, off := range offsets {
				dir := testkit.CopyDir(t, tt.dir)
				path := filepath.Join(dir, embedded.StoreDir, filepath.Base(target))
				b, err := os.ReadFile(path)
				require.NoError(t, err)
				b[off] ^= 0x5a
				require.NoError(t, os.WriteFile(path, b, 0o600))
				got := reopenDamaged(t, dir, pop.height, tip, filepath.Base(target)+" byte "+strconv.FormatInt(off, 10))
				if i == 0 {
					assert.NotEqual(t, unchanged, got, "a byte in the middle of %s went unnoticed", filepath.Base(target))
				}
				counts[got]++
			}
			t.Logf("%s, %d bytes: %d refused at open, %d found by Verify, %d held nothing", filepath.Base(target), size, counts[refusedAtOpen], counts[foundByVerify], counts[unchanged])
		})
	}
	missing := []struct {
		name    string
		dir     string
		pattern string
	}{
		{name: "a deleted journal is refused", dir: journalDir, pattern: "*.log"},
		{name: "a deleted table is refused", dir: tableDir, pattern: "*.ldb"},
		{name: "a deleted manifest is refused", dir: tableDir, pattern: "MANIFEST-*"},
		{name: "a deleted CURRENT file is refused", dir: tableDir, pattern: "CURRENT"},
	}
	for _, tt := range missing {
		t.Run(tt.name, func(t *testing.T) {
			dir := testkit.CopyDir(t, tt.dir)
			files := storeFiles(t, dir, tt.pattern)
			require.NotEmpty(t, files, "no %s file in the store", tt.pattern)
			for _, f := range files {
				require.NoError(t, os.Remove(f))
			}
			_, err := embedded.VerifyDir(t.Context(), dir)
			assert.ErrorIs(t, err, embedded.ErrCorrupt, "VerifyDir")
			_, err = openMedprov(t, dir)
			assert.ErrorIs(t, err, embedded.ErrCorrupt, "New")
		})
	}
	t.Run("a damaged journal record is refused by LevelDB's checksums alone", func(t *testing.T) {
		// Without the chain anchor, which would notice the lost block.
		dir := testkit.CopyDir(t, journalDir)
		require.NoError(t, os.Remove(filepath.Join(dir, embedded.AnchorFile)))
		logs := storeFiles(t, dir, "*.log")
		require.Len(t, logs, 1, "journals")
		b, err := os.ReadFile(logs[0])
		require.NoError(t, err)
		b[len(b)-100] ^= 0x5a // inside the last block's record
		require.NoError(t, os.WriteFile(logs[0], b, 0o600))
		_, err = embedded.VerifyDir(t.Context(), dir)
		assert.ErrorIs(t, err, embedded.ErrCorrupt, "VerifyDir")
		_, err = openMedprov(t, dir)
		assert.ErrorIs(t, err, embedded.ErrCorrupt, "New")
		assert.ErrorContains(t, err, filepath.Base(logs[0]), "the refusal names the damaged file")
		t.Log(err)
	})
}

func mustSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	require.NoError(t, err)
	return fi.Size()
}

// TestOpenRefusesADamagedChainEnd tampers with the last blocks and the
// chain's height of a stopped ledger: New refuses to open it, and says
// which block is at fault.
func TestOpenRefusesADamagedChainEnd(t *testing.T) {
	build := func(t *testing.T) (string, uint64) {
		dir := t.TempDir()
		l := openLedger(t, dir, nil)
		for i := range 5 {
			submit(t, l, "Put", "k"+strconv.Itoa(i), "value-"+strconv.Itoa(i))
		}
		h := l.Height()
		require.NoError(t, l.Close(), "Close")
		return dir, h
	}
	// rollBack makes the store end at block keep-1 with consistent height
	// and tip records, as a journal that lost its last records would.
	rollBack := func(t *testing.T, dir string, height, keep uint64) {
		l := openLedger(t, dir, nil)
		blk, err := l.Block(t.Context(), keep-1)
		require.NoError(t, err, "Block")
		require.NoError(t, l.Close(), "Close")
		editStore(t, dir, func(db *leveldb.DB) error {
			b := new(leveldb.Batch)
			for n := keep; n < height; n++ {
				b.Delete(embedded.BlockHeaderKey(n))
				b.Delete(embedded.BlockTxKey(n, 0))
			}
			b.Put(embedded.HeightKey, embedded.EncodeHeight(keep))
			b.Put(embedded.TipKey, blk.Header.Hash())
			return db.Write(b, &opt.WriteOptions{Sync: true})
		})
	}
	tests := []struct {
		name   string
		change func(t *testing.T, dir string, height uint64)
		block  uint64 // relative to the end: height - back
		back   uint64
	}{
		{name: "an altered transaction of the last block is refused", back: 1, change: func(t *testing.T, dir string, height uint64) {
			rewriteTx(t, dir, height-1, func(b []byte) []byte { b[len(b)/2] ^= 1; return b })
		}},
		{name: "an altered write-set hash of a recent block is refused", back: 3, change: func(t *testing.T, dir string, height uint64) {
			// The record starts with the header's length (one byte) and
			// encoding, which ends with the write-set hash.
			rewrite(t, dir, embedded.BlockHeaderKey(height-3), func(b []byte) []byte { b[int(b[0])] ^= 1; return b })
		}},
		{name: "a height record rolled back over intact blocks is refused", back: 1, change: func(t *testing.T, dir string, height uint64) {
			editStore(t, dir, func(db *leveldb.DB) error {
				return db.Put(embedded.HeightKey, embedded.EncodeHeight(height-1), &opt.WriteOptions{Sync: true})
			})
		}},
		{name: "a tip record that is not the last block's hash is refused", back: 1, change: func(t *testing.T, dir string, height uint64) {
			rewrite(t, dir, embedded.TipKey, func(b []byte) []byte { b[0] ^= 1; return b })
		}},
		{name: "a chain consistently shortened by one block is refused", back: 1, change: func(t *testing.T, dir string, height uint64) {
			rollBack(t, dir, height, height-1)
		}},
		{name: "a chain consistently shortened by three blocks is refused", back: 3, change: func(t *testing.T, dir string, height uint64) {
			rollBack(t, dir, height, height-3)
		}},
		{name: "a store whose records were all removed is refused", back: 0, change: func(t *testing.T, dir string, height uint64) {
			require.NoError(t, os.RemoveAll(filepath.Join(dir, embedded.StoreDir)))
			require.NoError(t, os.Mkdir(filepath.Join(dir, embedded.StoreDir), 0o700))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, height := build(t)
			tt.change(t, dir, height)
			want := height - tt.back
			if tt.back == 0 {
				want = 0
			}
			_, err := embedded.New(t.Context(), embedded.Config{Dir: dir, Chaincode: newChaincode(t), Logger: slog.New(slog.DiscardHandler)})
			assertTamperedAt(t, err, want, "", "New")
			_, err = embedded.VerifyDir(t.Context(), dir)
			assert.ErrorIs(t, err, embedded.ErrCorrupt, "VerifyDir")
		})
	}
	t.Run("a damaged chain anchor is refused", func(t *testing.T) {
		dir, _ := build(t)
		path := filepath.Join(dir, embedded.AnchorFile)
		b, err := os.ReadFile(path)
		require.NoError(t, err)
		b[30] ^= 1
		require.NoError(t, os.WriteFile(path, b, 0o600))
		_, err = embedded.New(t.Context(), embedded.Config{Dir: dir, Chaincode: newChaincode(t), Logger: slog.New(slog.DiscardHandler)})
		assert.ErrorIs(t, err, embedded.ErrCorrupt, "New")
		assert.ErrorContains(t, err, path, "the refusal names the file")
	})
	t.Run("a missing chain anchor is written again", func(t *testing.T) {
		dir, height := build(t)
		require.NoError(t, os.Remove(filepath.Join(dir, embedded.AnchorFile)))
		l := openLedger(t, dir, nil)
		assert.Equal(t, height, l.Height(), "height")
		require.NoError(t, l.Close(), "Close")
		rep, err := embedded.VerifyDir(t.Context(), dir)
		require.NoError(t, err, "VerifyDir")
		assert.True(t, rep.Anchored, "anchored")
	})
	t.Run("an untouched ledger opens after many restarts", func(t *testing.T) {
		dir, height := build(t)
		for i := range 3 {
			l := openLedger(t, dir, nil)
			submit(t, l, "Put", "again", strconv.Itoa(i))
			require.NoError(t, l.Close(), "Close")
		}
		rep, err := embedded.VerifyDir(t.Context(), dir)
		require.NoError(t, err, "VerifyDir")
		assert.Equal(t, height+3, rep.Blocks, "blocks")
	})
}

// TestPermissionsAreEnforced checks that the ledger directory and
// everything in it are the owner's alone, whatever modes they had before
// the ledger opened and for the files LevelDB creates as it runs.
func TestPermissionsAreEnforced(t *testing.T) {
	assertOwnerOnly := func(t *testing.T, dir string) {
		t.Helper()
		n := 0
		require.NoError(t, filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			require.NoError(t, err)
			fi, err := d.Info()
			require.NoError(t, err)
			want := os.FileMode(0o600)
			if d.IsDir() {
				want = 0o700
			}
			assert.Equal(t, want, fi.Mode().Perm(), "mode of %s", path)
			n++
			return nil
		}))
		assert.Greater(t, n, 15, "files checked")
	}
	t.Run("a new ledger is owner-only", func(t *testing.T) {
		dir := t.TempDir()
		l := openLedger(t, dir, nil)
		submit(t, l, "Put", "k", "v")
		require.NoError(t, l.Close(), "Close")
		assertOwnerOnly(t, dir)
	})
	t.Run("modes loosened while the ledger was stopped are restored on open", func(t *testing.T) {
		dir := t.TempDir()
		l := openLedger(t, dir, nil)
		submit(t, l, "Put", "k", "v")
		require.NoError(t, l.Close(), "Close")
		require.NoError(t, filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if d.IsDir() {
				return os.Chmod(path, 0o755)
			}
			return os.Chmod(path, 0o644)
		}))
		l = openLedger(t, dir, nil)
		// Files LevelDB created on this open (its new journal, the table
		// the old journal became, a new manifest) too.
		assertOwnerOnly(t, dir)
		submit(t, l, "Put", "k", "v2")
		require.NoError(t, l.Close(), "Close")
		assertOwnerOnly(t, dir)
	})
	t.Run("a symbolic link in the ledger directory is refused", func(t *testing.T) {
		dir := t.TempDir()
		l := openLedger(t, dir, nil)
		require.NoError(t, l.Close(), "Close")
		require.NoError(t, os.Symlink(t.TempDir(), filepath.Join(dir, "elsewhere")))
		_, err := embedded.New(t.Context(), embedded.Config{Dir: dir, Chaincode: newChaincode(t), Logger: slog.New(slog.DiscardHandler)})
		assert.ErrorContains(t, err, "symbolic link", "New")
	})
}

// TestLegacyStoreIsUpgraded opens a store of format leveldb/1 (headers
// without write-set hashes): it verifies, opens, and blocks committed from
// then on carry write-set hashes.
func TestLegacyStoreIsUpgraded(t *testing.T) {
	dir := t.TempDir()
	l := openLedger(t, dir, nil)
	submit(t, l, "Put", "k", "v1")
	submit(t, l, "Del", "k")
	submit(t, l, "Put", "k2", "v2")
	legacyHeight := l.Height()
	require.NoError(t, l.Close(), "Close")
	require.NoError(t, embedded.Downgrade(dir, embedded.FormatLegacy), "write a leveldb/1 store")

	rep, err := embedded.VerifyDir(t.Context(), dir)
	require.NoError(t, err, "VerifyDir on a leveldb/1 store")
	assert.Equal(t, legacyHeight, rep.Blocks, "blocks")

	l = openLedger(t, dir, nil)
	c := submit(t, l, "Put", "k", "v3")
	old, err := l.Block(t.Context(), legacyHeight-1)
	require.NoError(t, err, "old block")
	assert.Empty(t, old.Header.WriteSetHash, "write-set hash of a block of the old format")
	blk, err := l.Block(t.Context(), c.Block)
	require.NoError(t, err, "new block")
	assert.Equal(t, embedded.WriteSetHash(blk.Transactions), blk.Header.WriteSetHash, "write-set hash of a new block")
	require.NoError(t, l.Verify(t.Context()), "Verify after the upgrade")
	require.NoError(t, l.Close(), "Close")
	l = openLedger(t, dir, nil)
	assert.Equal(t, legacyHeight+1, l.Height(), "height after reopening the upgraded store")
	require.NoError(t, l.Verify(t.Context()), "Verify after reopening")
	require.NoError(t, l.Close(), "Close")

	t.Run("a state edit in the old blocks' keys is found", func(t *testing.T) {
		dir := testkit.CopyDir(t, dir)
		rewrite(t, dir, embedded.StateKey("k2"), func(b []byte) []byte { return append(b, '!') })
		_, err := embedded.VerifyDir(t.Context(), dir)
		assertTamperedAt(t, err, legacyHeight-1, "simple", "VerifyDir")
	})
	t.Run("a store claiming the old format again is refused", func(t *testing.T) {
		dir := testkit.CopyDir(t, dir)
		editStore(t, dir, func(db *leveldb.DB) error {
			return db.Put(embedded.FormatKey, []byte("leveldb/1"), &opt.WriteOptions{Sync: true})
		})
		_, err := embedded.New(t.Context(), embedded.Config{Dir: dir, Chaincode: newChaincode(t), Logger: slog.New(slog.DiscardHandler)})
		assert.ErrorIs(t, err, embedded.ErrCorrupt, "New")
	})
}

// TestWriteSetHash pins the write-set hash's canonical encoding and checks
// that every committed block's header carries the hash of its writes.
func TestWriteSetHash(t *testing.T) {
	txs := []embedded.Transaction{
		{Valid: true, Writes: []embedded.KeyWrite{{Key: "a", Value: []byte("1")}, {Key: "b", Delete: true}}},
		{Valid: false, Writes: []embedded.KeyWrite{{Key: "c", Value: []byte("x")}}},
		{Valid: true},
	}
	tx0 := sha256.Sum256([]byte{
		2,                 // two writes
		1, 'a', 0, 1, '1', // a = "1"
		1, 'b', 1, // b deleted
	})
	tx2 := sha256.Sum256([]byte{0}) // no writes
	assert.Equal(t, tx0, embedded.TxWriteSetHash(txs[0].Writes), "TxWriteSetHash")
	var block []byte
	block = append(append(block, 0, 0, 0, 0), tx0[:]...) // transaction 0
	block = append(append(block, 0, 0, 0, 2), tx2[:]...) // transaction 2; 1 is invalid
	want := sha256.Sum256(block)
	assert.Equal(t, want[:], embedded.WriteSetHash(txs), "WriteSetHash")

	l := newLedger(t)
	submit(t, l, "Put", "k", "v")
	submit(t, l, "Del", "k")
	submit(t, l, "PutAsset", "alice", "a1", "v")
	for n := range l.Height() {
		blk, err := l.Block(t.Context(), n)
		require.NoError(t, err, "Block %d", n)
		assert.Len(t, blk.Header.WriteSetHash, sha256.Size, "block %d", n)
		assert.Equal(t, embedded.WriteSetHash(blk.Transactions), blk.Header.WriteSetHash, "block %d", n)
	}
	t.Run("the header hash covers the write-set hash", func(t *testing.T) {
		blk, err := l.Block(t.Context(), 1)
		require.NoError(t, err)
		h := blk.Header
		before := h.Hash()
		h.WriteSetHash = bytes.Clone(h.WriteSetHash)
		h.WriteSetHash[0] ^= 1
		assert.NotEqual(t, before, h.Hash())
	})
}

// TestReportIsJSON keeps Report's field names stable for `medprov ledger
// verify --json`.
func TestReportIsJSON(t *testing.T) {
	b, err := json.Marshal(embedded.Report{Blocks: 3, Transactions: 2, Keys: 5, HistoryEntries: 6, Anchored: true})
	require.NoError(t, err)
	assert.JSONEq(t, `{"blocks":3,"transactions":2,"keys":5,"historyEntries":6,"anchored":true}`, string(b))
}
