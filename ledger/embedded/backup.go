package embedded

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/opt"

	"github.com/medprov/medprov/internal/privatecopy"
)

// BackupInfo describes the copy of a ledger that Backup wrote.
type BackupInfo struct {
	// Height is the copy's chain height, genesis included.
	Height uint64
	// Tip is the header hash of the copy's last block.
	Tip []byte
	// Format is the copy's store format (the ledger's own, e.g.
	// "leveldb/3").
	Format string
}

const (
	// backupBatchBytes bounds one write batch of the copy.
	backupBatchBytes = 4 << 20
	// backupCheckEvery is how many records Backup copies between checks
	// that its context is live and the ledger not closing.
	backupCheckEvery = 4096
)

// Backup writes a copy of the ledger, as it stood at one instant, into
// dir: a ledger directory that New and VerifyDir open like any other. The
// copy is taken from one LevelDB snapshot, so it holds whole blocks only,
// with the state, history and indexes they produce, and its chain anchor
// names exactly its own tip; commits go on while it is written. The local
// MSP (whose identities created the chain's transactions) is copied too.
//
// dir is created 0700 if missing and must be empty; its files are 0600.
// Backup copies records as they are stored and checks the copy's last
// blocks (New's start-up check), not the whole chain: VerifyDir on the copy
// does that. A damaged record in the ledger fails Backup with an error
// wrapping ErrCorrupt. Close waits for a Backup in progress, which stops at
// its next check (every few thousand records) with ErrClosed.
func (l *Ledger) Backup(ctx context.Context, dir string) (BackupInfo, error) {
	if err := l.checkOpen(ctx); err != nil {
		return BackupInfo{}, err
	}
	if err := emptyDir(dir); err != nil {
		return BackupInfo{}, fmt.Errorf("embedded ledger backup: %w", err)
	}
	snap, release, err := l.snapshot(ctx)
	if err != nil {
		return BackupInfo{}, err
	}
	defer release()
	m, err := readMeta(snap)
	if err != nil {
		return BackupInfo{}, fmt.Errorf("embedded ledger backup: %w", err)
	}
	if err := l.copyStore(ctx, snap, dir); err != nil {
		return BackupInfo{}, fmt.Errorf("embedded ledger backup: %w", err)
	}
	if err := privatecopy.Tree(filepath.Join(l.cfg.Dir, mspDirName), filepath.Join(dir, mspDirName)); err != nil {
		return BackupInfo{}, fmt.Errorf("embedded ledger backup: local MSP: %w", err)
	}
	// The anchor names the snapshot's tip, not the live one's.
	if err := writeFileSynced(filepath.Join(dir, anchorFileName), anchor{height: m.height, tip: m.tip}.encode()); err != nil {
		return BackupInfo{}, fmt.Errorf("embedded ledger backup: chain anchor: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return BackupInfo{}, fmt.Errorf("embedded ledger backup: %w", err)
	}
	return BackupInfo{Height: m.height, Tip: m.tip, Format: m.format}, nil
}

// copyStore writes every record of snap into a new store in dir and checks
// the copy's meta records and last blocks.
func (l *Ledger) copyStore(ctx context.Context, snap *leveldb.Snapshot, dir string) (err error) {
	db, err := openStore(dir, false, l.log)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := db.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close the copy: %w", cerr)
		}
	}()
	it := snap.NewIterator(nil, nil)
	defer it.Release()
	b := new(leveldb.Batch)
	for n := 1; it.Next(); n++ {
		b.Put(it.Key(), it.Value())
		if len(b.Dump()) >= backupBatchBytes {
			if err := db.Write(b, nil); err != nil {
				return fmt.Errorf("write the copy: %w", err)
			}
			b.Reset()
		}
		if n%backupCheckEvery == 0 {
			if err := l.checkOpen(ctx); err != nil {
				return err
			}
		}
	}
	if err := it.Error(); err != nil {
		return readError("read the ledger", err)
	}
	// One synced write makes every earlier one durable: they share the
	// journal, or sit in tables LevelDB synced when it wrote them.
	if err := db.Write(b, &opt.WriteOptions{Sync: true}); err != nil {
		return fmt.Errorf("write the copy: %w", err)
	}
	m, err := readMeta(db)
	if err != nil {
		return fmt.Errorf("the copy: %w", err)
	}
	if err := quickCheck(db, m, l.msp.caCertPEM); err != nil {
		return fmt.Errorf("the copy: %w", err)
	}
	return nil
}

// emptyDir creates dir (0700) if it does not exist and fails unless it is
// an empty directory.
func emptyDir(dir string) error {
	if err := os.MkdirAll(dir, dirPerm); err != nil {
		return err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	if len(entries) > 0 {
		return fmt.Errorf("%s is not empty", dir)
	}
	return os.Chmod(dir, dirPerm)
}

// syncDir makes the entries of dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	return errors.Join(err, d.Close())
}
