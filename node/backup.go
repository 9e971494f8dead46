package node

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/medprov/medprov/ingest"
	ipfsembedded "github.com/medprov/medprov/ipfs/embedded"
	ledgerembedded "github.com/medprov/medprov/ledger/embedded"
	"github.com/medprov/medprov/seal"
)

// What a node keeps in its data directory (see Open). LedgerDir (the
// embedded ledger) and KeyringFile are exported for tools that open a
// stopped node's stores (medprov audit).
const (
	LedgerDir      = "ledger"
	blobsDir       = "blobs"
	KeyringFile    = "keyring.db"
	queueFile      = "ingest.db"
	checkpointFile = "events.checkpoint"
	noncesFile     = "nonces.db"
	// backupTempPattern names the directories WriteBackup assembles a
	// backup in, inside the data directory; Open removes those a crash
	// left behind.
	backupTempPattern = ".backup-*"
)

// A backup is a directory (or, on the wire, a tar stream of it) holding a
// copy of each of a node's stores and a manifest:
//
//	manifest.json   what the backup holds (Manifest), every file's SHA-256
//	ledger/         the embedded ledger: ledger.leveldb/, ledger.tip, msp/
//	ingest.db       the ingest queue
//	blobs/          the embedded blob store: blocks/, pins/
//	keyring.db      the patient keyring, still encrypted under the master key
//
// It holds no secret that opens the rest: neither the master key (without
// which the keyring's keys do not unwrap) nor the admin token. Nor does it
// hold the gateway's signed-request nonces or event checkpoint, which
// Restore leaves or resets (see Restore).
const (
	// BackupFormat is the format of the backups this version writes and
	// restores.
	BackupFormat = "medprov-backup/1"
	// ManifestFile is the manifest's name inside a backup; in the tar
	// stream it is the last entry.
	ManifestFile = "manifest.json"
)

// Store names in a Manifest.
const (
	StoreLedger  = "ledger"
	StoreQueue   = "queue"
	StoreBlobs   = "blobs"
	StoreKeyring = "keyring"
)

// BackupError reports the store whose copy failed while taking a backup.
type BackupError struct {
	// Store is StoreLedger, StoreQueue, StoreBlobs or StoreKeyring.
	Store string
	Err   error
}

// Error implements error.
func (e *BackupError) Error() string { return "backup: " + e.Store + ": " + e.Err.Error() }

// Unwrap returns the store's error.
func (e *BackupError) Unwrap() error { return e.Err }

// BackupStore names the store, for logs that must not carry the error's
// text (which may quote a store's keys).
func (e *BackupError) BackupStore() string { return e.Store }

// ErrBadBackup reports a backup that is incomplete, damaged, of another
// format, or whose stores do not verify. Restore refuses such a backup
// before it touches the data directory.
var ErrBadBackup = errors.New("backup damaged or incomplete")

// Manifest describes a backup.
type Manifest struct {
	// Format is BackupFormat.
	Format string `json:"format"`
	// CreatedAt is when the backup began; Version the medprov build that
	// wrote it.
	CreatedAt time.Time `json:"createdAt"`
	Version   string    `json:"medprovVersion"`
	// Ledger is the point of the chain the backup holds.
	Ledger LedgerPoint `json:"ledger"`
	// Stores lists the node's stores in the order they were copied.
	Stores []StoreEntry `json:"stores"`
	// Files lists every file of the backup but the manifest, in path
	// order.
	Files []FileEntry `json:"files"`
}

// LedgerPoint is the chain a backup holds: its height (genesis included)
// and the header hash of its last block, in hex. Both are empty when the
// backup holds no ledger (Fabric).
type LedgerPoint struct {
	Backend string `json:"backend"`
	Height  uint64 `json:"height,omitempty"`
	Tip     string `json:"tip,omitempty"`
}

// StoreEntry is one store of the node and how the backup holds it.
type StoreEntry struct {
	// Name is StoreLedger, StoreQueue, StoreBlobs or StoreKeyring.
	Name string `json:"name"`
	// Path is where the copy is inside the backup; empty when the store
	// is not in the backup, and Note says why.
	Path   string `json:"path,omitempty"`
	Format string `json:"format,omitempty"`
	Note   string `json:"note,omitempty"`
}

