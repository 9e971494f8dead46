package cli

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/medprov/medprov/client"
	"github.com/medprov/medprov/node"
	"github.com/medprov/medprov/seal"
)

func newBackupCmd(a *app) *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "backup --out DIR",
		Short: "Take a consistent backup of a running node (admin)",
		Long: `backup asks the running gateway (with the admin token) for a backup of its
node and unpacks it into DIR, which must be new or empty. The node copies
each store from one consistent point while it goes on serving: the
embedded ledger first (whole blocks, its chain anchor naming the copy's
tip), then the ingest queue, the blobs and the keyring, so that every CID
and patient key the ledger or the queue refers to is in the backup. A
manifest.json lists the stores and every file with its SHA-256.

The backup is then verified here, in full: every file against the
manifest, every block, state record and index of the ledger, the queue
and keyring files, every blob against its CID. Only a backup that
verified is left in DIR (0700, files 0600); otherwise DIR is emptied and
the command fails.

The backup holds neither the keyring's master key nor the admin token:
keep the master key apart, restore needs it. A Fabric ledger or a kubo
blob store is not in the backup (back them up with their own tools).
Restore with "medprov restore --from DIR --data-dir DATA_DIR".`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			token, err := a.adminToken()
			if err != nil {
				return err
			}
			// No overall timeout: a backup takes as long as the node's
			// stores take to copy; ctx (SIGINT) stops it.
			c, err := a.newClient(client.WithAdminToken(token), client.WithHTTPClient(&http.Client{}))
			if err != nil {
				return err
			}
			if err := checkNewDir(out); err != nil {
				return err
			}
			ctx := cmd.Context()
			body, err := c.Backup(ctx)
			if err != nil {
				return fmt.Errorf("backup: %w", err)
			}
			chk, err := node.ReadBackup(ctx, body, out)
			err = errors.Join(err, body.Close())
			if err != nil {
				return errors.Join(fmt.Errorf("backup: %w", err), emptyDir(out))
			}
			return a.emit(chk, func(w io.Writer) {
				fmt.Fprintf(w, "backup written to %s and verified:\n", out)
				printBackup(w, chk)
				fmt.Fprintf(w, "restore it, with the node stopped, with: medprov restore --from %s --data-dir DATA_DIR\n", out)
			})
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "directory to write the backup into (new or empty)")
	required(cmd, "out")
	return cmd
}

