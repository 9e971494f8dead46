package kubo_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-base32"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/medprov/medprov/internal/testkit"
	"github.com/medprov/medprov/internal/testnet"
	"github.com/medprov/medprov/ipfs"
	"github.com/medprov/medprov/ipfs/ipfstest"
	"github.com/medprov/medprov/ipfs/kubo"
)

// TestStoreContract runs on a flatfs repo: its corruption case alters a
// block file on disk. Every other test, and the scripts, use pebbleds.
func TestStoreContract(t *testing.T) {
	ipfstest.Run(t, backend{d: testnet.StartKuboProfile(t, "flatfs")})
}

// backend gives ipfstest kubo stores that all talk to one daemon.
type backend struct {
	d *testnet.Kubo
}

func (b backend) Open(t *testing.T) ipfs.Store {
	s, err := kubo.New(t.Context(), kubo.Config{API: b.d.API})
	require.NoError(t, err, "kubo.New")
	return s
}

// Reopen restarts the daemon, so that what it reads back is what it wrote
// to its repo.
func (b backend) Reopen(t *testing.T, s ipfs.Store) ipfs.Store {
	require.NoError(t, s.Close(), "Close")
	b.d.Stop(t)
	b.d.Start(t)
	return b.Open(t)
}

// Corrupt alters the block file in the repo. kubo does not hash blocks on
// read, so the altered bytes reach the client, which must catch them.
func (b backend) Corrupt(t *testing.T, s ipfs.Store, block string) ipfs.Store {
	flipBlockOnDisk(t, repoPath(t, b.d), block)
	return s
}

// Pinned asks the daemon for the pin of c, recursive, direct or indirect.
func (b backend) Pinned(t *testing.T, _ ipfs.Store, c string) bool {
	u := "http://" + b.d.API + "/api/v0/pin/ls?" + url.Values{"arg": {c}, "type": {"all"}}.Encode()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, u, nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err, "pin/ls")
	defer func() { assert.NoError(t, resp.Body.Close()) }()
	var answer struct {
		Keys    map[string]struct{ Type string }
		Message string
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&answer), "pin/ls answer")
	if resp.StatusCode != http.StatusOK {
		require.Contains(t, answer.Message, "not pinned", "pin/ls %s: %s", c, resp.Status)
		return false
	}
	_, ok := answer.Keys[c]
	return ok
}

func repoPath(t *testing.T, d *testnet.Kubo) string {
	t.Helper()
	for _, kv := range d.Env() {
		if v, ok := strings.CutPrefix(kv, "IPFS_PATH="); ok {
			return v
		}
	}
	require.FailNow(t, "no IPFS_PATH in the daemon's environment")
	return ""
}

// flipBlockOnDisk flips the middle byte of the block file kubo's flatfs
// keeps for c.
func flipBlockOnDisk(t *testing.T, repo, c string) {
	t.Helper()
	parsed, err := cid.Decode(c)
	require.NoError(t, err)
	name := base32.RawStdEncoding.EncodeToString(parsed.Hash()) + ".data"
	matches, err := filepath.Glob(filepath.Join(repo, "blocks", "*", name))
	require.NoError(t, err)
	require.Len(t, matches, 1, "block file %s in %s (this test needs a flatfs repo)", name, repo)
	b, err := os.ReadFile(matches[0])
	require.NoError(t, err)
	b[len(b)/2] ^= 0x01
	require.NoError(t, os.WriteFile(matches[0], b, 0o600))
}

