package seal

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"

	bolt "go.etcd.io/bbolt"
)

// Backup writes a copy of the keyring, as one read transaction sees it, to
// the file path, which must not exist (created 0600). The copy holds live
// records only (it is compacted, as Shred leaves the keyring), so no page
// freed by an earlier Shred travels with it, and it opens with the same
// master key, which it does not contain. Seal and Open go on meanwhile.
//
// A copy keeps the keys of every patient not erased when it was made:
// restoring it after a later erasure would bring those keys back, which
// [Keyring.Merge] with the newer keyring prevents.
func (k *Keyring) Backup(ctx context.Context, path string) (err error) {
	if err := ctx.Err(); err != nil {
		return err
	}
	k.mu.RLock()
	defer k.mu.RUnlock()
	if k.db == nil {
		return ErrClosed
	}
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("seal: backup: %s already exists", path)
	}
	dst, err := openBolt(path)
	if err != nil {
		return fmt.Errorf("seal: backup: %w", err)
	}
	defer func() { err = errors.Join(err, closeBolt(dst)) }()
	if err := bolt.Compact(dst, k.db, 0); err != nil {
		return fmt.Errorf("seal: backup: %w", err)
	}
	return nil
}

// MergeOptions selects what [Keyring.Merge] takes from the other keyring.
type MergeOptions struct {
	// ErasuresOnly takes the other keyring's erasures and nothing else.
	ErasuresOnly bool
}

// MergeStats counts what [Keyring.Merge] changed.
type MergeStats struct {
	// Patients were unknown to the keyring and were added with their keys.
	Patients int
	// Keys were added to patients the keyring knew without them.
	Keys int
	// Erased patients were erased in the other keyring, not in this one,
	// and are erased now.
	Erased int
}

// Merge takes into k what it lacks from the keyring file at path (opened
// read-only; for example a copy [Keyring.Backup] wrote): patients k has no
// record of, and keys of its patients that k does not hold. An erasure
// always wins: a patient erased in either keyring is erased in k
// afterwards and gets no key back. With opts.ErasuresOnly only erasures are
// taken. The other keyring must be under k's master key
// ([ErrWrongMasterKey] otherwise), and every key taken must unwrap under it
// ([ErrCorrupt] otherwise); on error k is unchanged. When it erased a
// patient, Merge compacts k's file as Shred does.
func (k *Keyring) Merge(ctx context.Context, path string, opts MergeOptions) (MergeStats, error) {
	if err := ctx.Err(); err != nil {
		return MergeStats{}, err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.db == nil {
		return MergeStats{}, ErrClosed
	}
	other, err := k.readKeyringFile(path)
	if err != nil {
		return MergeStats{}, err
	}
	var st MergeStats
	err = k.db.Update(func(tx *bolt.Tx) error {
		st = MergeStats{}
		for id, rec := range other {
			mine, err := getRecord(tx, id)
			if err != nil {
				return fmt.Errorf("patient record: %w", err)
			}
			switch {
			case !mine.ErasedAt.IsZero():
				continue
			case !rec.ErasedAt.IsZero():
				if err := tx.Bucket(bucketMeta).Put(keyScrubPending, []byte{1}); err != nil {
					return fmt.Errorf("mark scrub pending: %w", err)
				}
				if err := putRecord(tx, id, patientRecord{ErasedAt: rec.ErasedAt}); err != nil {
					return err
				}
				st.Erased++
				continue
			case opts.ErasuresOnly:
				continue
			case mine.Current == "":
				if err := putRecord(tx, id, rec); err != nil {
					return err
				}
				st.Patients++
				continue
			}
			have := make(map[string]bool, len(mine.Keys))
			for _, sk := range mine.Keys {
				have[sk.ID] = true
			}
			added := 0
			for _, sk := range rec.Keys {
				if !have[sk.ID] {
					mine.Keys = append(mine.Keys, sk)
					added++
				}
			}
			if added > 0 {
				if err := putRecord(tx, id, mine); err != nil {
					return err
				}
				st.Keys += added
			}
		}
		return nil
	})
	if err != nil {
		return MergeStats{}, fmt.Errorf("seal: merge %s: %w", path, err)
	}
	k.cache.Purge()
	if st.Erased > 0 {
		if err := k.compact(); err != nil {
			return st, fmt.Errorf("seal: merge %s: patients erased but the keyring file was not scrubbed: %w", path, err)
		}
	}
	if st != (MergeStats{}) {
		k.log.InfoContext(ctx, "keyring merged", "patients", st.Patients, "keys", st.Keys, "erased", st.Erased)
	}
	return st, nil
}

// readKeyringFile reads every patient record of the keyring file at path
// and checks them under k's master key.
func (k *Keyring) readKeyringFile(path string) (map[string]patientRecord, error) {
	recs, err := readKeyringFile(path, k)
	if err != nil {
		return nil, fmt.Errorf("seal: keyring %s: %w", path, err)
	}
	return recs, nil
}

// CheckKeyringFile checks the keyring file at path, read-only: bbolt's
// consistency check, its buckets and format version, and that every
// patient record parses. With a master key it also checks that the key
// opens the keyring and unwraps every stored key. It returns the number of
// patient records. The file must not be open in another process.
func CheckKeyringFile(ctx context.Context, path string, masterKey []byte) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	var k *Keyring
	if masterKey != nil {
		if len(masterKey) != MasterKeySize {
			return 0, fmt.Errorf("seal: master key is %d bytes, want %d", len(masterKey), MasterKeySize)
		}
		master, err := newGCM(masterKey)
		if err != nil {
			return 0, err
		}
		k = &Keyring{master: master}
	}
	recs, err := readKeyringFile(path, k)
	if err != nil {
		return 0, fmt.Errorf("seal: keyring %s: %w", path, err)
	}
	return len(recs), nil
}

