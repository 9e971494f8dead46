// Package embedded is the default medprov blob store: a boxo blockstore on
// local disk that produces exactly the CIDs `ipfs add --cid-version=1` gives
// for the same bytes.
//
// Layout under Config.Dir: blocks/ is a LevelDB datastore keyed by
// multihash; pins/ is a LevelDB database with one key per pinned root.
// LevelDB rather than kubo's default flatfs (one file per block) because
// readings are small and arrive in batches: a PutMany is one synced LevelDB
// batch, where flatfs costs several file-system calls and an fsync per
// block (measured on the project machines: flatfs ~400-650 puts/s in
// batches of 100). Put and PutMany return after the blocks and pins are
// fsynced. Every Put is pinned recursively. There is no garbage collector:
// Unpin only marks content collectable, nothing is deleted.
//
// Get reads block by block and checks every block against its CID, so a
// block altered on disk yields ipfs.ErrCorrupt rather than wrong bytes.
// ExportCAR and ImportCAR move content to and from kubo (see ipfs.Migrate).
// Backup copies the store while it runs, Merge adds a copy's missing
// blocks back, and VerifyDir checks a copy offline.
package embedded

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/ipfs/boxo/blockstore"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	leveldb "github.com/ipfs/go-ds-leveldb"
	ipld "github.com/ipfs/go-ipld-format"
	car "github.com/ipld/go-car/v2"
	"github.com/ipld/go-car/v2/storage"

	"github.com/medprov/medprov/ipfs"
	"github.com/medprov/medprov/ipfs/internal/unixfs"
)

// Config configures [New].
type Config struct {
	// Dir holds the store; it is created (0700) if missing.
	Dir string
}

// Store is the embedded [ipfs.Store]. It is safe for concurrent use.
type Store struct {
	blocksDS *leveldb.Datastore
	pins     pinSet
	bs       blockstore.Blockstore

	// life is held shared by Backup and exclusively by Close, so the
	// databases are never closed under a Backup's snapshots.
	life   sync.RWMutex
	closed bool
}

var (
	_ ipfs.Store       = (*Store)(nil)
	_ ipfs.CARExporter = (*Store)(nil)
	_ ipfs.CARImporter = (*Store)(nil)
)

// importBatch is how many blocks ImportCAR writes per disk batch.
const importBatch = 256

// New opens (or creates) the store in cfg.Dir.
func New(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.Dir == "" {
		return nil, errors.New("embedded: Dir is empty")
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("embedded: %w", err)
	}
	blocksDS, err := leveldb.NewDatastore(filepath.Join(cfg.Dir, blocksDir), nil)
	if err != nil {
		return nil, fmt.Errorf("embedded: open blocks: %w", err)
	}
	pins, err := openPinSet(filepath.Join(cfg.Dir, pinsDir))
	if err != nil {
		return nil, errors.Join(fmt.Errorf("embedded: %w", err), blocksDS.Close())
	}
	// Write-through: a put does not first ask whether the block exists.
	// Blocks are content-addressed, so writing one again changes nothing,
	// and those reads (nearly all of absent keys) made LevelDB compact
	// each new table into level 1 at once (it compacts a table early
	// when reads pass through it without finding their key): ~2 KiB of
	// compaction writes per reading, for ~0.3 KiB of data.
	bs := blockstore.NewBlockstore(blocksDS, blockstore.NoPrefix(), blockstore.WriteThrough(true))
	return &Store{blocksDS: blocksDS, pins: pins, bs: bs}, nil
}

// Close closes the store's datastores, once a Backup in progress is done.
func (s *Store) Close() error {
	s.life.Lock()
	defer s.life.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	return errors.Join(s.pins.close(), s.blocksDS.Close())
}

// Put stores data, pins it and returns its CID.
func (s *Store) Put(ctx context.Context, data []byte) (string, error) {
	cids, err := s.PutMany(ctx, [][]byte{data})
	if err != nil {
		return "", err
	}
	return cids[0], nil
}

// PutMany stores and pins every payload with one disk batch and returns the
// CIDs in input order.
func (s *Store) PutMany(ctx context.Context, data [][]byte) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	roots := make([]cid.Cid, len(data))
	var all []blocks.Block
	for i, d := range data {
		root, blks, err := unixfs.Build(d)
		if err != nil {
			return nil, fmt.Errorf("embedded: put payload %d: %w", i, err)
		}
		roots[i] = root
		all = append(all, blks...)
	}
	if err := s.bs.PutMany(ctx, all); err != nil {
		return nil, fmt.Errorf("embedded: write blocks: %w", err)
	}
	// All blocks were just written, so the pins need no DAG walk.
	if err := s.pins.add(roots...); err != nil {
		return nil, fmt.Errorf("embedded: %w", err)
	}
	out := make([]string, len(roots))
	for i, root := range roots {
		out[i] = root.String()
	}
	return out, nil
}

// Get returns the bytes under c, checking every block against its CID.
func (s *Store) Get(ctx context.Context, c string) ([]byte, error) {
	root, err := parseCID(c)
	if err != nil {
		return nil, err
	}
	data, err := unixfs.Read(ctx, s.getBlock, root)
	if err != nil {
		return nil, fmt.Errorf("embedded: get %s: %w", c, err)
	}
	return data, nil
}

// Has reports whether the root block of c is stored.
func (s *Store) Has(ctx context.Context, c string) (bool, error) {
	root, err := parseCID(c)
	if err != nil {
		return false, err
	}
	ok, err := s.bs.Has(ctx, root)
	if err != nil {
		return false, fmt.Errorf("embedded: has %s: %w", c, err)
	}
	return ok, nil
}