// TestPutManySurvivesKill: what PutMany acknowledged is in the repo after
// the daemon is killed (SIGKILL) and started again, on both datastores the
// scripts offer.
func TestPutManySurvivesKill(t *testing.T) {
	for _, profile := range []string{"pebbleds", "flatfs"} {
		t.Run(profile, func(t *testing.T) {
			d := testnet.StartKuboProfile(t, profile)
			s := ipfstest.KuboStore(t, d.API, 0)
			data := make([][]byte, 100)
			for i := range data {
				data[i] = testkit.RandomBytes(t, 200+i)
			}
			cids, err := s.PutMany(t.Context(), data)
			require.NoError(t, err, "PutMany")
			d.Kill(t)
			d.Start(t)
			s = ipfstest.KuboStore(t, d.API, 0)
			for i, c := range cids {
				got, err := s.Get(t.Context(), c)
				require.NoError(t, err, "Get %s after the kill", c)
				assert.Equal(t, data[i], got, "payload %d after the kill", i)
			}
		})
	}
}

func TestCIDsMatchEmbedded(t *testing.T) {
	d := testnet.StartKubo(t)
	s := ipfstest.KuboStore(t, d.API, 0)
	emb := ipfstest.EmbeddedStore(t, "")
	// 175 chunks need a second level in the balanced DAG (174 links a node).
	for _, size := range []int{0, 1, 1000, 262144, 262145, 1<<20 + 3, 175 * 262144} {
		t.Run(fmt.Sprintf("%d bytes get the embedded store's CID", size), func(t *testing.T) {
			data := testkit.RandomBytes(t, size)
			got, err := s.Put(t.Context(), data)
			require.NoError(t, err, "kubo Put")
			want, err := emb.Put(t.Context(), data)
			require.NoError(t, err, "embedded Put")
			assert.Equal(t, want, got, "kubo CID")
		})
	}
}

func TestPutManyCIDsMatchEmbedded(t *testing.T) {
	d := testnet.StartKubo(t)
	s := ipfstest.KuboStore(t, d.API, 0)
	emb := ipfstest.EmbeddedStore(t, "")
	payloads := [][]byte{[]byte("x"), testkit.RandomBytes(t, 600000), []byte("x"), nil, testkit.RandomBytes(t, 100)}
	got, err := s.PutMany(t.Context(), payloads)
	require.NoError(t, err, "kubo PutMany")
	want, err := emb.PutMany(t.Context(), payloads)
	require.NoError(t, err, "embedded PutMany")
	assert.Equal(t, want, got, "kubo PutMany CIDs")
}

func TestMigrateEmbeddedToKubo(t *testing.T) {
	d := testnet.StartKubo(t)
	s := ipfstest.KuboStore(t, d.API, 0)
	emb := ipfstest.EmbeddedStore(t, "")
	ctx := t.Context()
	payloads := [][]byte{[]byte("reading one"), testkit.RandomBytes(t, 2<<20), testkit.RandomBytes(t, 5000)}
	cids, err := emb.PutMany(ctx, payloads)
	require.NoError(t, err)
	roots, err := ipfs.Migrate(ctx, s, emb)
	require.NoError(t, err, "Migrate")
	assert.ElementsMatch(t, cids, roots, "kubo pinned roots")
	for i, c := range cids {
		got, err := s.Get(ctx, c)
		if assert.NoError(t, err, "kubo Get %s after migration", c) {
			assert.True(t, bytes.Equal(got, payloads[i]), "kubo Get %s after migration: %d bytes that differ from the %d put", c, len(got), len(payloads[i]))
		}
	}
}

