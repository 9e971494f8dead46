package seal

import (
	"context"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	bolt "go.etcd.io/bbolt"
)

// DefaultCacheSize is the number of patients whose unwrapped keys a
// [Keyring] keeps in memory when [KeyringConfig.CacheSize] is zero.
const DefaultCacheSize = 10000

// KeyringConfig configures [OpenKeyring].
type KeyringConfig struct {
	// Path is the keyring file (bbolt). It is created with mode 0600 if
	// missing; its directory must exist.
	Path string
	// MasterKey is the 32-byte key that encrypts every KEK at rest; see
	// [LoadOrCreateMasterKey] and [ParseMasterKey].
	MasterKey []byte
	// CacheSize bounds how many patients' unwrapped keys stay in memory;
	// zero means [DefaultCacheSize].
	CacheSize int
	// Logger receives key lifecycle events; nil means slog.Default().
	Logger *slog.Logger
}

// Keyring holds patients' key-encryption keys and seals and opens readings
// with them. It is safe for concurrent use.
type Keyring struct {
	path   string
	master cipher.AEAD
	log    *slog.Logger
	cache  *lru.Cache[string, *patientKeys]

	// mu is held shared by Seal and Open (including their cache fills and
	// first-use key creation) and exclusively by Rotate, Shred and Close, so
	// a cache fill never re-inserts keys that Rotate or Shred just replaced.
	mu sync.RWMutex
	db *bolt.DB
}

// patientKeys is the unwrapped, cached form of a patient's record.
type patientKeys struct {
	erased  bool
	current KeyID
	keys    map[KeyID]cipher.AEAD
}

// patientRecord is a patient's stored record (JSON in the patients bucket).
type patientRecord struct {
	Current  string      `json:"current,omitempty"`
	Keys     []storedKey `json:"keys,omitempty"`
	ErasedAt time.Time   `json:"erasedAt,omitzero"`
}

// storedKey is one KEK, wrapped under the master key.
type storedKey struct {
	ID      string    `json:"id"`
	Created time.Time `json:"created"`
	Wrapped []byte    `json:"wrapped"` // nonce || AES-256-GCM(master, KEK)
}

var (
	bucketMeta     = []byte("meta")
	bucketPatients = []byte("patients")
	keyCheck       = []byte("check")
	keyFormat      = []byte("format")
	// keyScrubPending is set in the same transaction as a shred's tombstone
	// and cleared once the file was compacted, so a crash in between is
	// finished by the next OpenKeyring.
	keyScrubPending = []byte("scrub-pending")
)

const (
	formatVersion = "1"
	adCheck       = "medprov/keyring/v1/check"
	adKEK         = "medprov/keyring/v1/kek"
	boltTimeout   = 2 * time.Second
)

// OpenKeyring opens (or creates) the keyring at cfg.Path. It fails with
// [ErrWrongMasterKey] if the file was created under another master key, and
// with an error rather than waiting if another process holds the file for
// longer than two seconds.
func OpenKeyring(ctx context.Context, cfg KeyringConfig) (*Keyring, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(cfg.MasterKey) != MasterKeySize {
		return nil, fmt.Errorf("seal: master key is %d bytes, want %d", len(cfg.MasterKey), MasterKeySize)
	}
	if cfg.Path == "" {
		return nil, errors.New("seal: keyring path is empty")
	}
	master, err := newGCM(cfg.MasterKey)
	if err != nil {
		return nil, err
	}
	size := cfg.CacheSize
	if size <= 0 {
		size = DefaultCacheSize
	}
	cache, err := lru.New[string, *patientKeys](size)
	if err != nil {
		return nil, fmt.Errorf("seal: cache: %w", err)
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	k := &Keyring{path: cfg.Path, master: master, log: logger, cache: cache}
	if err := k.recoverCompaction(); err != nil {
		return nil, err
	}
	db, err := openBolt(cfg.Path)
	if err != nil {
		return nil, err
	}
	if err := db.Update(k.initMeta); err != nil {
		return nil, errors.Join(err, closeBolt(db))
	}
	k.db = db
	if err := k.finishScrub(); err != nil {
		return nil, errors.Join(err, k.Close())
	}
	return k, nil
}

// finishScrub compacts the file if a shred's compaction did not complete.
func (k *Keyring) finishScrub() error {
	var pending bool
	if err := k.db.View(func(tx *bolt.Tx) error {
		pending = tx.Bucket(bucketMeta).Get(keyScrubPending) != nil
		return nil
	}); err != nil {
		return fmt.Errorf("seal: read keyring meta: %w", err)
	}
	if !pending {
		return nil
	}
	if err := k.compact(); err != nil {
		return fmt.Errorf("seal: finish interrupted scrub: %w", err)
	}
	return nil
}

func openBolt(path string) (*bolt.DB, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: boltTimeout})
	if err != nil {
		return nil, fmt.Errorf("seal: open keyring %s: %w", path, err)
	}
	return db, nil
}

