package seal

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	bolt "go.etcd.io/bbolt"
)

func newTestKeyring(t testing.TB) (*Keyring, KeyringConfig) {
	t.Helper()
	master := make([]byte, MasterKeySize)
	if _, err := rand.Read(master); err != nil {
		t.Fatal(err)
	}
	cfg := KeyringConfig{Path: filepath.Join(t.TempDir(), "keyring.db"), MasterKey: master}
	k, err := OpenKeyring(context.Background(), cfg)
	if err != nil {
		t.Fatalf("OpenKeyring: %v", err)
	}
	t.Cleanup(func() {
		if err := k.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return k, cfg
}

func randomBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func mustSeal(t testing.TB, k *Keyring, patient, reading string, plaintext []byte) []byte {
	t.Helper()
	sealed, err := k.Seal(context.Background(), patient, reading, plaintext)
	if err != nil {
		t.Fatalf("Seal(%s, %s): %v", patient, reading, err)
	}
	return sealed
}

func TestSealOpenRoundTrip(t *testing.T) {
	k, _ := newTestKeyring(t)
	for _, size := range []int{0, 1, 1000, 256 << 10, 4 << 20} {
		t.Run(fmt.Sprintf("a %d-byte reading opens to the same bytes", size), func(t *testing.T) {
			want := randomBytes(t, size)
			sealed := mustSeal(t, k, "patient-1", "dev:1", want)
			if got, want := len(sealed), size+Overhead; got != want {
				t.Errorf("sealed length = %d, want %d", got, want)
			}
			if size >= 16 && bytes.Contains(sealed, want[:16]) {
				t.Error("sealed bytes contain plaintext")
			}
			got, err := k.Open(t.Context(), "patient-1", "dev:1", sealed)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Error("opened bytes differ from the plaintext")
			}
		})
	}
	t.Run("sealing the same bytes twice gives different ciphertexts", func(t *testing.T) {
		p := []byte("same")
		a, b := mustSeal(t, k, "patient-1", "dev:2", p), mustSeal(t, k, "patient-1", "dev:2", p)
		if bytes.Equal(a, b) {
			t.Error("two seals are identical: data key or nonce reused")
		}
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
			if !errors.Is(err, tt.want) {
				t.Fatalf("Open error = %v, want %v", err, tt.want)
			}
			if got != nil {
				t.Errorf("Open returned %d bytes with an error", len(got))
			}
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
	if _, err := k.Rotate(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	alice = append(alice, mustSeal(t, k, "alice", "dev:5", []byte("alice data")))
	bob := mustSeal(t, k, "bob", "dev:0", []byte("bob data"))

	wrapped := storedWrappedKeys(t, k, "alice")
	if len(wrapped) != 2 {
		t.Fatalf("alice has %d stored keys, want 2", len(wrapped))
	}
	if err := k.Shred(ctx, "alice"); err != nil {
		t.Fatalf("Shred: %v", err)
	}

	t.Run("every reading of the shredded patient is erased", func(t *testing.T) {
		for i, s := range alice {
			if _, err := k.Open(ctx, "alice", fmt.Sprintf("dev:%d", i), s); !errors.Is(err, ErrErased) {
				t.Errorf("Open reading %d: error = %v, want ErrErased", i, err)
			}
		}
	})
	t.Run("new readings of the shredded patient are refused", func(t *testing.T) {
		if _, err := k.Seal(ctx, "alice", "dev:9", []byte("x")); !errors.Is(err, ErrErased) {
			t.Errorf("Seal error = %v, want ErrErased", err)
		}
		if _, err := k.Rotate(ctx, "alice"); !errors.Is(err, ErrErased) {
			t.Errorf("Rotate error = %v, want ErrErased", err)
		}
	})
	t.Run("other patients still open", func(t *testing.T) {
		got, err := k.Open(ctx, "bob", "dev:0", bob)
		if err != nil || string(got) != "bob data" {
			t.Errorf("Open bob = %q, %v", got, err)
		}
	})
	t.Run("the keyring file no longer holds the wrapped keys", func(t *testing.T) {
		raw, err := os.ReadFile(cfg.Path)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range wrapped {
			if bytes.Contains(raw, w) {
				t.Errorf("keyring file still contains wrapped key %x...", w[:8])
			}
		}
	})
	t.Run("erasure survives reopening", func(t *testing.T) {
		if err := k.Close(); err != nil {
			t.Fatal(err)
		}
		k2, err := OpenKeyring(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := k2.Close(); err != nil {
				t.Error(err)
			}
		}()
		if _, err := k2.Open(ctx, "alice", "dev:0", alice[0]); !errors.Is(err, ErrErased) {
			t.Errorf("Open after reopen: error = %v, want ErrErased", err)
		}
		if _, err := k2.Open(ctx, "bob", "dev:0", bob); err != nil {
			t.Errorf("Open bob after reopen: %v", err)
		}
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
	if err != nil {
		t.Fatal(err)
	}
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
	if err != nil {
		t.Fatal(err)
	}
	if err := k.Close(); err != nil {
		t.Fatal(err)
	}
	k2, err := OpenKeyring(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := k2.Close(); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(cfg.Path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, wrapped[0]) {
		t.Error("reopened keyring file still holds the freed wrapped key")
	}
}

func TestRotate(t *testing.T) {
	k, cfg := newTestKeyring(t)
	ctx := t.Context()
	before := mustSeal(t, k, "alice", "dev:1", []byte("old"))
	newID, err := k.Rotate(ctx, "alice")
	if err != nil {
		t.Fatalf("Rotate: %v", err)
	}
	after := mustSeal(t, k, "alice", "dev:2", []byte("new"))

	hb, err := ParseHeader(before)
	if err != nil {
		t.Fatal(err)
	}
	ha, err := ParseHeader(after)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("new readings use the new key", func(t *testing.T) {
		if ha.KeyID != newID {
			t.Errorf("key ID after rotation = %x, want %x", ha.KeyID, newID)
		}
		if ha.KeyID == hb.KeyID {
			t.Error("key ID did not change")
		}
	})
	check := func(t *testing.T, k *Keyring) {
		for _, c := range []struct {
			reading string
			sealed  []byte
			want    string
		}{{"dev:1", before, "old"}, {"dev:2", after, "new"}} {
			got, err := k.Open(ctx, "alice", c.reading, c.sealed)
			if err != nil || string(got) != c.want {
				t.Errorf("Open %s = %q, %v; want %q", c.reading, got, err, c.want)
			}
		}
	}
	t.Run("old and new readings open", func(t *testing.T) { check(t, k) })
	t.Run("old and new readings open after reopening", func(t *testing.T) {
		if err := k.Close(); err != nil {
			t.Fatal(err)
		}
		k2, err := OpenKeyring(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := k2.Close(); err != nil {
				t.Error(err)
			}
		}()
		check(t, k2)
	})
}

func TestOpenKeyringRefusesWrongMasterKey(t *testing.T) {
	k, cfg := newTestKeyring(t)
	mustSeal(t, k, "alice", "dev:1", []byte("x"))
	if err := k.Close(); err != nil {
		t.Fatal(err)
	}
	cfg.MasterKey = randomBytes(t, MasterKeySize)
	if _, err := OpenKeyring(t.Context(), cfg); !errors.Is(err, ErrWrongMasterKey) {
		t.Errorf("OpenKeyring error = %v, want ErrWrongMasterKey", err)
	}
}

func TestClosedKeyring(t *testing.T) {
	k, _ := newTestKeyring(t)
	if err := k.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := k.Seal(t.Context(), "alice", "dev:1", nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Seal after Close: error = %v, want ErrClosed", err)
	}
}

func TestConcurrentFirstUseCreatesOneKey(t *testing.T) {
	k, _ := newTestKeyring(t)
	const n = 16
	sealed := make([][]byte, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			s, err := k.Seal(context.Background(), "alice", fmt.Sprintf("dev:%d", i), []byte("x"))
			if err != nil {
				t.Error(err)
			}
			sealed[i] = s
		})
	}
	wg.Wait()
	if got := len(storedWrappedKeys(t, k, "alice")); got != 1 {
		t.Errorf("stored keys = %d, want 1", got)
	}
	for i, s := range sealed {
		if _, err := k.Open(t.Context(), "alice", fmt.Sprintf("dev:%d", i), s); err != nil {
			t.Errorf("Open %d: %v", i, err)
		}
	}
}

func TestCacheEvictionReloadsKeys(t *testing.T) {
	k, cfg := newTestKeyring(t)
	if err := k.Close(); err != nil {
		t.Fatal(err)
	}
	cfg.CacheSize = 2
	k, err := OpenKeyring(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := k.Close(); err != nil {
			t.Error(err)
		}
	}()
	sealed := map[string][]byte{}
	for i := range 10 {
		p := fmt.Sprintf("patient-%d", i)
		sealed[p] = mustSeal(t, k, p, "r", []byte(p))
	}
	for p, s := range sealed {
		got, err := k.Open(t.Context(), p, "r", s)
		if err != nil || string(got) != p {
			t.Errorf("Open %s = %q, %v", p, got, err)
		}
	}
}

func TestMasterKey(t *testing.T) {
	dir := t.TempDir()
	t.Run("a missing key file is created with mode 0600 and reused", func(t *testing.T) {
		path := filepath.Join(dir, "sub", "master.key")
		k1, err := LoadOrCreateMasterKey(path)
		if err != nil {
			t.Fatal(err)
		}
		info, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := info.Mode().Perm(); got != 0o600 {
			t.Errorf("mode = %#o, want 0600", got)
		}
		k2, err := LoadOrCreateMasterKey(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(k1, k2) || len(k1) != MasterKeySize {
			t.Error("second load returned a different key")
		}
	})
	t.Run("a key file readable by others is refused", func(t *testing.T) {
		path := filepath.Join(dir, "loose.key")
		if err := os.WriteFile(path, []byte(hex.EncodeToString(randomBytes(t, 32))), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadOrCreateMasterKey(path); err == nil {
			t.Error("loaded a 0644 key file")
		}
	})
	key := randomBytes(t, 32)
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
			if tt.ok && (err != nil || !bytes.Equal(got, key)) {
				t.Errorf("ParseMasterKey = %x, %v; want %x", got, err, key)
			}
			if !tt.ok && err == nil {
				t.Error("ParseMasterKey accepted bad input")
			}
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
	f.Fuzz(func(t *testing.T, input []byte) {
		got, err := k.Open(context.Background(), "alice", "dev:1", input)
		if err == nil {
			if !bytes.Equal(input, good) || string(got) != "reading" {
				t.Fatalf("Open accepted forged input %x", input)
			}
			return
		}
		for _, want := range []error{ErrTruncated, ErrUnsupportedVersion, ErrUnsupportedAlgorithm, ErrWrongKey, ErrCorrupt} {
			if errors.Is(err, want) {
				return
			}
		}
		t.Fatalf("Open error %v is not a documented error", err)
	})
}

func BenchmarkSeal(b *testing.B) {
	for _, size := range []int{1 << 10, 64 << 10, 1 << 20} {
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			k, _ := newTestKeyring(b)
			plaintext := randomBytes(b, size)
			mustSeal(b, k, "alice", "warm", plaintext)
			b.SetBytes(int64(size))
			b.ResetTimer()
			for b.Loop() {
				if _, err := k.Seal(context.Background(), "alice", "dev:1", plaintext); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "readings/s")
		})
	}
}

func BenchmarkOpen(b *testing.B) {
	for _, size := range []int{1 << 10, 64 << 10, 1 << 20} {
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			k, _ := newTestKeyring(b)
			sealed := mustSeal(b, k, "alice", "dev:1", randomBytes(b, size))
			b.SetBytes(int64(size))
			b.ResetTimer()
			for b.Loop() {
				if _, err := k.Open(context.Background(), "alice", "dev:1", sealed); err != nil {
					b.Fatal(err)
				}
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
	plaintext := randomBytes(b, 256)
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
			if _, err := k.Seal(context.Background(), p, "dev:1", plaintext); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "readings/s")
}