// FileEntry is one file of a backup.
type FileEntry struct {
	// Path is slash-separated, relative to the backup directory.
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// store returns the entry named name, if the backup holds that store.
func (m *Manifest) store(name string) (StoreEntry, bool) {
	for _, s := range m.Stores {
		if s.Name == name && s.Path != "" {
			return s, true
		}
	}
	return StoreEntry{}, false
}

// Backup writes a backup of the running node into dir (created 0700 if
// missing; it must be empty): a copy of each store taken from one
// consistent point of that store, while the node goes on serving, and the
// manifest, written last.
//
// The stores are copied in this order, so that whatever an earlier copy
// refers to is in a later one:
//
//  1. the ledger, from one snapshot (whole blocks; its chain anchor names
//     the copy's own tip);
//  2. the ingest queue, from one read transaction: it knows at least every
//     reading the ledger copy holds, and those recorded or acknowledged
//     after the ledger's snapshot, which reconciliation resubmits to a
//     node restored from this backup;
//  3. the blobs (pins, then blocks): a reading's ciphertext is stored
//     before the reading is queued, so every CID the ledger or the queue
//     copy names is here;
//  4. the keyring: a patient's key exists before any reading of the
//     patient is sealed, so every key those ciphertexts need is here.
//
// A Fabric ledger is not copied (its peers keep it; back them up with
// Fabric's own ledger snapshots), nor is a kubo blob store (back up kubo's
// repository); the manifest says so. Backup stops when ctx ends or the
// node closes.
func (n *Node) Backup(ctx context.Context, dir string) (*Manifest, error) {
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	defer context.AfterFunc(n.life, stop)()
	if err := newDir(dir); err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	m := &Manifest{Format: BackupFormat, CreatedAt: time.Now().UTC(), Version: version()}

	switch l := n.Ledger.(type) {
	case *ledgerembedded.Ledger:
		info, err := l.Backup(ctx, filepath.Join(dir, LedgerDir))
		if err != nil {
			return nil, &BackupError{Store: StoreLedger, Err: err}
		}
		m.Ledger = LedgerPoint{Backend: Embedded, Height: info.Height, Tip: hex.EncodeToString(info.Tip)}
		m.Stores = append(m.Stores, StoreEntry{Name: StoreLedger, Path: LedgerDir, Format: "ledger/embedded " + info.Format})
	default:
		m.Ledger = LedgerPoint{Backend: Fabric}
		m.Stores = append(m.Stores, StoreEntry{Name: StoreLedger,
			Note: "Fabric: the peers keep the ledger; back them up with Fabric ledger snapshots (peer snapshot submitrequest)"})
	}

	if err := n.Ingest.Backup(ctx, filepath.Join(dir, queueFile)); err != nil {
		return nil, &BackupError{Store: StoreQueue, Err: err}
	}
	m.Stores = append(m.Stores, StoreEntry{Name: StoreQueue, Path: queueFile, Format: "bbolt (ingest queue)"})

	switch b := n.Blobs.(type) {
	case *ipfsembedded.Store:
		if err := b.Backup(ctx, filepath.Join(dir, blobsDir)); err != nil {
			return nil, &BackupError{Store: StoreBlobs, Err: err}
		}
		m.Stores = append(m.Stores, StoreEntry{Name: StoreBlobs, Path: blobsDir, Format: "ipfs/embedded leveldb"})
	default:
		m.Stores = append(m.Stores, StoreEntry{Name: StoreBlobs,
			Note: "kubo: back up kubo's repository with kubo's own tools (or export the pins as a CAR)"})
	}

	if err := n.Keyring.Backup(ctx, filepath.Join(dir, KeyringFile)); err != nil {
		return nil, &BackupError{Store: StoreKeyring, Err: err}
	}
	m.Stores = append(m.Stores, StoreEntry{Name: StoreKeyring, Path: KeyringFile, Format: "bbolt (seal keyring v1)"})

	if err := restrictPermissions(dir); err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	files, err := listFiles(ctx, dir)
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	m.Files = files
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("backup: manifest: %w", err)
	}
	if err := writeFileSynced(filepath.Join(dir, ManifestFile), append(b, '\n')); err != nil {
		return nil, fmt.Errorf("backup: manifest: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	return m, nil
}

// WriteBackup takes a backup (see Backup) into a temporary directory
// inside the data directory, writes it to w as a tar stream with the
// manifest as its last entry, and removes the directory. The data
// directory needs room for one more copy of the stores meanwhile. A
// stream cut short lacks its manifest, so ReadBackup refuses it.
func (n *Node) WriteBackup(ctx context.Context, w io.Writer) error {
	tmp, err := os.MkdirTemp(n.dataDir, backupTempPattern)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer os.RemoveAll(tmp) //nolint:errcheck // a leftover is removed by the next Open
	m, err := n.Backup(ctx, tmp)
	if err != nil {
		return err
	}
	return writeTar(ctx, w, tmp, m)
}

// writeTar writes the backup in dir, described by m, as a tar stream: its
// directories, its files in manifest order, then the manifest.
func writeTar(ctx context.Context, w io.Writer, dir string, m *Manifest) error {
	tw := tar.NewWriter(w)
	seen := map[string]bool{}
	for _, f := range m.Files {
		for d := path.Dir(f.Path); d != "."; d = path.Dir(d) {
			if seen[d] {
				break
			}
			seen[d] = true
		}
	}
	dirs := make([]string, 0, len(seen))
	for d := range seen {
		dirs = append(dirs, d)
	}
	slices.Sort(dirs) // parents sort before their children
	for _, d := range dirs {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o700, ModTime: m.CreatedAt}); err != nil {
			return fmt.Errorf("backup stream: %w", err)
		}
	}
	for _, f := range m.Files {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := tarFile(tw, filepath.Join(dir, filepath.FromSlash(f.Path)), f.Path, f.Size, m.CreatedAt); err != nil {
			return fmt.Errorf("backup stream: %w", err)
		}
	}
	if err := tarFile(tw, filepath.Join(dir, ManifestFile), ManifestFile, -1, m.CreatedAt); err != nil {
		return fmt.Errorf("backup stream: %w", err)
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("backup stream: %w", err)
	}
	return nil
}