func closeBolt(db *bolt.DB) error {
	if err := db.Close(); err != nil {
		return fmt.Errorf("seal: close keyring: %w", err)
	}
	return nil
}

// initMeta creates the buckets and the master key check value, or verifies
// the check value of an existing keyring.
func (k *Keyring) initMeta(tx *bolt.Tx) error {
	meta, err := tx.CreateBucketIfNotExists(bucketMeta)
	if err != nil {
		return fmt.Errorf("seal: meta bucket: %w", err)
	}
	if _, err := tx.CreateBucketIfNotExists(bucketPatients); err != nil {
		return fmt.Errorf("seal: patients bucket: %w", err)
	}
	if f := meta.Get(keyFormat); f != nil && string(f) != formatVersion {
		return fmt.Errorf("seal: keyring format %q: %w", f, ErrUnsupportedVersion)
	}
	if check := meta.Get(keyCheck); check != nil {
		if len(check) < nonceSize {
			return fmt.Errorf("seal: keyring check value: %w", ErrTruncated)
		}
		if _, err := k.master.Open(nil, check[:nonceSize], check[nonceSize:], []byte(adCheck)); err != nil {
			return ErrWrongMasterKey
		}
		return nil
	}
	nonce := make([]byte, nonceSize)
	if _, err := rand.Read(nonce); err != nil {
		return fmt.Errorf("seal: check nonce: %w", err)
	}
	if err := meta.Put(keyFormat, []byte(formatVersion)); err != nil {
		return fmt.Errorf("seal: write format: %w", err)
	}
	if err := meta.Put(keyCheck, k.master.Seal(nonce, nonce, nil, []byte(adCheck))); err != nil {
		return fmt.Errorf("seal: write check value: %w", err)
	}
	return nil
}

// Close closes the keyring file. Later calls fail with [ErrClosed].
func (k *Keyring) Close() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.db == nil {
		return nil
	}
	err := closeBolt(k.db)
	k.db = nil
	k.cache.Purge()
	return err
}

// Seal encrypts plaintext for one reading of one patient under a fresh data
// key wrapped by the patient's current KEK (created on the patient's first
// use). The result opens only with [Keyring.Open] for the same patient and
// reading. It fails with [ErrErased] once the patient was shredded.
func (k *Keyring) Seal(ctx context.Context, patientID, readingID string, plaintext []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	k.mu.RLock()
	defer k.mu.RUnlock()
	pk, err := k.keysFor(patientID, true)
	if err != nil {
		return nil, fmt.Errorf("seal reading %q of patient %q: %w", readingID, patientID, err)
	}
	out, err := sealWith(pk.keys[pk.current], pk.current, patientID, readingID, plaintext)
	if err != nil {
		return nil, fmt.Errorf("seal reading %q of patient %q: %w", readingID, patientID, err)
	}
	return out, nil
}

