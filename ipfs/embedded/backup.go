package embedded

import (
	"bytes"
	"context"
	"encoding/base32"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"
	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/iterator"
	"github.com/syndtr/goleveldb/leveldb/opt"
	"github.com/syndtr/goleveldb/leveldb/util"

	"github.com/medprov/medprov/ipfs"
)

// Directory names inside Config.Dir.
const (
	blocksDir = "blocks"
	pinsDir   = "pins"
)

const (
	// copyBatchBytes bounds one write batch of Backup and Merge.
	copyBatchBytes = 4 << 20
	// copyCheckEvery is how many records a copy handles between checks of
	// its context.
	copyCheckEvery = 4096
)

// Backup writes a copy of the store into dir (created 0700 if missing; it
// must be empty), a directory New opens as a store. The pins are read from
// one LevelDB snapshot and the blocks from one taken after it; Put writes a
// payload's blocks before its pin, so every root pinned in the copy has all
// of its blocks there. Puts go on meanwhile; the copy may hold blocks of
// payloads whose pins it does not have, which is harmless (nothing is
// collected). Close waits for a Backup in progress, which stops at its next
// check of ctx.
func (s *Store) Backup(ctx context.Context, dir string) error {
	s.life.RLock()
	defer s.life.RUnlock()
	if s.closed {
		return fmt.Errorf("embedded: backup: store closed: %w", ipfs.ErrUnavailable)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("embedded: backup: %w", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("embedded: backup: %w", err)
	}
	if len(entries) > 0 {
		return fmt.Errorf("embedded: backup: %s is not empty", dir)
	}
	pins, err := s.pins.db.GetSnapshot()
	if err != nil {
		return fmt.Errorf("embedded: backup: pins snapshot: %w", err)
	}
	defer pins.Release()
	blocks, err := s.blocksDS.DB.GetSnapshot()
	if err != nil {
		return fmt.Errorf("embedded: backup: blocks snapshot: %w", err)
	}
	defer blocks.Release()
	for _, c := range []struct {
		name string
		snap *leveldb.Snapshot
	}{{blocksDir, blocks}, {pinsDir, pins}} {
		if err := copyInto(ctx, c.snap, filepath.Join(dir, c.name)); err != nil {
			return fmt.Errorf("embedded: backup %s: %w", c.name, err)
		}
	}
	return nil
}

// copyInto writes every record of snap into a new LevelDB at path.
func copyInto(ctx context.Context, snap *leveldb.Snapshot, path string) (err error) {
	db, err := leveldb.OpenFile(path, &opt.Options{ErrorIfExist: true})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, db.Close()) }()
	it := snap.NewIterator(nil, nil)
	defer it.Release()
	_, err = copyRecords(ctx, db, it, nil)
	return err
}

// copyRecords writes the records of it into db in batches, the last one
// synced, skipping those skip reports present (skip may be nil), and
// returns how many it wrote.
func copyRecords(ctx context.Context, db *leveldb.DB, it iterator.Iterator, skip func(k []byte) (bool, error)) (int, error) {
	b := new(leveldb.Batch)
	written := 0
	for n := 1; it.Next(); n++ {
		if n%copyCheckEvery == 0 {
			if err := ctx.Err(); err != nil {
				return written, err
			}
		}
		if skip != nil {
			has, err := skip(it.Key())
			if err != nil {
				return written, err
			}
			if has {
				continue
			}
		}
		b.Put(it.Key(), it.Value())
		written++
		if len(b.Dump()) >= copyBatchBytes {
			if err := db.Write(b, nil); err != nil {
				return written, fmt.Errorf("write: %w", err)
			}
			b.Reset()
		}
	}
	if err := it.Error(); err != nil {
		return written, fmt.Errorf("read: %w", err)
	}
	if err := db.Write(b, &opt.WriteOptions{Sync: true}); err != nil {
		return written, fmt.Errorf("write: %w", err)
	}
	return written, nil
}

// MergeStats counts what Merge added.
type MergeStats struct {
	// Blocks and Pins are the blocks and recursive pins Merge added.
	Blocks, Pins int
}

// Merge adds to s every block and pin of the store in dir (a copy Backup
// wrote, opened read-only) that s lacks. Blocks are content-addressed, so
// nothing s holds is replaced; a block s lost comes back from the copy.
func (s *Store) Merge(ctx context.Context, dir string) (MergeStats, error) {
	s.life.RLock()
	defer s.life.RUnlock()
	if s.closed {
		return MergeStats{}, fmt.Errorf("embedded: merge: store closed: %w", ipfs.ErrUnavailable)
	}
	var st MergeStats
	for _, c := range []struct {
		name string
		into *leveldb.DB
		n    *int
	}{{blocksDir, s.blocksDS.DB, &st.Blocks}, {pinsDir, s.pins.db, &st.Pins}} {
		n, err := mergeFrom(ctx, filepath.Join(dir, c.name), c.into)
		*c.n = n
		if err != nil {
			return st, fmt.Errorf("embedded: merge %s: %w", c.name, err)
		}
	}
	return st, nil
}

