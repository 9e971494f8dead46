package seal

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"github.com/medprov/medprov/internal/testkit"
)

func newTestKeyring(tb testing.TB) (*Keyring, KeyringConfig) {
	tb.Helper()
	cfg := KeyringConfig{Path: filepath.Join(tb.TempDir(), "keyring.db"), MasterKey: testkit.RandomBytes(tb, MasterKeySize)}
	k, err := OpenKeyring(tb.Context(), cfg)
	require.NoError(tb, err, "OpenKeyring")
	tb.Cleanup(func() { assert.NoError(tb, k.Close(), "Close") })
	return k, cfg
}

func mustSeal(tb testing.TB, k *Keyring, patient, reading string, plaintext []byte) []byte {
	tb.Helper()
	sealed, err := k.Seal(tb.Context(), patient, reading, plaintext)
	require.NoError(tb, err, "Seal(%s, %s)", patient, reading)
	return sealed
}

func TestSealOpenRoundTrip(t *testing.T) {
	k, _ := newTestKeyring(t)
	for _, size := range []int{0, 1, 1000, 256 << 10, 4 << 20} {
		t.Run(fmt.Sprintf("a %d-byte reading opens to the same bytes", size), func(t *testing.T) {
			want := testkit.RandomBytes(t, size)
			sealed := mustSeal(t, k, "patient-1", "dev:1", want)
			assert.Equal(t, size+Overhead, len(sealed), "sealed length")
			if size >= 16 {
				assert.False(t, bytes.Contains(sealed, want[:16]), "sealed bytes contain plaintext")
			}
			got, err := k.Open(t.Context(), "patient-1", "dev:1", sealed)
			require.NoError(t, err, "Open")
			// bytes.Equal, not assert.Equal: a diff of megabytes helps no one.
			assert.True(t, bytes.Equal(got, want), "opened bytes differ from the plaintext")
		})
	}
	t.Run("sealing the same bytes twice gives different ciphertexts", func(t *testing.T) {
		p := []byte("same")
		a, b := mustSeal(t, k, "patient-1", "dev:2", p), mustSeal(t, k, "patient-1", "dev:2", p)
		assert.NotEqual(t, a, b, "two seals are identical: data key or nonce reused")
	})
}

func TestOpenRejectsBadInput(t *testing.T) {
	k, _ := newTestKeyring(t)
	plaintext := []byte(`{"deviceId":"dev","seq":1,"value":72}`)
	sealed := mustSeal(t, k, "alice", "dev:1", plaintext)
	otherReading := mustSeal(t, k, "alice", "dev:2", plaintext)
	bobs := mustSeal(t, k, "bob", "dev:1", plaintext)

	flip := func(off int) []byte {
		b := bytes.Clone(sealed)
		b[off] ^= 0x01
		return b
	}
	tests := []struct {
		name    string
		patient string
		reading string
		input   []byte
		want    error
	}{
		{"empty input is truncated", "alice", "dev:1", nil, ErrTruncated},
		{"one byte is truncated", "alice", "dev:1", sealed[:1], ErrTruncated},
		{"a header without its tag is truncated", "alice", "dev:1", sealed[:Overhead-1], ErrTruncated},
		{"a cut-off ciphertext is corrupt", "alice", "dev:1", sealed[:len(sealed)-1], ErrCorrupt},
		{"an unknown version is refused", "alice", "dev:1", flip(0), ErrUnsupportedVersion},
		{"an unknown algorithm is refused", "alice", "dev:1", flip(1), ErrUnsupportedAlgorithm},
		{"a flipped key ID is a wrong key", "alice", "dev:1", flip(offKeyID), ErrWrongKey},
		{"a flipped wrap nonce is corrupt", "alice", "dev:1", flip(offWrapNonce), ErrCorrupt},
		{"a flipped wrapped key is corrupt", "alice", "dev:1", flip(offWrapped + 3), ErrCorrupt},
		{"a flipped data nonce is corrupt", "alice", "dev:1", flip(offDataNonce), ErrCorrupt},
		{"a flipped ciphertext byte is corrupt", "alice", "dev:1", flip(headerSize + 2), ErrCorrupt},
		{"a flipped tag byte is corrupt", "alice", "dev:1", flip(len(sealed) - 1), ErrCorrupt},
		{"another reading's ciphertext swapped in is corrupt", "alice", "dev:1", otherReading, ErrCorrupt},
		{"a ciphertext opened under another reading ID is corrupt", "alice", "dev:3", sealed, ErrCorrupt},
		{"another patient's ciphertext is a wrong key", "alice", "dev:1", bobs, ErrWrongKey},
		{"a patient without keys is a wrong key", "carol", "dev:1", sealed, ErrWrongKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := k.Open(t.Context(), tt.patient, tt.reading, tt.input)
			require.ErrorIs(t, err, tt.want)
			assert.Nil(t, got, "Open returned %d bytes with an error", len(got))
		})
	}
}