// Open authenticates and decrypts sealed data of one reading of one patient.
// Errors: [ErrErased] if the patient was shredded; [ErrTruncated],
// [ErrUnsupportedVersion], [ErrUnsupportedAlgorithm] for bad framing;
// [ErrWrongKey] if the key ID is not one of the patient's keys;
// [ErrCorrupt] if the bytes were altered or belong to another reading.
func (k *Keyring) Open(ctx context.Context, patientID, readingID string, sealed []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	h, err := ParseHeader(sealed)
	if err != nil {
		return nil, fmt.Errorf("open reading %q of patient %q: %w", readingID, patientID, err)
	}
	k.mu.RLock()
	defer k.mu.RUnlock()
	pk, err := k.keysFor(patientID, false)
	if err != nil {
		return nil, fmt.Errorf("open reading %q of patient %q: %w", readingID, patientID, err)
	}
	kek, ok := pk.keys[h.KeyID]
	if !ok {
		return nil, fmt.Errorf("open reading %q of patient %q: key %x: %w", readingID, patientID, h.KeyID, ErrWrongKey)
	}
	plaintext, err := openWith(kek, patientID, readingID, sealed)
	if err != nil {
		return nil, fmt.Errorf("open reading %q of patient %q: %w", readingID, patientID, err)
	}
	return plaintext, nil
}

// Rotate gives the patient a new current KEK and returns its ID. Readings
// sealed afterwards use it; readings sealed under earlier KEKs still open.
// Rotating a patient without keys creates their first one; rotating an
// erased patient fails with [ErrErased].
func (k *Keyring) Rotate(ctx context.Context, patientID string) (KeyID, error) {
	if err := ctx.Err(); err != nil {
		return KeyID{}, err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.db == nil {
		return KeyID{}, ErrClosed
	}
	var id KeyID
	err := k.db.Update(func(tx *bolt.Tx) error {
		rec, err := getRecord(tx, patientID)
		if err != nil {
			return err
		}
		if !rec.ErasedAt.IsZero() {
			return ErrErased
		}
		id, err = k.addKey(tx, patientID, &rec)
		return err
	})
	k.cache.Remove(patientID)
	if err != nil {
		return KeyID{}, fmt.Errorf("rotate key of patient %q: %w", patientID, err)
	}
	k.log.InfoContext(ctx, "patient key rotated", "patient", patientID, "key", hex.EncodeToString(id[:]))
	return id, nil
}

// Shred destroys every KEK of the patient and records that the patient is
// erased: from then on Open and Seal for the patient fail with [ErrErased].
// It then compacts the keyring file so the wrapped keys do not survive in
// freed pages (see the package doc for what this does and does not reach).
// Shredding an unknown or already erased patient records the erasure too.
func (k *Keyring) Shred(ctx context.Context, patientID string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.db == nil {
		return ErrClosed
	}
	err := k.db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketMeta).Put(keyScrubPending, []byte{1}); err != nil {
			return fmt.Errorf("mark scrub pending: %w", err)
		}
		rec := patientRecord{ErasedAt: time.Now().UTC()}
		return putRecord(tx, patientID, rec)
	})
	k.cache.Remove(patientID)
	if err != nil {
		return fmt.Errorf("shred patient %q: %w", patientID, err)
	}
	if err := k.compact(); err != nil {
		return fmt.Errorf("shred patient %q: keys erased but the keyring file was not scrubbed: %w", patientID, err)
	}
	k.log.InfoContext(ctx, "patient keys shredded", "patient", patientID)
	return nil
}