// tarFile writes the file at p as name; size -1 means its current size.
func tarFile(tw *tar.Writer, p, name string, size int64, mtime time.Time) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close() //nolint:errcheck // read-only
	if size < 0 {
		info, err := f.Stat()
		if err != nil {
			return err
		}
		size = info.Size()
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o600, Size: size, ModTime: mtime}); err != nil {
		return err
	}
	if _, err := io.CopyN(tw, f, size); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// maxManifestBytes bounds the manifest ReadBackup and VerifyBackup read.
const maxManifestBytes = 64 << 20

// ReadBackup unpacks a backup tar stream (as WriteBackup writes it) into
// dir, which is created 0700 if missing and must be empty, and verifies it
// (VerifyBackup). Only directories and regular files with local names are
// accepted, files 0600 and directories 0700. A stream that ends before its
// manifest, or holds anything after it, fails with ErrBadBackup. On error,
// dir keeps what was unpacked; the caller removes it.
func ReadBackup(ctx context.Context, r io.Reader, dir string) (*BackupCheck, error) {
	if err := newDir(dir); err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	tr := tar.NewReader(r)
	manifest := false
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: read the stream: %w", ErrBadBackup, err)
		}
		if manifest {
			return nil, fmt.Errorf("%w: entries after the manifest", ErrBadBackup)
		}
		name := strings.TrimSuffix(h.Name, "/")
		if !filepath.IsLocal(name) || strings.Contains(name, `\`) {
			return nil, fmt.Errorf("%w: entry %q is not a local path", ErrBadBackup, h.Name)
		}
		to := filepath.Join(dir, filepath.FromSlash(name))
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(to, 0o700); err != nil {
				return nil, fmt.Errorf("backup: %w", err)
			}
			continue
		case tar.TypeReg:
		default:
			return nil, fmt.Errorf("%w: entry %q is neither a file nor a directory", ErrBadBackup, h.Name)
		}
		if err := os.MkdirAll(filepath.Dir(to), 0o700); err != nil {
			return nil, fmt.Errorf("backup: %w", err)
		}
		if err := unpackFile(tr, to, h.Size); err != nil {
			return nil, err
		}
		manifest = name == ManifestFile
	}
	if !manifest {
		return nil, fmt.Errorf("%w: the stream ended before its manifest", ErrBadBackup)
	}
	return VerifyBackup(ctx, dir)
}

func unpackFile(r io.Reader, to string, size int64) (err error) {
	f, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%w: %s appears twice", ErrBadBackup, to)
	}
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer func() { err = errors.Join(err, f.Close()) }()
	if _, err := io.CopyN(f, r, size); err != nil {
		return fmt.Errorf("%w: read the stream: %w", ErrBadBackup, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	return nil
}

// BackupCheck is what VerifyBackup found in a backup that verified.
type BackupCheck struct {
	Dir      string    `json:"dir"`
	Manifest *Manifest `json:"manifest"`
	// Ledger is the full verification of the embedded ledger's copy.
	Ledger *ledgerembedded.Report `json:"ledger,omitempty"`
	// Queue counts the readings the queue's copy holds.
	Queue *ingest.QueueFileStats `json:"queue,omitempty"`
	// Blobs counts the blocks and pins of the blob store's copy.
	Blobs *ipfsembedded.DirStats `json:"blobs,omitempty"`
	// KeyringPatients counts the keyring copy's patient records.
	KeyringPatients int `json:"keyringPatients"`
}

// VerifyBackup checks the backup in dir without changing it: the manifest
// is of this format; the files are exactly those it lists, with their
// sizes and SHA-256 (so nothing was added, lost or altered, including
// files a store would read); the ledger copy verifies in full
// (embedded.VerifyDir: every block, state record and index, and its chain
// anchor) and is at the height and tip the manifest names; the queue and
// keyring pass bbolt's consistency check and parse; every blob hashes to
// its CID. Any failure wraps ErrBadBackup.
func VerifyBackup(ctx context.Context, dir string) (*BackupCheck, error) {
	m, err := readManifest(dir)
	if err != nil {
		return nil, err
	}
	if err := checkFiles(ctx, dir, m); err != nil {
		return nil, err
	}
	chk := &BackupCheck{Dir: dir, Manifest: m}
	bad := func(what string, err error) error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%w: %s: %w", ErrBadBackup, what, err)
	}
	if s, ok := m.store(StoreLedger); ok {
		rep, err := ledgerembedded.VerifyDir(ctx, filepath.Join(dir, s.Path))
		if err != nil {
			return nil, bad("ledger", err)
		}
		switch {
		case !rep.Anchored:
			return nil, bad("ledger", errors.New("no chain anchor"))
		case rep.Blocks != m.Ledger.Height || rep.Tip != m.Ledger.Tip:
			return nil, bad("ledger", fmt.Errorf("the chain has %d blocks ending in %s; the manifest says %d ending in %s", rep.Blocks, rep.Tip, m.Ledger.Height, m.Ledger.Tip))
		}
		chk.Ledger = &rep
	}
	if s, ok := m.store(StoreQueue); ok {
		st, err := ingest.CheckQueueFile(ctx, filepath.Join(dir, s.Path))
		if err != nil {
			return nil, bad("ingest queue", err)
		}
		chk.Queue = &st
	}
	if s, ok := m.store(StoreBlobs); ok {
		st, err := ipfsembedded.VerifyDir(ctx, filepath.Join(dir, s.Path))
		if err != nil {
			return nil, bad("blobs", err)
		}
		chk.Blobs = &st
	}
	if s, ok := m.store(StoreKeyring); ok {
		n, err := seal.CheckKeyringFile(ctx, filepath.Join(dir, s.Path), nil)
		if err != nil {
			return nil, bad("keyring", err)
		}
		chk.KeyringPatients = n
	}
	return chk, nil
}

// readManifest reads and checks the manifest of the backup in dir.
func readManifest(dir string) (*Manifest, error) {
	f, err := os.Open(filepath.Join(dir, ManifestFile))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadBackup, err)
	}
	defer f.Close() //nolint:errcheck // read-only
	dec := json.NewDecoder(io.LimitReader(f, maxManifestBytes))
	dec.DisallowUnknownFields()
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%w: manifest: %w", ErrBadBackup, err)
	}
	if m.Format != BackupFormat {
		return nil, fmt.Errorf("%w: manifest format %q, this version reads %q", ErrBadBackup, m.Format, BackupFormat)
	}
	names := map[string]bool{}
	for _, s := range m.Stores {
		switch s.Name {
		case StoreLedger, StoreQueue, StoreBlobs, StoreKeyring:
		default:
			return nil, fmt.Errorf("%w: manifest names an unknown store %q", ErrBadBackup, s.Name)
		}
		if names[s.Name] {
			return nil, fmt.Errorf("%w: manifest names store %q twice", ErrBadBackup, s.Name)
		}
		names[s.Name] = true
		if s.Path != "" && s.Path != storePath(s.Name) {
			return nil, fmt.Errorf("%w: manifest puts store %q at %q", ErrBadBackup, s.Name, s.Path)
		}
	}
	if _, ok := m.store(StoreLedger); ok && (m.Ledger.Height == 0 || len(m.Ledger.Tip) != 2*sha256.Size) {
		return nil, fmt.Errorf("%w: manifest names no ledger height and tip", ErrBadBackup)
	}
	return &m, nil
}

// storePath is where a backup keeps the named store, as in a data
// directory.
func storePath(name string) string {
	switch name {
	case StoreLedger:
		return LedgerDir
	case StoreQueue:
		return queueFile
	case StoreBlobs:
		return blobsDir
	case StoreKeyring:
		return KeyringFile
	}
	return ""
}

// checkFiles checks that dir holds exactly the files m lists (and the
// manifest), each with its size and SHA-256, and nothing but directories
// and regular files.
func checkFiles(ctx context.Context, dir string, m *Manifest) error {
	want := make(map[string]FileEntry, len(m.Files))
	for _, f := range m.Files {
		if !filepath.IsLocal(f.Path) || f.Path == ManifestFile {
			return fmt.Errorf("%w: manifest lists %q", ErrBadBackup, f.Path)
		}
		want[f.Path] = f
	}
	got, err := listFiles(ctx, dir)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadBackup, err)
	}
	for _, f := range got {
		w, ok := want[f.Path]
		switch {
		case !ok:
			return fmt.Errorf("%w: %s is not in the manifest", ErrBadBackup, f.Path)
		case w.Size != f.Size || w.SHA256 != f.SHA256:
			return fmt.Errorf("%w: %s differs from the manifest (size %d, want %d; or its SHA-256)", ErrBadBackup, f.Path, f.Size, w.Size)
		}
		delete(want, f.Path)
	}
	for p := range want {
		return fmt.Errorf("%w: %s is missing", ErrBadBackup, p)
	}
	return nil
}

// listFiles returns every regular file under dir but the manifest, with
// its size and SHA-256, in path order. Anything but a directory or a
// regular file is an error.
func listFiles(ctx context.Context, dir string) ([]FileEntry, error) {
	var out []FileEntry
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		switch {
		case d.IsDir():
			return nil
		case !d.Type().IsRegular():
			return fmt.Errorf("%s is neither a file nor a directory", rel)
		case rel == ManifestFile:
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close() //nolint:errcheck // read-only
		h := sha256.New()
		size, err := io.Copy(h, f)
		if err != nil {
			return fmt.Errorf("%s: %w", rel, err)
		}
		out = append(out, FileEntry{Path: rel, Size: size, SHA256: hex.EncodeToString(h.Sum(nil))})
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b FileEntry) int { return strings.Compare(a.Path, b.Path) })
	return out, nil
}

// newDir creates dir (0700) if it does not exist and fails unless it is an
// empty directory.
func newDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	if len(entries) > 0 {
		return fmt.Errorf("%s is not empty", dir)
	}
	return os.Chmod(dir, 0o700)
}

// writeFileSynced writes b to the new file path (0600) and syncs it.
func writeFileSynced(path string, b []byte) (err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, f.Close()) }()
	if _, err := io.Copy(f, bytes.NewReader(b)); err != nil {
		return err
	}
	return f.Sync()
}

// syncDir makes the entries of dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}

// version is the medprov build: its module version and, when the build
// recorded it, the VCS revision.
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" {
			v += " " + s.Value
		}
	}
	return v
}

// removeStaleBackups removes the temporary backup directories a crash
// left in dataDir.
func removeStaleBackups(dataDir string) error {
	stale, err := filepath.Glob(filepath.Join(dataDir, backupTempPattern))
	if err != nil {
		return err
	}
	for _, d := range stale {
		if err := os.RemoveAll(d); err != nil {
			return err
		}
	}
	return nil
}
