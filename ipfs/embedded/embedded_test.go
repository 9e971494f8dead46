package embedded_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"
	leveldb "github.com/ipfs/go-ds-leveldb"

	"github.com/medprov/medprov/ipfs"
	"github.com/medprov/medprov/ipfs/embedded"
)

func newStore(t testing.TB, dir string) *embedded.Store {
	t.Helper()
	s, err := embedded.New(context.Background(), embedded.Config{Dir: dir})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func randomBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestPutGetRoundTrip(t *testing.T) {
	s := newStore(t, t.TempDir())
	for _, size := range []int{0, 1, 1000, 262144, 262145, 1<<20 + 7, 3 << 20} {
		t.Run(fmt.Sprintf("%d bytes come back unchanged", size), func(t *testing.T) {
			want := randomBytes(t, size)
			c, err := s.Put(t.Context(), want)
			if err != nil {
				t.Fatalf("Put: %v", err)
			}
			got, err := s.Get(t.Context(), c)
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("Get returned %d bytes that differ from the %d put", len(got), len(want))
			}
			again, err := s.Put(t.Context(), want)
			if err != nil || again != c {
				t.Errorf("second Put = %s, %v; want %s", again, err, c)
			}
		})
	}
}

// The expected CIDs were produced by kubo v0.42.0:
// `ipfs add --cid-version=1 -q FILE`.
func TestCIDsMatchKubo(t *testing.T) {
	s := newStore(t, t.TempDir())
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"a one-block file is a raw leaf", []byte("hello\n"), "bafkreicysg23kiwv34eg2d7qweipxwosdo2py4ldv42nbauguluen5v6am"},
		{"a three-chunk file is a dag-pb root over raw leaves", make([]byte, 600000), "bafybeib7pcuusxw7atqqc4apxvkezssdjbqkkhymjpo5x7bsj5sytn2ph4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.Put(t.Context(), tt.data)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("CID = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestGetRejectsCorruptBlocks(t *testing.T) {
	for _, size := range []int{100, 1 << 20} {
		t.Run(fmt.Sprintf("a flipped byte on disk in a %d-byte file is corrupt", size), func(t *testing.T) {
			dir := t.TempDir()
			s, err := embedded.New(t.Context(), embedded.Config{Dir: dir})
			if err != nil {
				t.Fatal(err)
			}
			c, err := s.Put(t.Context(), randomBytes(t, size))
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			flipByteInLargestBlock(t, filepath.Join(dir, "blocks"))
			s = newStore(t, dir)
			got, err := s.Get(t.Context(), c)
			if !errors.Is(err, ipfs.ErrCorrupt) {
				t.Fatalf("Get error = %v, want ErrCorrupt", err)
			}
			if got != nil {
				t.Error("Get returned bytes with ErrCorrupt")
			}
		})
	}
}

// flipByteInLargestBlock rewrites the largest block in the block datastore
// at dir with one byte flipped, as disk corruption or tampering would.
func flipByteInLargestBlock(t *testing.T, dir string) {
	t.Helper()
	ctx := t.Context()
	blocks, err := leveldb.NewDatastore(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := blocks.Close(); err != nil {
			t.Error(err)
		}
	}()
	res, err := blocks.Query(ctx, query.Query{})
	if err != nil {
		t.Fatal(err)
	}
	var key string
	var value []byte
	for r := range res.Next() {
		if r.Error != nil {
			t.Fatal(r.Error)
		}
		if len(r.Value) > len(value) {
			key, value = r.Key, r.Value
		}
	}
	if key == "" {
		t.Fatalf("no blocks under %s", dir)
	}
	value[len(value)/2] ^= 0x01
	if err := blocks.Put(ctx, datastore.NewKey(key), value); err != nil {
		t.Fatal(err)
	}
}

func TestMissingAndInvalid(t *testing.T) {
	s := newStore(t, t.TempDir())
	other := newStore(t, t.TempDir())
	absent, err := other.Put(t.Context(), []byte("only in the other store"))
	if err != nil {
		t.Fatal(err)
	}
	t.Run("absent content is not found", func(t *testing.T) {
		if _, err := s.Get(t.Context(), absent); !errors.Is(err, ipfs.ErrNotFound) {
			t.Errorf("Get error = %v, want ErrNotFound", err)
		}
		if ok, err := s.Has(t.Context(), absent); ok || err != nil {
			t.Errorf("Has = %v, %v; want false, nil", ok, err)
		}
		if err := s.Pin(t.Context(), absent); !errors.Is(err, ipfs.ErrNotFound) {
			t.Errorf("Pin error = %v, want ErrNotFound", err)
		}
	})
	t.Run("a malformed CID is invalid", func(t *testing.T) {
		if _, err := s.Get(t.Context(), "not-a-cid"); !errors.Is(err, ipfs.ErrInvalidCID) {
			t.Errorf("Get error = %v, want ErrInvalidCID", err)
		}
	})
}

func TestPinUnpin(t *testing.T) {
	s := newStore(t, t.TempDir())
	ctx := t.Context()
	c, err := s.Put(ctx, randomBytes(t, 700000))
	if err != nil {
		t.Fatal(err)
	}
	pinned := func() bool {
		pins, err := s.Pins(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return slices.Contains(pins, c)
	}
	if !pinned() {
		t.Fatal("Put did not pin")
	}
	if err := s.Unpin(ctx, c); err != nil {
		t.Fatal(err)
	}
	if pinned() {
		t.Error("still pinned after Unpin")
	}
	if err := s.Unpin(ctx, c); err != nil {
		t.Errorf("Unpin of unpinned content: %v", err)
	}
	if err := s.Pin(ctx, c); err != nil {
		t.Fatal(err)
	}
	if !pinned() {
		t.Error("not pinned after Pin")
	}
}

func TestPutManyKeepsOrder(t *testing.T) {
	s := newStore(t, t.TempDir())
	payloads := [][]byte{[]byte("a"), randomBytes(t, 300000), []byte("a"), nil}
	cids, err := s.PutMany(t.Context(), payloads)
	if err != nil {
		t.Fatal(err)
	}
	if len(cids) != len(payloads) || cids[0] != cids[2] || cids[0] == cids[1] {
		t.Fatalf("PutMany CIDs = %v", cids)
	}
	for i, c := range cids {
		one, err := s.Put(t.Context(), payloads[i])
		if err != nil || one != c {
			t.Errorf("payload %d: Put = %s, %v; PutMany gave %s", i, one, err, c)
		}
	}
}

func TestContentSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	want := randomBytes(t, 500000)
	s, err := embedded.New(t.Context(), embedded.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.Put(t.Context(), want)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := newStore(t, dir)
	got, err := s2.Get(t.Context(), c)
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("Get after reopen: %d bytes, %v", len(got), err)
	}
	pins, err := s2.Pins(t.Context())
	if err != nil || !slices.Contains(pins, c) {
		t.Errorf("pins after reopen = %v, %v", pins, err)
	}
}

func TestCARExportImport(t *testing.T) {
	src := newStore(t, t.TempDir())
	ctx := t.Context()
	payloads := [][]byte{[]byte("small"), randomBytes(t, 1<<20), randomBytes(t, 262144)}
	cids, err := src.PutMany(ctx, payloads)
	if err != nil {
		t.Fatal(err)
	}
	var car bytes.Buffer
	roots, err := src.ExportCAR(ctx, &car)
	if err != nil {
		t.Fatalf("ExportCAR: %v", err)
	}
	if !sameSet(roots, cids) {
		t.Errorf("exported roots %v, want %v", roots, cids)
	}

	t.Run("an imported CAR gives the same CIDs and bytes", func(t *testing.T) {
		dst := newStore(t, t.TempDir())
		imported, err := dst.ImportCAR(ctx, bytes.NewReader(car.Bytes()))
		if err != nil {
			t.Fatalf("ImportCAR: %v", err)
		}
		if !sameSet(imported, cids) {
			t.Errorf("imported roots %v, want %v", imported, cids)
		}
		for i, c := range cids {
			got, err := dst.Get(ctx, c)
			if err != nil || !bytes.Equal(got, payloads[i]) {
				t.Errorf("Get %s after import: %d bytes, %v", c, len(got), err)
			}
		}
	})
	t.Run("a CAR with a flipped byte is refused", func(t *testing.T) {
		bad := bytes.Clone(car.Bytes())
		bad[len(bad)-10] ^= 0x01
		dst := newStore(t, t.TempDir())
		if _, err := dst.ImportCAR(ctx, bytes.NewReader(bad)); !errors.Is(err, ipfs.ErrCorrupt) {
			t.Errorf("ImportCAR error = %v, want ErrCorrupt", err)
		}
	})
	t.Run("Migrate copies a whole store", func(t *testing.T) {
		dst := newStore(t, t.TempDir())
		roots, err := ipfs.Migrate(ctx, dst, src)
		if err != nil {
			t.Fatal(err)
		}
		if !sameSet(roots, cids) {
			t.Errorf("migrated roots %v, want %v", roots, cids)
		}
	})
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(slices.Compact(a), slices.Compact(b))
}

func BenchmarkPut(b *testing.B) {
	s := newStore(b, b.TempDir())
	payload := randomBytes(b, 1024)
	b.SetBytes(int64(len(payload)))
	for b.Loop() {
		// A fresh payload each time, so every Put writes a new block.
		if _, err := rand.Read(payload[:16]); err != nil {
			b.Fatal(err)
		}
		if _, err := s.Put(context.Background(), payload); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "puts/s")
}

// BenchmarkPutMany100 stores 100 one-KiB payloads per call; compare its
// puts/s with BenchmarkPut's.
func BenchmarkPutMany100(b *testing.B) {
	s := newStore(b, b.TempDir())
	batch := make([][]byte, 100)
	for i := range batch {
		batch[i] = randomBytes(b, 1024)
	}
	for b.Loop() {
		for _, p := range batch {
			if _, err := rand.Read(p[:16]); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := s.PutMany(context.Background(), batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(batch))/b.Elapsed().Seconds(), "puts/s")
}

func BenchmarkGet(b *testing.B) {
	s := newStore(b, b.TempDir())
	c, err := s.Put(context.Background(), randomBytes(b, 1024))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(1024)
	for b.Loop() {
		if _, err := s.Get(context.Background(), c); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "gets/s")
}