func TestShred(t *testing.T) {
	k, cfg := newTestKeyring(t)
	ctx := t.Context()
	var alice [][]byte
	for i := range 5 {
		alice = append(alice, mustSeal(t, k, "alice", fmt.Sprintf("dev:%d", i), []byte("alice data")))
	}
	_, err := k.Rotate(ctx, "alice")
	require.NoError(t, err, "Rotate")
	alice = append(alice, mustSeal(t, k, "alice", "dev:5", []byte("alice data")))
	bob := mustSeal(t, k, "bob", "dev:0", []byte("bob data"))

	wrapped := storedWrappedKeys(t, k, "alice")
	require.Len(t, wrapped, 2, "alice's stored keys")
	require.NoError(t, k.Shred(ctx, "alice"), "Shred")

	t.Run("every reading of the shredded patient is erased", func(t *testing.T) {
		for i, s := range alice {
			_, err := k.Open(ctx, "alice", fmt.Sprintf("dev:%d", i), s)
			assert.ErrorIs(t, err, ErrErased, "Open reading %d", i)
		}
	})
	t.Run("new readings of the shredded patient are refused", func(t *testing.T) {
		_, err := k.Seal(ctx, "alice", "dev:9", []byte("x"))
		assert.ErrorIs(t, err, ErrErased, "Seal")
		_, err = k.Rotate(ctx, "alice")
		assert.ErrorIs(t, err, ErrErased, "Rotate")
	})
	t.Run("other patients still open", func(t *testing.T) {
		got, err := k.Open(ctx, "bob", "dev:0", bob)
		require.NoError(t, err, "Open bob")
		assert.Equal(t, "bob data", string(got), "Open bob")
	})
	t.Run("the keyring file no longer holds the wrapped keys", func(t *testing.T) {
		raw, err := os.ReadFile(cfg.Path)
		require.NoError(t, err)
		for _, w := range wrapped {
			assert.False(t, bytes.Contains(raw, w), "keyring file still contains wrapped key %x...", w[:8])
		}
	})
	t.Run("erasure survives reopening", func(t *testing.T) {
		require.NoError(t, k.Close())
		k2, err := OpenKeyring(ctx, cfg)
		require.NoError(t, err)
		defer func() { assert.NoError(t, k2.Close()) }()
		_, err = k2.Open(ctx, "alice", "dev:0", alice[0])
		assert.ErrorIs(t, err, ErrErased, "Open after reopen")
		_, err = k2.Open(ctx, "bob", "dev:0", bob)
		assert.NoError(t, err, "Open bob after reopen")
	})
}

// storedWrappedKeys returns the patient's KEKs as they are stored on disk.
func storedWrappedKeys(t *testing.T, k *Keyring, patient string) [][]byte {
	t.Helper()
	var out [][]byte
	err := k.db.View(func(tx *bolt.Tx) error {
		rec, err := getRecord(tx, patient)
		for _, sk := range rec.Keys {
			out = append(out, sk.Wrapped)
		}
		return err
	})
	require.NoError(t, err)
	return out
}

func TestInterruptedScrubIsFinishedOnOpen(t *testing.T) {
	k, cfg := newTestKeyring(t)
	mustSeal(t, k, "alice", "dev:1", []byte("x"))
	wrapped := storedWrappedKeys(t, k, "alice")
	// Simulate a crash after the tombstone commit and before compaction.
	err := k.db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketMeta).Put(keyScrubPending, []byte{1}); err != nil {
			return err
		}
		return tx.Bucket(bucketPatients).Delete([]byte("alice"))
	})
	require.NoError(t, err)
	require.NoError(t, k.Close())
	k2, err := OpenKeyring(t.Context(), cfg)
	require.NoError(t, err)
	require.NoError(t, k2.Close())
	raw, err := os.ReadFile(cfg.Path)
	require.NoError(t, err)
	assert.False(t, bytes.Contains(raw, wrapped[0]), "reopened keyring file still holds the freed wrapped key")
}