func newRestoreCmd(a *app) *cobra.Command {
	var from, dataDir, masterKeyFile string
	var all, verifyOnly bool
	cmd := &cobra.Command{
		Use:   "restore --from DIR --data-dir DIR [--all]",
		Short: "Restore a stopped node from a backup",
		Long: `restore brings a node's data directory back from a backup that "medprov
backup" wrote. The node must be stopped. The backup is verified in full
first (as "medprov backup" does) and its keyring must open with the
node's master key ($` + EnvMasterKey + `, else --master-key-file, else
DATA_DIR/master.key); if anything fails, nothing is changed.

By default the ledger is restored and the current ingest queue kept: it
knows the readings acknowledged after the backup, and on the next start
the node resubmits those the restored ledger lacks and lists by ID, in a
reconcile-*.txt report beside ingest.db, those it cannot resubmit or the
ledger refuses (for example of a device registered after the backup).
The blob store and the keyring keep what they hold and get what they lack
from the backup. With --all, or when the current queue is missing or
unreadable, every store is restored from the backup; readings acknowledged
after the backup are then not recovered. Either way an erasure recorded
in the current keyring stays an erasure.

Nothing is overwritten: what is replaced (and a copy of what is changed)
goes to DATA_DIR/before-restore-<time>/, with restore.json saying what was
done. Registrations, consents, access events and erasures committed after
the backup are not in the restored ledger: submit them again.

--verify-only checks the backup and changes nothing.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if verifyOnly {
				chk, err := node.VerifyBackup(ctx, from)
				if err != nil {
					return err
				}
				return a.emit(chk, func(w io.Writer) {
					fmt.Fprintf(w, "backup %s verified:\n", from)
					printBackup(w, chk)
				})
			}
			if dataDir == "" {
				return usagef("--data-dir is required (unless --verify-only)")
			}
			key, err := a.restoreMasterKey(dataDir, masterKeyFile)
			if err != nil {
				return err
			}
			rep, err := node.Restore(ctx, node.RestoreConfig{From: from, DataDir: dataDir, MasterKey: key, All: all})
			if rep == nil {
				return err
			}
			if eerr := a.emit(rep, func(w io.Writer) { printRestore(w, rep, err == nil) }); eerr != nil {
				return errors.Join(err, eerr)
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&from, "from", "", "the backup directory")
	f.StringVar(&dataDir, "data-dir", "", "the stopped node's data directory")
	f.BoolVar(&all, "all", false, "restore every store from the backup, the ingest queue too")
	f.StringVar(&masterKeyFile, "master-key-file", "", "keyring master key file (default <data-dir>/master.key)")
	f.BoolVar(&verifyOnly, "verify-only", false, "verify the backup and change nothing")
	required(cmd, "from")
	return cmd
}

// restoreMasterKey returns the master key from the environment or its
// file, which, unlike serve, it never creates.
func (a *app) restoreMasterKey(dataDir, file string) ([]byte, error) {
	if v := a.getenv(EnvMasterKey); v != "" {
		k, err := seal.ParseMasterKey(v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", EnvMasterKey, err)
		}
		return k, nil
	}
	if file == "" {
		file = filepath.Join(dataDir, "master.key")
	}
	if _, err := os.Stat(file); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no master key in %s: restore needs the key the backup's keyring was made under (set %s or --master-key-file)", file, EnvMasterKey)
	}
	k, err := seal.LoadOrCreateMasterKey(file)
	if err != nil {
		return nil, fmt.Errorf("master key: %w", err)
	}
	return k, nil
}

// checkNewDir fails unless dir does not exist or is an empty directory.
func checkNewDir(dir string) error {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("--out: %w", err)
	case len(entries) > 0:
		return fmt.Errorf("--out %s is not empty: a backup goes into a new or empty directory", dir)
	}
	return nil
}

// emptyDir removes everything inside dir, leaving dir itself.
func emptyDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		errs = append(errs, os.RemoveAll(filepath.Join(dir, e.Name())))
	}
	return errors.Join(errs...)
}

func printBackup(w io.Writer, chk *node.BackupCheck) {
	m := chk.Manifest
	fmt.Fprintf(w, "  taken    %s by medprov %s\n", m.CreatedAt.Format("2006-01-02 15:04:05Z07:00"), m.Version)
	for _, s := range m.Stores {
		if s.Path == "" {
			fmt.Fprintf(w, "  %-8s not in the backup: %s\n", s.Name, s.Note)
			continue
		}
		switch s.Name {
		case node.StoreLedger:
			fmt.Fprintf(w, "  %-8s %d blocks, tip %s; %d keys, %d transactions\n", s.Name, chk.Ledger.Blocks, chk.Ledger.Tip, chk.Ledger.Keys, chk.Ledger.Transactions)
		case node.StoreQueue:
			fmt.Fprintf(w, "  %-8s %d pending and %d retained recorded readings\n", s.Name, chk.Queue.Pending, chk.Queue.Retained)
		case node.StoreBlobs:
			fmt.Fprintf(w, "  %-8s %d blocks, %d pins\n", s.Name, chk.Blobs.Blocks, chk.Blobs.Pins)
		case node.StoreKeyring:
			fmt.Fprintf(w, "  %-8s %d patients (under the master key, which is not in the backup)\n", s.Name, chk.KeyringPatients)
		}
	}
	var size int64
	for _, f := range m.Files {
		size += f.Size
	}
	fmt.Fprintf(w, "  %d files, %d bytes\n", len(m.Files), size)
}

func printRestore(w io.Writer, rep *node.RestoreReport, ok bool) {
	if ok {
		fmt.Fprintf(w, "restored from the backup taken %s (mode %s)\n", rep.Backup.Manifest.CreatedAt.Format("2006-01-02 15:04:05Z07:00"), rep.Mode)
	} else {
		fmt.Fprintf(w, "restore FAILED part way (mode %s); done so far:\n", rep.Mode)
	}
	if rep.Reason != "" {
		fmt.Fprintf(w, "  mode %s because %s\n", rep.Mode, rep.Reason)
	}
	for _, s := range rep.Steps {
		fmt.Fprintf(w, "  %-8s %s", s.Part, s.Action)
		if s.Detail != "" {
			fmt.Fprintf(w, ": %s", s.Detail)
		}
		fmt.Fprintln(w)
	}
	if rep.AsideDir != "" {
		fmt.Fprintf(w, "previous data: %s (restore.json there says what was done)\n", rep.AsideDir)
	}
	if ok {
		fmt.Fprintln(w, "start the node; once /readyz says ready, check the reconcile status it reports (and any reconcile-*.txt report beside ingest.db)")
	}
}