// keysFor returns the patient's unwrapped keys, from the cache or the file.
// With create, a patient without a record gets a first KEK. k.mu must be
// held (shared or exclusive).
func (k *Keyring) keysFor(patientID string, create bool) (*patientKeys, error) {
	if k.db == nil {
		return nil, ErrClosed
	}
	if pk, ok := k.cache.Get(patientID); ok {
		if pk.erased {
			return nil, ErrErased
		}
		return pk, nil
	}
	var rec patientRecord
	err := k.db.View(func(tx *bolt.Tx) error {
		var err error
		rec, err = getRecord(tx, patientID)
		return err
	})
	if err != nil {
		return nil, err
	}
	if rec.Current == "" && rec.ErasedAt.IsZero() {
		if !create {
			return nil, fmt.Errorf("patient has no keys: %w", ErrWrongKey)
		}
		// Update transactions are serialised, so concurrent first uses of
		// one patient create one key: the loser finds the winner's key.
		err := k.db.Update(func(tx *bolt.Tx) error {
			var err error
			rec, err = getRecord(tx, patientID)
			if err != nil || rec.Current != "" || !rec.ErasedAt.IsZero() {
				return err
			}
			_, err = k.addKey(tx, patientID, &rec)
			return err
		})
		if err != nil {
			return nil, err
		}
	}
	pk, err := k.unwrapRecord(patientID, rec)
	if err != nil {
		return nil, err
	}
	k.cache.Add(patientID, pk)
	if pk.erased {
		return nil, ErrErased
	}
	return pk, nil
}

// addKey creates a KEK, appends it to rec as the current key and stores rec.
func (k *Keyring) addKey(tx *bolt.Tx, patientID string, rec *patientRecord) (KeyID, error) {
	var id KeyID
	if _, err := rand.Read(id[:]); err != nil {
		return KeyID{}, fmt.Errorf("key id: %w", err)
	}
	kek := make([]byte, keySize)
	defer clear(kek)
	if _, err := rand.Read(kek); err != nil {
		return KeyID{}, fmt.Errorf("generate key: %w", err)
	}
	nonce := make([]byte, nonceSize, nonceSize+keySize+tagSize)
	if _, err := rand.Read(nonce); err != nil {
		return KeyID{}, fmt.Errorf("key nonce: %w", err)
	}
	wrapped := k.master.Seal(nonce, nonce, kek, kekAD(patientID, id))
	rec.Keys = append(rec.Keys, storedKey{ID: hex.EncodeToString(id[:]), Created: time.Now().UTC(), Wrapped: wrapped})
	rec.Current = hex.EncodeToString(id[:])
	return id, putRecord(tx, patientID, *rec)
}

// unwrapRecord decrypts a stored record's KEKs under the master key.
func (k *Keyring) unwrapRecord(patientID string, rec patientRecord) (*patientKeys, error) {
	if !rec.ErasedAt.IsZero() {
		return &patientKeys{erased: true}, nil
	}
	pk := &patientKeys{keys: make(map[KeyID]cipher.AEAD, len(rec.Keys))}
	for _, sk := range rec.Keys {
		var id KeyID
		if b, err := hex.DecodeString(sk.ID); err != nil || len(b) != KeyIDSize {
			return nil, fmt.Errorf("stored key id %q: %w", sk.ID, ErrCorrupt)
		} else {
			copy(id[:], b)
		}
		if len(sk.Wrapped) < nonceSize {
			return nil, fmt.Errorf("stored key %s: %w", sk.ID, ErrTruncated)
		}
		kek, err := k.master.Open(nil, sk.Wrapped[:nonceSize], sk.Wrapped[nonceSize:], kekAD(patientID, id))
		if err != nil {
			return nil, fmt.Errorf("stored key %s does not unwrap: %w", sk.ID, ErrCorrupt)
		}
		aead, err := newGCM(kek)
		clear(kek)
		if err != nil {
			return nil, err
		}
		pk.keys[id] = aead
		if sk.ID == rec.Current {
			pk.current = id
		}
	}
	if _, ok := pk.keys[pk.current]; !ok {
		return nil, fmt.Errorf("current key %q missing from record: %w", rec.Current, ErrCorrupt)
	}
	return pk, nil
}

