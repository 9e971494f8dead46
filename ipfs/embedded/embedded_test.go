package embedded_test

import (
	"bytes"
	"crypto/rand"
	"path/filepath"
	"slices"
	"testing"

	"github.com/ipfs/boxo/datastore/dshelp"
	"github.com/ipfs/go-cid"
	leveldb "github.com/ipfs/go-ds-leveldb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/medprov/medprov/internal/testkit"
	"github.com/medprov/medprov/ipfs"
	"github.com/medprov/medprov/ipfs/embedded"
	"github.com/medprov/medprov/ipfs/ipfstest"
)

func TestStoreContract(t *testing.T) {
	ipfstest.Run(t, &backend{dirs: map[ipfs.Store]string{}})
}

// backend gives ipfstest embedded stores, each in its own directory.
type backend struct {
	dirs map[ipfs.Store]string
}

func (b *backend) Open(t *testing.T) ipfs.Store {
	return b.open(t, t.TempDir())
}

func (b *backend) open(t *testing.T, dir string) ipfs.Store {
	t.Helper()
	s, err := embedded.New(t.Context(), embedded.Config{Dir: dir})
	require.NoError(t, err, "embedded.New")
	b.dirs[s] = dir
	return s
}

// dir returns the directory s was opened in, and forgets s.
func (b *backend) dir(t *testing.T, s ipfs.Store) string {
	t.Helper()
	dir, ok := b.dirs[s]
	require.True(t, ok, "the store was not opened by this backend")
	delete(b.dirs, s)
	return dir
}

func (b *backend) Reopen(t *testing.T, s ipfs.Store) ipfs.Store {
	dir := b.dir(t, s)
	require.NoError(t, s.Close(), "Close")
	return b.open(t, dir)
}

// Corrupt closes s, because LevelDB locks its directory, rewrites the block
// with one byte flipped and opens the store again.
func (b *backend) Corrupt(t *testing.T, s ipfs.Store, block string) ipfs.Store {
	dir := b.dir(t, s)
	require.NoError(t, s.Close(), "Close")
	flipByte(t, filepath.Join(dir, "blocks"), block)
	return b.open(t, dir)
}

func (b *backend) Pinned(t *testing.T, s ipfs.Store, c string) bool {
	pins, err := s.(*embedded.Store).Pins(t.Context())
	require.NoError(t, err, "Pins")
	return slices.Contains(pins, c)
}

// flipByte flips the middle byte of block in the block datastore at dir, as
// disk corruption or tampering would.
func flipByte(t *testing.T, dir, block string) {
	t.Helper()
	ctx := t.Context()
	c, err := cid.Decode(block)
	require.NoError(t, err)
	blocks, err := leveldb.NewDatastore(dir, nil)
	require.NoError(t, err)
	defer func() { assert.NoError(t, blocks.Close()) }()
	key := dshelp.MultihashToDsKey(c.Hash())
	value, err := blocks.Get(ctx, key)
	require.NoError(t, err, "block %s under %s", block, dir)
	value[len(value)/2] ^= 0x01
	require.NoError(t, blocks.Put(ctx, key, value))
}

func TestCARExportImport(t *testing.T) {
	src := ipfstest.EmbeddedStore(t, "")
	ctx := t.Context()
	payloads := [][]byte{[]byte("small"), testkit.RandomBytes(t, 1<<20), testkit.RandomBytes(t, 262144)}
	cids, err := src.PutMany(ctx, payloads)
	require.NoError(t, err)
	var car bytes.Buffer
	roots, err := src.ExportCAR(ctx, &car)
	require.NoError(t, err, "ExportCAR")
	assert.ElementsMatch(t, cids, roots, "exported roots")

	t.Run("an imported CAR gives the same CIDs and bytes", func(t *testing.T) {
		dst := ipfstest.EmbeddedStore(t, "")
		imported, err := dst.ImportCAR(ctx, bytes.NewReader(car.Bytes()))
		require.NoError(t, err, "ImportCAR")
		assert.ElementsMatch(t, cids, imported, "imported roots")
		for i, c := range cids {
			got, err := dst.Get(ctx, c)
			if assert.NoError(t, err, "Get %s after import", c) {
				assert.True(t, bytes.Equal(got, payloads[i]), "Get %s after import: %d bytes that differ from the %d exported", c, len(got), len(payloads[i]))
			}
		}
	})
	t.Run("a CAR with a flipped byte is refused", func(t *testing.T) {
		bad := bytes.Clone(car.Bytes())
		bad[len(bad)-10] ^= 0x01
		dst := ipfstest.EmbeddedStore(t, "")
		_, err := dst.ImportCAR(ctx, bytes.NewReader(bad))
		require.ErrorIs(t, err, ipfs.ErrCorrupt)
	})
	t.Run("Migrate copies a whole store", func(t *testing.T) {
		dst := ipfstest.EmbeddedStore(t, "")
		roots, err := ipfs.Migrate(ctx, dst, src)
		require.NoError(t, err)
		assert.ElementsMatch(t, cids, roots, "migrated roots")
	})
}

func BenchmarkPut(b *testing.B) {
	s := ipfstest.EmbeddedStore(b, "")
	payload := testkit.RandomBytes(b, 1024)
	ctx := b.Context()
	b.SetBytes(int64(len(payload)))
	for b.Loop() {
		// A fresh payload each time, so every Put writes a new block.
		_, err := rand.Read(payload[:16])
		require.NoError(b, err)
		_, err = s.Put(ctx, payload)
		require.NoError(b, err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "puts/s")
}

// BenchmarkPutMany100 stores 100 one-KiB payloads per call; compare its
// puts/s with BenchmarkPut's.
func BenchmarkPutMany100(b *testing.B) {
	s := ipfstest.EmbeddedStore(b, "")
	batch := make([][]byte, 100)
	for i := range batch {
		batch[i] = testkit.RandomBytes(b, 1024)
	}
	ctx := b.Context()
	for b.Loop() {
		for _, p := range batch {
			_, err := rand.Read(p[:16])
			require.NoError(b, err)
		}
		_, err := s.PutMany(ctx, batch)
		require.NoError(b, err)
	}
	b.ReportMetric(float64(b.N*len(batch))/b.Elapsed().Seconds(), "puts/s")
}

func BenchmarkGet(b *testing.B) {
	s := ipfstest.EmbeddedStore(b, "")
	ctx := b.Context()
	c, err := s.Put(ctx, testkit.RandomBytes(b, 1024))
	require.NoError(b, err)
	b.SetBytes(1024)
	for b.Loop() {
		_, err := s.Get(ctx, c)
		require.NoError(b, err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "gets/s")
}