// readKeyringFile reads every patient record of the keyring file at path,
// after bbolt's consistency check. With k, it checks the master key and
// unwraps every key under it.
func readKeyringFile(path string, k *Keyring) (map[string]patientRecord, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, err
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: boltTimeout})
	if err != nil {
		return nil, fmt.Errorf("open (is a node using it?): %w", err)
	}
	defer db.Close() //nolint:errcheck // read-only
	recs := map[string]patientRecord{}
	err = db.View(func(tx *bolt.Tx) error {
		// The check runs in its own goroutine on tx: drain it whole.
		var bad error
		for err := range tx.Check() {
			if bad == nil {
				bad = fmt.Errorf("%w: %w", ErrCorrupt, err)
			}
		}
		if bad != nil {
			return bad
		}
		meta, patients := tx.Bucket(bucketMeta), tx.Bucket(bucketPatients)
		if meta == nil || patients == nil {
			return fmt.Errorf("%w: not a keyring (buckets missing)", ErrCorrupt)
		}
		if f := meta.Get(keyFormat); f != nil && string(f) != formatVersion {
			return fmt.Errorf("keyring format %q: %w", f, ErrUnsupportedVersion)
		}
		if k != nil {
			check := meta.Get(keyCheck)
			if len(check) < nonceSize {
				return fmt.Errorf("check value: %w", ErrTruncated)
			}
			if _, err := k.master.Open(nil, check[:nonceSize], check[nonceSize:], []byte(adCheck)); err != nil {
				return ErrWrongMasterKey
			}
		}
		return patients.ForEach(func(id, v []byte) error {
			var rec patientRecord
			if err := json.Unmarshal(v, &rec); err != nil {
				return fmt.Errorf("stored record: %w: %w", ErrCorrupt, err)
			}
			if k != nil {
				if _, err := k.unwrapRecord(string(id), rec); err != nil {
					return err
				}
			}
			recs[string(id)] = rec
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return recs, nil
}
