package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/medprov/medprov/ingest"
	"github.com/medprov/medprov/internal/privatecopy"
	ipfsembedded "github.com/medprov/medprov/ipfs/embedded"
	ledgerembedded "github.com/medprov/medprov/ledger/embedded"
	"github.com/medprov/medprov/seal"
)

// Restore modes.
const (
	// RestoreLedger restores the ledger from the backup and keeps the
	// current ingest queue, which knows the readings acknowledged after
	// the backup: on the next start the node resubmits those the restored
	// ledger lacks and reports by ID those it cannot (see
	// ingest.Reconciliation). Blobs and keyring keep what they hold and
	// get what they lack from the backup.
	RestoreLedger = "ledger"
	// RestoreAll restores every store from the backup. Readings
	// acknowledged after the backup are then known only to the queue it
	// moves aside.
	RestoreAll = "all"
)

// ErrNodeRunning reports a data directory whose stores a process holds
// open: Restore works only on a stopped node.
var ErrNodeRunning = errors.New("the node is running: stop it before restoring")

// RestoreConfig configures Restore.
type RestoreConfig struct {
	// From is the backup directory (as Backup or ReadBackup left it); it
	// is only read.
	From string
	// DataDir is the stopped node's data directory, laid out as Open lays
	// it out (with the queue at its default path, as serve runs it); it
	// is created if missing.
	DataDir string
	// MasterKey is the node's keyring master key; the backup's keyring
	// must open with it. Required when the backup holds a keyring.
	MasterKey []byte
	// All restores every store from the backup (RestoreAll); otherwise
	// the mode is RestoreLedger, unless the current queue is missing or
	// unreadable.
	All bool
	// Now is the clock naming the directory old data is moved to.
	// Default time.Now.
	Now func() time.Time
}

// RestoreReport says what Restore did.
type RestoreReport struct {
	Backup *BackupCheck `json:"backup"`
	// Mode is RestoreLedger or RestoreAll; Reason says why RestoreAll
	// was chosen when it was not asked for.
	Mode   string `json:"mode"`
	Reason string `json:"reason,omitempty"`
	// AsideDir holds everything Restore replaced or changed, as it was
	// before, and restore.json, this report; empty if nothing was.
	AsideDir string `json:"asideDir,omitempty"`
	// Steps lists what was done to each part of the data directory.
	Steps []RestoreStep `json:"steps"`
}

// RestoreStep is what Restore did to one part of the data directory.
type RestoreStep struct {
	// Part is a store name (StoreLedger, ...) or "events".
	Part string `json:"part"`
	// Action is "restored", "kept", "merged", "reset" or "not in backup".
	Action string `json:"action"`
	Detail string `json:"detail,omitempty"`
}