func TestRotate(t *testing.T) {
	k, cfg := newTestKeyring(t)
	ctx := t.Context()
	before := mustSeal(t, k, "alice", "dev:1", []byte("old"))
	newID, err := k.Rotate(ctx, "alice")
	require.NoError(t, err, "Rotate")
	after := mustSeal(t, k, "alice", "dev:2", []byte("new"))

	hb, err := ParseHeader(before)
	require.NoError(t, err)
	ha, err := ParseHeader(after)
	require.NoError(t, err)
	t.Run("new readings use the new key", func(t *testing.T) {
		assert.Equal(t, newID, ha.KeyID, "key ID after rotation")
		assert.NotEqual(t, hb.KeyID, ha.KeyID, "key ID did not change")
	})
	check := func(t *testing.T, k *Keyring) {
		for _, c := range []struct {
			reading string
			sealed  []byte
			want    string
		}{{"dev:1", before, "old"}, {"dev:2", after, "new"}} {
			got, err := k.Open(ctx, "alice", c.reading, c.sealed)
			if assert.NoError(t, err, "Open %s", c.reading) {
				assert.Equal(t, c.want, string(got), "Open %s", c.reading)
			}
		}
	}
	t.Run("old and new readings open", func(t *testing.T) { check(t, k) })
	t.Run("old and new readings open after reopening", func(t *testing.T) {
		require.NoError(t, k.Close())
		k2, err := OpenKeyring(ctx, cfg)
		require.NoError(t, err)
		defer func() { assert.NoError(t, k2.Close()) }()
		check(t, k2)
	})
}

func TestOpenKeyringRefusesWrongMasterKey(t *testing.T) {
	k, cfg := newTestKeyring(t)
	mustSeal(t, k, "alice", "dev:1", []byte("x"))
	require.NoError(t, k.Close())
	cfg.MasterKey = testkit.RandomBytes(t, MasterKeySize)
	_, err := OpenKeyring(t.Context(), cfg)
	require.ErrorIs(t, err, ErrWrongMasterKey)
}

func TestClosedKeyring(t *testing.T) {
	k, _ := newTestKeyring(t)
	require.NoError(t, k.Close())
	_, err := k.Seal(t.Context(), "alice", "dev:1", nil)
	require.ErrorIs(t, err, ErrClosed, "Seal after Close")
}

func TestConcurrentFirstUseCreatesOneKey(t *testing.T) {
	k, _ := newTestKeyring(t)
	const n = 16
	sealed := make([][]byte, n)
	var wg sync.WaitGroup
	for i := range n {
		// assert, not require: require may not stop a test from another
		// goroutine.
		wg.Go(func() {
			s, err := k.Seal(t.Context(), "alice", fmt.Sprintf("dev:%d", i), []byte("x"))
			assert.NoError(t, err, "Seal %d", i)
			sealed[i] = s
		})
	}
	wg.Wait()
	assert.Len(t, storedWrappedKeys(t, k, "alice"), 1, "stored keys")
	for i, s := range sealed {
		_, err := k.Open(t.Context(), "alice", fmt.Sprintf("dev:%d", i), s)
		assert.NoError(t, err, "Open %d", i)
	}
}

func TestCacheEvictionReloadsKeys(t *testing.T) {
	k, cfg := newTestKeyring(t)
	require.NoError(t, k.Close())
	cfg.CacheSize = 2
	k, err := OpenKeyring(t.Context(), cfg)
	require.NoError(t, err)
	defer func() { assert.NoError(t, k.Close()) }()
	sealed := map[string][]byte{}
	for i := range 10 {
		p := fmt.Sprintf("patient-%d", i)
		sealed[p] = mustSeal(t, k, p, "r", []byte(p))
	}
	for p, s := range sealed {
		got, err := k.Open(t.Context(), p, "r", s)
		if assert.NoError(t, err, "Open %s", p) {
			assert.Equal(t, p, string(got), "Open %s", p)
		}
	}
}