func kekAD(patientID string, id KeyID) []byte {
	ad := make([]byte, 0, len(adKEK)+4+len(patientID)+KeyIDSize)
	ad = append(ad, adKEK...)
	ad = binary.BigEndian.AppendUint32(ad, uint32(len(patientID)))
	ad = append(ad, patientID...)
	return append(ad, id[:]...)
}

func getRecord(tx *bolt.Tx, patientID string) (patientRecord, error) {
	var rec patientRecord
	b := tx.Bucket(bucketPatients).Get([]byte(patientID))
	if b == nil {
		return rec, nil
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return rec, fmt.Errorf("stored record: %w: %w", ErrCorrupt, err)
	}
	return rec, nil
}

func putRecord(tx *bolt.Tx, patientID string, rec patientRecord) error {
	if patientID == "" {
		return errors.New("empty patient id")
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encode record: %w", err)
	}
	if err := tx.Bucket(bucketPatients).Put([]byte(patientID), b); err != nil {
		return fmt.Errorf("store record: %w", err)
	}
	return nil
}

// compact rewrites the keyring into a fresh file holding only live data,
// replaces the old file with it, zeroes the old file's bytes and clears the
// scrub-pending mark. k.mu must be held exclusively (or k not yet shared).
func (k *Keyring) compact() error {
	if err := k.replaceFile(); err != nil {
		return err
	}
	if err := k.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Delete(keyScrubPending)
	}); err != nil {
		return fmt.Errorf("clear scrub mark: %w", err)
	}
	return nil
}

// replaceFile does the file work of compact. On failure after the old
// database was closed, the keyring is reopened from whichever file is in
// place.
func (k *Keyring) replaceFile() (err error) {
	tmp := k.path + ".compact"
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove stale %s: %w", tmp, err)
	}
	dst, err := openBolt(tmp)
	if err != nil {
		return err
	}
	if err := bolt.Compact(dst, k.db, 0); err != nil {
		return errors.Join(fmt.Errorf("compact: %w", err), closeBolt(dst), os.Remove(tmp))
	}
	if err := closeBolt(dst); err != nil {
		return errors.Join(err, os.Remove(tmp))
	}
	old, err := os.OpenFile(k.path, os.O_RDWR, 0)
	if err != nil {
		return errors.Join(fmt.Errorf("open old keyring: %w", err), os.Remove(tmp))
	}
	defer func() { err = errors.Join(err, old.Close()) }()

	if err := closeBolt(k.db); err != nil {
		return err
	}
	k.db = nil
	defer func() {
		db, openErr := openBolt(k.path)
		if openErr != nil {
			err = errors.Join(err, openErr)
			return
		}
		k.db = db
	}()
	if err := os.Rename(tmp, k.path); err != nil {
		return fmt.Errorf("replace keyring: %w", err)
	}
	if err := syncDir(filepath.Dir(k.path)); err != nil {
		return err
	}
	return zeroFile(old)
}

// zeroFile overwrites the whole file with zeros and syncs it.
func zeroFile(f *os.File) error {
	info, err := f.Stat()
	if err != nil {
		return fmt.Errorf("stat old keyring: %w", err)
	}
	zeros := make([]byte, 64<<10)
	for off := int64(0); off < info.Size(); off += int64(len(zeros)) {
		n := min(int64(len(zeros)), info.Size()-off)
		if _, err := f.WriteAt(zeros[:n], off); err != nil {
			return fmt.Errorf("zero old keyring: %w", err)
		}
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync old keyring: %w", err)
	}
	return nil
}

// recoverCompaction removes a compaction file left by a crash before its
// rename: the keyring file itself is then still the complete old database.
func (k *Keyring) recoverCompaction() error {
	if err := os.Remove(k.path + ".compact"); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("seal: remove stale compaction file: %w", err)
	}
	return nil
}