// Pin pins c recursively after checking that all of its blocks are present.
func (s *Store) Pin(ctx context.Context, c string) error {
	root, err := parseCID(c)
	if err != nil {
		return err
	}
	// A pin promises the whole DAG: check every block is here first.
	if err := s.walk(ctx, root); err != nil {
		return fmt.Errorf("embedded: pin %s: %w", c, err)
	}
	if err := s.pins.add(root); err != nil {
		return fmt.Errorf("embedded: %w", err)
	}
	return nil
}

// Unpin removes the recursive pin of c, if any.
func (s *Store) Unpin(ctx context.Context, c string) error {
	root, err := parseCID(c)
	if err != nil {
		return err
	}
	if err := s.pins.remove(root); err != nil {
		return fmt.Errorf("embedded: unpin %s: %w", c, err)
	}
	return nil
}

// Pins returns the recursively pinned CIDs.
func (s *Store) Pins(ctx context.Context) ([]string, error) {
	roots, err := s.pins.list(ctx)
	if err != nil {
		return nil, fmt.Errorf("embedded: %w", err)
	}
	out := make([]string, len(roots))
	for i, r := range roots {
		out[i] = r.String()
	}
	return out, nil
}

// ExportCAR writes the DAGs of all pinned content as a CARv1 stream whose
// roots are the pins, and returns the roots. Every block is checked against
// its CID on the way out.
func (s *Store) ExportCAR(ctx context.Context, w io.Writer) ([]string, error) {
	pins, err := s.Pins(ctx)
	if err != nil {
		return nil, err
	}
	roots := make([]cid.Cid, len(pins))
	for i, p := range pins {
		if roots[i], err = cid.Decode(p); err != nil {
			return nil, fmt.Errorf("embedded: stored pin %q: %w", p, err)
		}
	}
	cw, err := storage.NewWritable(w, roots, car.WriteAsCarV1(true))
	if err != nil {
		return nil, fmt.Errorf("embedded: car writer: %w", err)
	}
	seen := cid.NewSet()
	for _, root := range roots {
		if err := s.exportDAG(ctx, cw, root, seen); err != nil {
			return nil, fmt.Errorf("embedded: export %s: %w", root, err)
		}
	}
	if err := cw.Finalize(); err != nil {
		return nil, fmt.Errorf("embedded: finish car: %w", err)
	}
	return pins, nil
}

func (s *Store) exportDAG(ctx context.Context, cw storage.WritableCar, root cid.Cid, seen *cid.Set) error {
	stack := []cid.Cid{root}
	for len(stack) > 0 {
		c := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if !seen.Visit(c) {
			continue
		}
		data, err := s.getBlock(ctx, c)
		if err != nil {
			return err
		}
		nd, err := unixfs.Decode(c, data)
		if err != nil {
			return err
		}
		if err := cw.Put(ctx, c.KeyString(), data); err != nil {
			return fmt.Errorf("write block %s: %w", c, err)
		}
		links := nd.Links()
		for i := len(links) - 1; i >= 0; i-- {
			stack = append(stack, links[i].Cid)
		}
	}
	return nil
}

// ImportCAR stores every block of a CAR stream (v1 or v2), checking each
// against its CID, then pins the CAR's roots and returns them.
func (s *Store) ImportCAR(ctx context.Context, r io.Reader) ([]string, error) {
	br, err := car.NewBlockReader(r)
	if err != nil {
		return nil, fmt.Errorf("embedded: read car header: %w", err)
	}
	batch := make([]blocks.Block, 0, importBatch)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := s.bs.PutMany(ctx, batch); err != nil {
			return fmt.Errorf("embedded: write blocks: %w", err)
		}
		batch = batch[:0]
		return nil
	}
	for {
		b, err := br.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("embedded: read car: %w: %w", ipfs.ErrCorrupt, err)
		}
		batch = append(batch, b)
		if len(batch) == importBatch {
			if err := flush(); err != nil {
				return nil, err
			}
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	out := make([]string, len(br.Roots))
	for i, root := range br.Roots {
		if err := s.Pin(ctx, root.String()); err != nil {
			return nil, err
		}
		out[i] = root.String()
	}
	return out, nil
}

// getBlock reads one block's bytes; Read and Decode check them.
func (s *Store) getBlock(ctx context.Context, c cid.Cid) ([]byte, error) {
	b, err := s.bs.Get(ctx, c)
	if err != nil {
		return nil, notFound(err)
	}
	return b.RawData(), nil
}

func (s *Store) getNode(ctx context.Context, c cid.Cid) (ipld.Node, error) {
	data, err := s.getBlock(ctx, c)
	if err != nil {
		return nil, err
	}
	return unixfs.Decode(c, data)
}

// notFound maps the IPLD "not found" error to ipfs.ErrNotFound.
func notFound(err error) error {
	if ipld.IsNotFound(err) {
		return fmt.Errorf("%w: %w", ipfs.ErrNotFound, err)
	}
	return err
}

func parseCID(s string) (cid.Cid, error) {
	c, err := cid.Decode(s)
	if err != nil {
		return cid.Undef, fmt.Errorf("%w %q: %w", ipfs.ErrInvalidCID, s, err)
	}
	return c, nil
}

// walk checks that every block of the DAG under root is stored and intact.
func (s *Store) walk(ctx context.Context, root cid.Cid) error {
	stack := []cid.Cid{root}
	seen := cid.NewSet()
	for len(stack) > 0 {
		c := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if !seen.Visit(c) {
			continue
		}
		nd, err := s.getNode(ctx, c)
		if err != nil {
			return err
		}
		for _, l := range nd.Links() {
			stack = append(stack, l.Cid)
		}
	}
	return nil
}