func TestMasterKey(t *testing.T) {
	dir := t.TempDir()
	t.Run("a missing key file is created with mode 0600 and reused", func(t *testing.T) {
		path := filepath.Join(dir, "sub", "master.key")
		k1, err := LoadOrCreateMasterKey(path)
		require.NoError(t, err)
		info, err := os.Stat(path)
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o600), info.Mode().Perm(), "mode")
		k2, err := LoadOrCreateMasterKey(path)
		require.NoError(t, err)
		assert.Len(t, k1, MasterKeySize, "created key")
		assert.Equal(t, k1, k2, "second load returned a different key")
	})
	t.Run("a key file readable by others is refused", func(t *testing.T) {
		path := filepath.Join(dir, "loose.key")
		require.NoError(t, os.WriteFile(path, []byte(hex.EncodeToString(testkit.RandomBytes(t, 32))), 0o644))
		require.NoError(t, os.Chmod(path, 0o644))
		_, err := LoadOrCreateMasterKey(path)
		assert.Error(t, err, "loaded a 0644 key file")
	})
	key := testkit.RandomBytes(t, 32)
	for _, tt := range []struct {
		name  string
		input string
		ok    bool
	}{
		{"hex with a newline parses", hex.EncodeToString(key) + "\n", true},
		{"base64 parses", base64.StdEncoding.EncodeToString(key), true},
		{"a short key is refused", hex.EncodeToString(key[:16]), false},
		{"garbage is refused", "not a key", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseMasterKey(tt.input)
			if !tt.ok {
				assert.Error(t, err, "ParseMasterKey accepted bad input")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, key, got)
		})
	}
}

// FuzzOpen checks that arbitrary input never panics and always yields one of
// the documented errors.
func FuzzOpen(f *testing.F) {
	k, _ := newTestKeyring(f)
	good := mustSeal(f, k, "alice", "dev:1", []byte("reading"))
	f.Add(good)
	f.Add(good[:Overhead])
	f.Add([]byte{Version1})
	f.Add([]byte{})
	documented := []error{ErrTruncated, ErrUnsupportedVersion, ErrUnsupportedAlgorithm, ErrWrongKey, ErrCorrupt}
	f.Fuzz(func(t *testing.T, input []byte) {
		got, err := k.Open(t.Context(), "alice", "dev:1", input)
		if err == nil {
			require.True(t, bytes.Equal(input, good) && string(got) == "reading", "Open accepted forged input %x", input)
			return
		}
		require.True(t, slices.ContainsFunc(documented, func(want error) bool { return errors.Is(err, want) }),
			"Open error %v is not a documented error", err)
	})
}

func BenchmarkSeal(b *testing.B) {
	for _, size := range []int{1 << 10, 64 << 10, 1 << 20} {
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			k, _ := newTestKeyring(b)
			plaintext := testkit.RandomBytes(b, size)
			mustSeal(b, k, "alice", "warm", plaintext)
			ctx := b.Context()
			b.SetBytes(int64(size))
			b.ResetTimer()
			for b.Loop() {
				_, err := k.Seal(ctx, "alice", "dev:1", plaintext)
				require.NoError(b, err)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "readings/s")
		})
	}
}

func BenchmarkOpen(b *testing.B) {
	for _, size := range []int{1 << 10, 64 << 10, 1 << 20} {
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			k, _ := newTestKeyring(b)
			sealed := mustSeal(b, k, "alice", "dev:1", testkit.RandomBytes(b, size))
			ctx := b.Context()
			b.SetBytes(int64(size))
			b.ResetTimer()
			for b.Loop() {
				_, err := k.Open(ctx, "alice", "dev:1", sealed)
				require.NoError(b, err)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "readings/s")
		})
	}
}

// BenchmarkSealParallel seals small readings for many patients from all
// cores, as the gateway's ingest path does.
func BenchmarkSealParallel(b *testing.B) {
	k, _ := newTestKeyring(b)
	const patients = 1000
	for i := range patients {
		mustSeal(b, k, fmt.Sprintf("patient-%d", i), "warm", nil)
	}
	plaintext := testkit.RandomBytes(b, 256)
	ctx := b.Context()
	b.SetBytes(int64(len(plaintext)))
	b.ResetTimer()
	var mu sync.Mutex
	next := 0
	b.RunParallel(func(pb *testing.PB) {
		mu.Lock()
		p := fmt.Sprintf("patient-%d", next%patients)
		next++
		mu.Unlock()
		for pb.Next() {
			// assert, not require: RunParallel's goroutines may not stop
			// the benchmark.
			if _, err := k.Seal(ctx, p, "dev:1", plaintext); !assert.NoError(b, err) {
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "readings/s")
}
