package kubo_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-base32"

	"github.com/medprov/medprov/internal/testnet"
	"github.com/medprov/medprov/ipfs"
	"github.com/medprov/medprov/ipfs/embedded"
	"github.com/medprov/medprov/ipfs/kubo"
)

func newStore(t testing.TB, api string, timeout time.Duration) *kubo.Store {
	t.Helper()
	s, err := kubo.New(context.Background(), kubo.Config{API: api, Timeout: timeout})
	if err != nil {
		t.Fatalf("kubo.New: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func newEmbedded(t testing.TB) *embedded.Store {
	t.Helper()
	s, err := embedded.New(context.Background(), embedded.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close embedded: %v", err)
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

func TestRoundTripAndCIDsMatchEmbedded(t *testing.T) {
	d := testnet.StartKubo(t)
	s := newStore(t, d.API, 0)
	emb := newEmbedded(t)
	// 175 chunks need a second level in the balanced DAG (174 links a node).
	for _, size := range []int{0, 1, 1000, 262144, 262145, 1<<20 + 3, 175 * 262144} {
		t.Run(fmt.Sprintf("%d bytes round-trip with the embedded store's CID", size), func(t *testing.T) {
			want := randomBytes(t, size)
			c, err := s.Put(t.Context(), want)
			if err != nil {
				t.Fatalf("Put: %v", err)
			}
			embCID, err := emb.Put(t.Context(), want)
			if err != nil {
				t.Fatal(err)
			}
			if c != embCID {
				t.Errorf("kubo CID %s, embedded CID %s", c, embCID)
			}
			got, err := s.Get(t.Context(), c)
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("Get returned %d bytes differing from the %d put", len(got), len(want))
			}
			if ok, err := s.Has(t.Context(), c); !ok || err != nil {
				t.Errorf("Has = %v, %v", ok, err)
			}
		})
	}
}

func TestPutManyIsOneRequestWithOrderedCIDs(t *testing.T) {
	d := testnet.StartKubo(t)
	s := newStore(t, d.API, 0)
	emb := newEmbedded(t)
	payloads := [][]byte{[]byte("x"), randomBytes(t, 600000), []byte("x"), nil, randomBytes(t, 100)}
	got, err := s.PutMany(t.Context(), payloads)
	if err != nil {
		t.Fatal(err)
	}
	want, err := emb.PutMany(t.Context(), payloads)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("kubo PutMany = %v, embedded = %v", got, want)
	}
}

func TestGetRejectsCorruptBlocks(t *testing.T) {
	d := testnet.StartKubo(t)
	s := newStore(t, d.API, 0)
	c, err := s.Put(t.Context(), randomBytes(t, 1000))
	if err != nil {
		t.Fatal(err)
	}
	// kubo does not hash blocks on read, so bytes altered in its repo reach
	// the client; the store must catch them.
	flipBlockOnDisk(t, repoPath(t, d), c)
	got, err := s.Get(t.Context(), c)
	if !errors.Is(err, ipfs.ErrCorrupt) {
		t.Fatalf("Get error = %v, want ErrCorrupt", err)
	}
	if got != nil {
		t.Error("Get returned bytes with ErrCorrupt")
	}
}

func repoPath(t *testing.T, d *testnet.Kubo) string {
	t.Helper()
	for _, kv := range d.Env() {
		if v, ok := strings.CutPrefix(kv, "IPFS_PATH="); ok {
			return v
		}
	}
	t.Fatal("no IPFS_PATH in the daemon's environment")
	return ""
}

// flipBlockOnDisk flips a byte of the block file kubo's flatfs keeps for c.
func flipBlockOnDisk(t *testing.T, repo, c string) {
	t.Helper()
	parsed, err := cid.Decode(c)
	if err != nil {
		t.Fatal(err)
	}
	name := base32.RawStdEncoding.EncodeToString(parsed.Hash()) + ".data"
	matches, err := filepath.Glob(filepath.Join(repo, "blocks", "*", name))
	if err != nil || len(matches) != 1 {
		t.Fatalf("block file %s in %s (this test needs kubo's default flatfs datastore; unset MEDPROV_KUBO_PROFILE): %v, %v", name, repo, matches, err)
	}
	b, err := os.ReadFile(matches[0])
	if err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x01
	if err := os.WriteFile(matches[0], b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestMissingContentAndPins(t *testing.T) {
	d := testnet.StartKubo(t)
	s := newStore(t, d.API, 0)
	ctx := t.Context()
	absent, err := newEmbedded(t).Put(ctx, []byte("never given to kubo"))
	if err != nil {
		t.Fatal(err)
	}
	t.Run("absent content is not found without searching the network", func(t *testing.T) {
		if _, err := s.Get(ctx, absent); !errors.Is(err, ipfs.ErrNotFound) {
			t.Errorf("Get error = %v, want ErrNotFound", err)
		}
		if ok, err := s.Has(ctx, absent); ok || err != nil {
			t.Errorf("Has = %v, %v; want false, nil", ok, err)
		}
		if err := s.Pin(ctx, absent); !errors.Is(err, ipfs.ErrNotFound) {
			t.Errorf("Pin error = %v, want ErrNotFound", err)
		}
	})
	t.Run("a malformed CID is invalid", func(t *testing.T) {
		if _, err := s.Get(ctx, "nope"); !errors.Is(err, ipfs.ErrInvalidCID) {
			t.Errorf("Get error = %v, want ErrInvalidCID", err)
		}
	})
	t.Run("pin and unpin are accepted and unpin is idempotent", func(t *testing.T) {
		c, err := s.Put(ctx, []byte("pinned"))
		if err != nil {
			t.Fatal(err)
		}
		for i, step := range []func(context.Context, string) error{s.Unpin, s.Unpin, s.Pin, s.Pin} {
			if err := step(ctx, c); err != nil {
				t.Errorf("step %d: %v", i, err)
			}
		}
	})
}

func TestMigrateEmbeddedToKubo(t *testing.T) {
	d := testnet.StartKubo(t)
	s := newStore(t, d.API, 0)
	emb := newEmbedded(t)
	ctx := t.Context()
	payloads := [][]byte{[]byte("reading one"), randomBytes(t, 2<<20), randomBytes(t, 5000)}
	cids, err := emb.PutMany(ctx, payloads)
	if err != nil {
		t.Fatal(err)
	}
	roots, err := ipfs.Migrate(ctx, s, emb)
	if err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	slices.Sort(roots)
	want := slices.Clone(cids)
	slices.Sort(want)
	if !slices.Equal(roots, want) {
		t.Errorf("kubo pinned roots %v, want %v", roots, want)
	}
	for i, c := range cids {
		got, err := s.Get(ctx, c)
		if err != nil || !bytes.Equal(got, payloads[i]) {
			t.Errorf("kubo Get %s after migration: %d bytes, %v", c, len(got), err)
		}
	}
}

func TestDaemonDownIsUnavailable(t *testing.T) {
	d := testnet.StartKubo(t)
	s := newStore(t, d.API, 3*time.Second)
	ctx := t.Context()
	c, err := s.Put(ctx, []byte("before the outage"))
	if err != nil {
		t.Fatal(err)
	}
	d.Stop(t)

	ops := map[string]func() error{
		"Put":     func() error { _, err := s.Put(ctx, []byte("during")); return err },
		"PutMany": func() error { _, err := s.PutMany(ctx, [][]byte{{1}, {2}}); return err },
		"Get":     func() error { _, err := s.Get(ctx, c); return err },
		"Has":     func() error { _, err := s.Has(ctx, c); return err },
		"Pin":     func() error { return s.Pin(ctx, c) },
		"Unpin":   func() error { return s.Unpin(ctx, c) },
	}
	for name, op := range ops {
		t.Run(name+" on a stopped daemon is unavailable", func(t *testing.T) {
			if err := op(); !errors.Is(err, ipfs.ErrUnavailable) {
				t.Errorf("error = %v, want ErrUnavailable", err)
			}
		})
	}
	t.Run("New against a stopped daemon is unavailable", func(t *testing.T) {
		if _, err := kubo.New(ctx, kubo.Config{API: d.API, Timeout: time.Second}); !errors.Is(err, ipfs.ErrUnavailable) {
			t.Errorf("New error = %v, want ErrUnavailable", err)
		}
	})
	t.Run("a retry after the daemon is back succeeds", func(t *testing.T) {
		d.Start(t)
		got, err := s.Get(ctx, c)
		if err != nil || string(got) != "before the outage" {
			t.Errorf("Get after restart = %q, %v", got, err)
		}
	})
}

func TestHungDaemonIsUnavailable(t *testing.T) {
	d := testnet.StartKubo(t)
	s := newStore(t, d.API, 500*time.Millisecond)
	ctx := t.Context()
	c, err := s.Put(ctx, []byte("before the hang"))
	if err != nil {
		t.Fatal(err)
	}
	slow := newStore(t, d.API, time.Hour)
	d.Freeze(t)
	t.Run("Get on a hung daemon gives up as unavailable", func(t *testing.T) {
		if _, err := s.Get(ctx, c); !errors.Is(err, ipfs.ErrUnavailable) {
			t.Errorf("Get error = %v, want ErrUnavailable", err)
		}
	})
	t.Run("Put on a hung daemon gives up as unavailable", func(t *testing.T) {
		if _, err := s.Put(ctx, []byte("during the hang")); !errors.Is(err, ipfs.ErrUnavailable) {
			t.Errorf("Put error = %v, want ErrUnavailable", err)
		}
	})
	t.Run("a caller's deadline also ends the wait as unavailable", func(t *testing.T) {
		short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		if ok, err := slow.Has(short, c); !errors.Is(err, ipfs.ErrUnavailable) {
			t.Errorf("Has = %v, %v; want ErrUnavailable", ok, err)
		}
	})
	d.Thaw(t)
	t.Run("the daemon answers again once it resumes", func(t *testing.T) {
		got, err := s.Get(ctx, c)
		if err != nil || string(got) != "before the hang" {
			t.Errorf("Get after thaw = %q, %v", got, err)
		}
	})
}

func TestSilentDaemonIsUnavailable(t *testing.T) {
	// A listener that accepts connections and never answers: the store must
	// give up after its timeout instead of hanging.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			conns = append(conns, conn)
		}
	}()
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Error(err)
		}
		<-done
		for _, c := range conns {
			_ = c.Close() // test listener; the peer is gone
		}
	})
	_, err = kubo.New(t.Context(), kubo.Config{API: l.Addr().String(), Timeout: 300 * time.Millisecond})
	if !errors.Is(err, ipfs.ErrUnavailable) {
		t.Errorf("New error = %v, want ErrUnavailable", err)
	}
}

func benchPayloads(b *testing.B, n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = randomBytes(b, 1024)
	}
	return out
}

func BenchmarkPut(b *testing.B) {
	d := testnet.StartKubo(b)
	s := newStore(b, d.API, 0)
	payload := randomBytes(b, 1024)
	b.SetBytes(int64(len(payload)))
	for b.Loop() {
		if _, err := rand.Read(payload[:16]); err != nil {
			b.Fatal(err)
		}
		if _, err := s.Put(context.Background(), payload); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "puts/s")
}

// BenchmarkPutMany100 adds 100 one-KiB payloads per request; compare its
// puts/s with BenchmarkPut's.
func BenchmarkPutMany100(b *testing.B) {
	d := testnet.StartKubo(b)
	s := newStore(b, d.API, 0)
	batch := benchPayloads(b, 100)
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
	d := testnet.StartKubo(b)
	s := newStore(b, d.API, 0)
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