func mergeFrom(ctx context.Context, path string, into *leveldb.DB) (n int, err error) {
	src, err := leveldb.OpenFile(path, &opt.Options{ReadOnly: true, ErrorIfMissing: true, Strict: opt.StrictAll})
	if err != nil {
		return 0, err
	}
	defer func() { err = errors.Join(err, src.Close()) }()
	it := src.NewIterator(nil, nil)
	defer it.Release()
	return copyRecords(ctx, into, it, func(k []byte) (bool, error) { return into.Has(k, nil) })
}

// DirStats summarises a store VerifyDir checked.
type DirStats struct {
	// Blocks is the number of blocks; Pins the number of recursive pins.
	Blocks, Pins int
}

// VerifyDir checks the store in dir offline (read-only; the store must not
// be open): every block hashes to the multihash it is stored under, and
// every pinned root's block is present. LevelDB reads with its checksums
// enforced. An error wrapping ipfs.ErrCorrupt reports a block or pin at
// fault.
func VerifyDir(ctx context.Context, dir string) (DirStats, error) {
	var st DirStats
	ro := &opt.Options{ReadOnly: true, ErrorIfMissing: true, Strict: opt.StrictAll}
	blocks, err := leveldb.OpenFile(filepath.Join(dir, blocksDir), ro)
	if err != nil {
		return st, fmt.Errorf("embedded: verify blocks: %w", err)
	}
	defer blocks.Close() //nolint:errcheck // read-only
	pins, err := leveldb.OpenFile(filepath.Join(dir, pinsDir), ro)
	if err != nil {
		return st, fmt.Errorf("embedded: verify pins: %w", err)
	}
	defer pins.Close() //nolint:errcheck // read-only

	it := blocks.NewIterator(nil, nil)
	defer it.Release()
	for it.Next() {
		if st.Blocks%copyCheckEvery == 0 {
			if err := ctx.Err(); err != nil {
				return st, err
			}
		}
		if err := checkBlock(it.Key(), it.Value()); err != nil {
			return st, fmt.Errorf("embedded: verify: %w: %w", ipfs.ErrCorrupt, err)
		}
		st.Blocks++
	}
	if err := it.Error(); err != nil {
		return st, fmt.Errorf("embedded: verify blocks: %w: %w", ipfs.ErrCorrupt, err)
	}
	pit := pins.NewIterator(util.BytesPrefix(pinPrefix), nil)
	defer pit.Release()
	for pit.Next() {
		c, err := cid.Cast(pit.Key()[len(pinPrefix):])
		if err != nil {
			return st, fmt.Errorf("embedded: verify: %w: stored pin: %w", ipfs.ErrCorrupt, err)
		}
		ok, err := blocks.Has(blockKey(c.Hash()), nil)
		if err != nil {
			return st, fmt.Errorf("embedded: verify pins: %w", err)
		}
		if !ok {
			return st, fmt.Errorf("embedded: verify: %w: the root block of pin %s is missing", ipfs.ErrCorrupt, c)
		}
		st.Pins++
	}
	if err := pit.Error(); err != nil {
		return st, fmt.Errorf("embedded: verify pins: %w: %w", ipfs.ErrCorrupt, err)
	}
	return st, nil
}

// blockKeyEncoding encodes a multihash into the datastore key the
// blockstore keeps its block under: "/" and unpadded base32 (boxo's
// dshelp.MultihashToDsKey).
var blockKeyEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

func blockKey(h multihash.Multihash) []byte {
	return append([]byte{'/'}, blockKeyEncoding.EncodeToString(h)...)
}

// checkBlock checks that data hashes to the multihash of its datastore key.
func checkBlock(key, data []byte) error {
	raw, err := blockKeyEncoding.DecodeString(string(bytes.TrimPrefix(key, []byte{'/'})))
	if err != nil {
		return fmt.Errorf("block key %q: %w", key, err)
	}
	want, err := multihash.Cast(raw)
	if err != nil {
		return fmt.Errorf("block key %q: %w", key, err)
	}
	dec, err := multihash.Decode(want)
	if err != nil {
		return fmt.Errorf("block key %q: %w", key, err)
	}
	got, err := multihash.Sum(data, dec.Code, dec.Length)
	if err != nil {
		return fmt.Errorf("block %s: %w", want.B58String(), err)
	}
	if !bytes.Equal(got, want) {
		return fmt.Errorf("block %s: its bytes hash to %s", want.B58String(), got.B58String())
	}
	return nil
}