// Restore brings a node's data directory back from a backup, with the
// node stopped. It first verifies the backup in full (VerifyBackup) and
// that its keyring opens with cfg.MasterKey, and refuses (ErrBadBackup,
// seal.ErrWrongMasterKey) without touching the data directory; it refuses
// a data directory in use (ErrNodeRunning) too.
//
// It never overwrites: whatever it replaces, and a copy of whatever it
// changes, goes to DataDir/before-restore-<UTC time>/ (inside the data
// directory, so a move is a rename on one file system), with a report of
// what was done (restore.json).
//
// In mode RestoreLedger (the default):
//   - the ledger is the backup's;
//   - the ingest queue is kept, so on the next start reconciliation
//     resubmits every retained reading the restored ledger lacks (those
//     acknowledged or recorded after the backup), and names in a
//     reconcile-*.txt report those it cannot resubmit or the ledger
//     refuses (say, of a device registered after the backup);
//   - the blob store keeps its blocks and gets those it lacks from the
//     backup (a current store that does not open is replaced by the
//     backup's);
//   - the keyring keeps its keys and gets the patients and keys it lacks
//     from the backup; an erasure in either keyring stays an erasure.
//
// Mode RestoreAll, asked for or chosen because the current queue is
// missing or unreadable, takes every store from the backup; erasures the
// current keyring recorded after the backup are kept even then.
//
// In both modes the gateway's event checkpoint is moved aside, so the
// node re-reads the restored chain's events from the first block (which
// re-applies its erasures, among others). Signed-request nonces, the
// admin token and the master key are left as they are. Changes to the
// ledger after the backup other than readings (registrations, consents,
// access events, erasures) are not recovered by the queue: they are in
// the ledger moved aside, and must be submitted again.
func Restore(ctx context.Context, cfg RestoreConfig) (*RestoreReport, error) {
	if cfg.From == "" || cfg.DataDir == "" {
		return nil, fmt.Errorf("%w: restore needs From and DataDir", ErrConfig)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if overlaps(cfg.From, cfg.DataDir) {
		return nil, fmt.Errorf("%w: the backup %s and the data directory %s overlap", ErrConfig, cfg.From, cfg.DataDir)
	}
	chk, err := VerifyBackup(ctx, cfg.From)
	if err != nil {
		return nil, err
	}
	m := chk.Manifest
	if s, ok := m.store(StoreKeyring); ok {
		if len(cfg.MasterKey) == 0 {
			return nil, fmt.Errorf("%w: restoring a keyring needs the master key it was made under", ErrConfig)
		}
		if _, err := seal.CheckKeyringFile(ctx, filepath.Join(cfg.From, s.Path), cfg.MasterKey); err != nil {
			return nil, fmt.Errorf("the backup's keyring: %w", err)
		}
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	if err := checkStopped(cfg.DataDir); err != nil {
		return nil, err
	}

	r := &restorer{cfg: cfg, from: cfg.From, to: cfg.DataDir,
		rep: &RestoreReport{Backup: chk, Mode: RestoreLedger}}
	r.aside = filepath.Join(cfg.DataDir, "before-restore-"+cfg.Now().UTC().Format("20060102T150405.000Z"))
	if _, err := os.Lstat(r.aside); err == nil {
		return nil, fmt.Errorf("restore: %s exists already; retry in a moment", r.aside)
	}
	queue := filepath.Join(cfg.DataDir, queueFile)
	if cfg.All {
		r.rep.Mode = RestoreAll
	} else if _, err := ingest.CheckQueueFile(ctx, queue); err != nil {
		r.rep.Mode = RestoreAll
		r.rep.Reason = "the current ingest queue is missing or unreadable (" + err.Error() + "), so it cannot recover readings acknowledged after the backup"
	}

	err = r.run(ctx)
	if werr := r.finish(); werr != nil {
		err = errors.Join(err, werr)
	}
	if err != nil {
		return r.rep, fmt.Errorf("restore (what was replaced so far is in %s): %w", r.aside, err)
	}
	return r.rep, nil
}

// restorer carries out one Restore.
type restorer struct {
	cfg      RestoreConfig
	from, to string
	aside    string
	rep      *RestoreReport
}

func (r *restorer) step(part, action, detail string) {
	r.rep.Steps = append(r.rep.Steps, RestoreStep{Part: part, Action: action, Detail: detail})
}

func (r *restorer) run(ctx context.Context) error {
	m := r.rep.Backup.Manifest
	all := r.rep.Mode == RestoreAll

	if _, ok := m.store(StoreLedger); ok {
		moved, err := r.replace(LedgerDir)
		if err != nil {
			return fmt.Errorf("ledger: %w", err)
		}
		r.step(StoreLedger, "restored", fmt.Sprintf("%d blocks, tip %s%s", m.Ledger.Height, m.Ledger.Tip, movedNote(moved)))
	} else {
		r.step(StoreLedger, "not in backup", "the ledger is on Fabric: restore its peers from their own snapshots")
	}

	if _, ok := m.store(StoreQueue); ok && all {
		moved, err := r.replace(queueFile)
		if err != nil {
			return fmt.Errorf("ingest queue: %w", err)
		}
		r.step(StoreQueue, "restored", "pending readings of the backup are replayed and, by reconciliation, those the ledger lacks resubmitted"+movedNote(moved))
	} else {
		st, err := ingest.CheckQueueFile(ctx, filepath.Join(r.to, queueFile))
		if err != nil {
			return fmt.Errorf("ingest queue: %w", err)
		}
		r.step(StoreQueue, "kept", fmt.Sprintf("%d pending and %d retained recorded readings: on the next start those the restored ledger lacks are resubmitted, and any that cannot be are listed by ID in a reconcile-*.txt report beside %s", st.Pending, st.Retained, queueFile))
	}

	if _, ok := m.store(StoreBlobs); ok {
		if err := r.blobs(ctx, all); err != nil {
			return fmt.Errorf("blobs: %w", err)
		}
	} else {
		r.step(StoreBlobs, "not in backup", "the blobs are in kubo: restore its repository with kubo's own tools")
	}

	if _, ok := m.store(StoreKeyring); ok {
		if err := r.keyring(ctx, all); err != nil {
			return fmt.Errorf("keyring: %w", err)
		}
	}

	moved, err := r.moveAside(checkpointFile)
	if err != nil {
		return fmt.Errorf("event checkpoint: %w", err)
	}
	if moved {
		r.step("events", "reset", "the gateway follows the restored chain's events from its first block again")
	}
	return restrictPermissions(r.to)
}

// blobs restores the blob store: in mode all, or when the current store
// does not open, from the backup; otherwise by adding what it lacks.
func (r *restorer) blobs(ctx context.Context, all bool) error {
	cur := filepath.Join(r.to, blobsDir)
	if !all && exists(cur) {
		st, err := mergeBlobs(ctx, cur, filepath.Join(r.from, blobsDir))
		if err == nil {
			r.step(StoreBlobs, "merged", fmt.Sprintf("kept the current store and added the %d blocks and %d pins it lacked", st.Blocks, st.Pins))
			return nil
		}
		if ctx.Err() != nil {
			return err
		}
		moved, rerr := r.replace(blobsDir)
		if rerr != nil {
			return errors.Join(err, rerr)
		}
		r.step(StoreBlobs, "restored", "the current store could not be merged into ("+err.Error()+")"+movedNote(moved))
		return nil
	}
	moved, err := r.replace(blobsDir)
	if err != nil {
		return err
	}
	r.step(StoreBlobs, "restored", movedNote(moved))
	return nil
}

func mergeBlobs(ctx context.Context, cur, from string) (_ ipfsembedded.MergeStats, err error) {
	s, err := ipfsembedded.New(ctx, ipfsembedded.Config{Dir: cur})
	if err != nil {
		return ipfsembedded.MergeStats{}, err
	}
	defer func() { err = errors.Join(err, s.Close()) }()
	return s.Merge(ctx, from)
}

// keyring restores the keyring. In mode ledger a current keyring that
// opens is kept (a copy goes aside) and gets what it lacks from the
// backup's; otherwise the backup's replaces it, and takes the erasures of
// the old one if that opens.
func (r *restorer) keyring(ctx context.Context, all bool) error {
	cur := filepath.Join(r.to, KeyringFile)
	backup := filepath.Join(r.from, KeyringFile)
	readable := false
	if exists(cur) {
		_, err := seal.CheckKeyringFile(ctx, cur, r.cfg.MasterKey)
		readable = err == nil
	}
	if !all && readable {
		if err := r.copyAside(KeyringFile); err != nil {
			return err
		}
		st, err := mergeKeyring(ctx, cur, r.cfg.MasterKey, backup, seal.MergeOptions{})
		if err != nil {
			return err
		}
		r.step(StoreKeyring, "merged", fmt.Sprintf("kept the current keyring (a copy is in %s) and added %d patients and %d keys it lacked from the backup; %d patients erased in the backup only are erased", r.aside, st.Patients, st.Keys, st.Erased))
		return nil
	}
	moved, err := r.replace(KeyringFile)
	if err != nil {
		return err
	}
	detail := movedNote(moved)
	if readable {
		st, err := mergeKeyring(ctx, cur, r.cfg.MasterKey, filepath.Join(r.aside, KeyringFile), seal.MergeOptions{ErasuresOnly: true})
		if err != nil {
			return err
		}
		detail += fmt.Sprintf("; %d patients erased after the backup stay erased", st.Erased)
	} else if moved {
		detail += "; the old keyring did not open with the master key, so erasures it recorded after the backup could not be carried over: erase those patients again"
	}
	r.step(StoreKeyring, "restored", strings.TrimPrefix(detail, "; "))
	return nil
}

func mergeKeyring(ctx context.Context, path string, key []byte, from string, opts seal.MergeOptions) (_ seal.MergeStats, err error) {
	k, err := seal.OpenKeyring(ctx, seal.KeyringConfig{Path: path, MasterKey: key})
	if err != nil {
		return seal.MergeStats{}, err
	}
	defer func() { err = errors.Join(err, k.Close()) }()
	return k.Merge(ctx, from, opts)
}

// replace puts the backup's copy of name (a file or directory) into the
// data directory: copied beside its place first, then the current one
// moved aside, then the copy renamed into place. moved reports whether
// there was a current one.
func (r *restorer) replace(name string) (moved bool, err error) {
	tmp := filepath.Join(r.to, "."+name+".restoring")
	if err := os.RemoveAll(tmp); err != nil {
		return false, err
	}
	if err := privatecopy.Tree(filepath.Join(r.from, name), tmp); err != nil {
		return false, errors.Join(err, os.RemoveAll(tmp))
	}
	if moved, err = r.moveAside(name); err != nil {
		return false, errors.Join(err, os.RemoveAll(tmp))
	}
	if err := os.Rename(tmp, filepath.Join(r.to, name)); err != nil {
		return moved, err
	}
	return moved, syncDir(r.to)
}

// moveAside moves name, if it exists, from the data directory to the
// aside directory.
func (r *restorer) moveAside(name string) (bool, error) {
	p := filepath.Join(r.to, name)
	if _, err := os.Lstat(p); errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err := os.MkdirAll(r.aside, 0o700); err != nil {
		return false, err
	}
	if err := os.Rename(p, filepath.Join(r.aside, name)); err != nil {
		return false, err
	}
	return true, nil
}

// copyAside copies name from the data directory to the aside directory.
func (r *restorer) copyAside(name string) error {
	if err := os.MkdirAll(r.aside, 0o700); err != nil {
		return err
	}
	return privatecopy.Tree(filepath.Join(r.to, name), filepath.Join(r.aside, name))
}

// movedNote is the detail added when the current copy was moved aside.
func movedNote(moved bool) string {
	if moved {
		return "; the previous one is in the before-restore directory"
	}
	return ""
}

// finish writes the report into the aside directory, if Restore put
// anything there.
func (r *restorer) finish() error {
	if !exists(r.aside) {
		r.rep.AsideDir = ""
		return nil
	}
	r.rep.AsideDir = r.aside
	b, err := json.MarshalIndent(r.rep, "", "  ")
	if err != nil {
		return fmt.Errorf("restore report: %w", err)
	}
	if err := writeFileSynced(filepath.Join(r.aside, "restore.json"), append(b, '\n')); err != nil {
		return fmt.Errorf("restore report: %w", err)
	}
	return restrictPermissions(r.aside)
}

// checkStopped fails with ErrNodeRunning if a process holds one of the
// data directory's stores (they are all locked with flock while open).
func checkStopped(dataDir string) error {
	for _, p := range []string{
		filepath.Join(LedgerDir, ledgerembedded.StoreDir, "LOCK"),
		queueFile, KeyringFile, noncesFile, invitesFile,
		filepath.Join(blobsDir, "blocks", "LOCK"),
		filepath.Join(blobsDir, "pins", "LOCK"),
	} {
		f, err := os.Open(filepath.Join(dataDir, p))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("data dir: %w", err)
		}
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			err = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		} else if errors.Is(err, syscall.EWOULDBLOCK) {
			err = fmt.Errorf("%w (%s is locked)", ErrNodeRunning, p)
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// overlaps reports whether one of the directories a and b is inside the
// other (or they are the same).
func overlaps(a, b string) bool {
	abs := func(p string) string {
		if q, err := filepath.Abs(p); err == nil {
			p = q
		}
		if q, err := filepath.EvalSymlinks(p); err == nil {
			p = q
		}
		return p
	}
	a, b = abs(a), abs(b)
	inside := func(x, y string) bool {
		rel, err := filepath.Rel(y, x)
		return err == nil && (rel == "." || filepath.IsLocal(rel))
	}
	return inside(a, b) || inside(b, a)
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}