func TestDaemonDownIsUnavailable(t *testing.T) {
	d := testnet.StartKubo(t)
	s := ipfstest.KuboStore(t, d.API, 3*time.Second)
	ctx := t.Context()
	c, err := s.Put(ctx, []byte("before the outage"))
	require.NoError(t, err)
	d.Stop(t)

	ops := []struct {
		name string
		call func() error
	}{
		{"Put", func() error { _, err := s.Put(ctx, []byte("during")); return err }},
		{"PutMany", func() error { _, err := s.PutMany(ctx, [][]byte{{1}, {2}}); return err }},
		{"Get", func() error { _, err := s.Get(ctx, c); return err }},
		{"Has", func() error { _, err := s.Has(ctx, c); return err }},
		{"Pin", func() error { return s.Pin(ctx, c) }},
		{"Unpin", func() error { return s.Unpin(ctx, c) }},
	}
	for _, op := range ops {
		t.Run(op.name+" on a stopped daemon is unavailable", func(t *testing.T) {
			require.ErrorIs(t, op.call(), ipfs.ErrUnavailable)
		})
	}
	t.Run("New against a stopped daemon is unavailable", func(t *testing.T) {
		_, err := kubo.New(ctx, kubo.Config{API: d.API, Timeout: time.Second})
		require.ErrorIs(t, err, ipfs.ErrUnavailable)
	})
	t.Run("a retry after the daemon is back succeeds", func(t *testing.T) {
		d.Start(t)
		got, err := s.Get(ctx, c)
		require.NoError(t, err, "Get after restart")
		assert.Equal(t, "before the outage", string(got), "Get after restart")
	})
}

func TestHungDaemonIsUnavailable(t *testing.T) {
	d := testnet.StartKubo(t)
	s := ipfstest.KuboStore(t, d.API, 500*time.Millisecond)
	ctx := t.Context()
	c, err := s.Put(ctx, []byte("before the hang"))
	require.NoError(t, err)
	slow := ipfstest.KuboStore(t, d.API, time.Hour)
	d.Freeze(t)
	t.Run("Get on a hung daemon gives up as unavailable", func(t *testing.T) {
		_, err := s.Get(ctx, c)
		require.ErrorIs(t, err, ipfs.ErrUnavailable)
	})
	t.Run("Put on a hung daemon gives up as unavailable", func(t *testing.T) {
		_, err := s.Put(ctx, []byte("during the hang"))
		require.ErrorIs(t, err, ipfs.ErrUnavailable)
	})
	t.Run("a caller's deadline also ends the wait as unavailable", func(t *testing.T) {
		short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		ok, err := slow.Has(short, c)
		require.ErrorIs(t, err, ipfs.ErrUnavailable, "Has = %v", ok)
	})
	d.Thaw(t)
	t.Run("the daemon answers again once it resumes", func(t *testing.T) {
		got, err := s.Get(ctx, c)
		require.NoError(t, err, "Get after thaw")
		assert.Equal(t, "before the hang", string(got), "Get after thaw")
	})
}

func TestSilentDaemonIsUnavailable(t *testing.T) {
	// A listener that accepts connections and never answers: the store must
	// give up after its timeout instead of hanging.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
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
		assert.NoError(t, l.Close())
		<-done
		for _, c := range conns {
			_ = c.Close() // test listener; the peer is gone
		}
	})
	_, err = kubo.New(t.Context(), kubo.Config{API: l.Addr().String(), Timeout: 300 * time.Millisecond})
	require.ErrorIs(t, err, ipfs.ErrUnavailable)
}

func benchPayloads(b *testing.B, n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = testkit.RandomBytes(b, 1024)
	}
	return out
}

func BenchmarkPut(b *testing.B) {
	d := testnet.StartKubo(b)
	s := ipfstest.KuboStore(b, d.API, 0)
	payload := testkit.RandomBytes(b, 1024)
	ctx := b.Context()
	b.SetBytes(int64(len(payload)))
	for b.Loop() {
		_, err := rand.Read(payload[:16])
		require.NoError(b, err)
		_, err = s.Put(ctx, payload)
		require.NoError(b, err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "puts/s")
}

// BenchmarkPutMany100 adds 100 one-KiB payloads per request; compare its
// puts/s with BenchmarkPut's.
func BenchmarkPutMany100(b *testing.B) {
	d := testnet.StartKubo(b)
	s := ipfstest.KuboStore(b, d.API, 0)
	batch := benchPayloads(b, 100)
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
	d := testnet.StartKubo(b)
	s := ipfstest.KuboStore(b, d.API, 0)
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
