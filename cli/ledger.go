package cli

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/medprov/medprov/ledger/embedded"
)

// nodeLedgerDir is where a node keeps its embedded ledger inside its data
// directory (see node.Open).
const nodeLedgerDir = "ledger"

func newLedgerCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ledger",
		Short: "Check the embedded ledger's files offline (node stopped)",
		Long: `ledger works on the embedded ledger's files directly, with the node stopped,
rather than through a gateway: it is what an operator runs when a node
refuses to start, or to check a ledger before restoring or archiving it.`,
	}
	cmd.AddCommand(newLedgerVerifyCmd(a))
	return cmd
}

// ledgerVerification is what "ledger verify" prints: the report when the
// ledger verified, else the first fault found.
type ledgerVerification struct {
	OK     bool             `json:"ok"`
	Dir    string           `json:"dir"`
	Report *embedded.Report `json:"report,omitempty"`
	Error  string           `json:"error,omitempty"`
	// Block and ObjectType locate the fault when it can be located.
	Block      *uint64 `json:"block,omitempty"`
	ObjectType string  `json:"objectType,omitempty"`
}

func newLedgerVerifyCmd(a *app) *cobra.Command {
	var dataDir string
	cmd := &cobra.Command{
		Use:   "verify [--data-dir DIR]",
		Short: "Verify every block, state record and index of the embedded ledger",
		Long: `verify opens the embedded ledger read-only (the node must be stopped) and
replays its whole chain: every block's header links to the previous one and
ends in the recorded tip and in the chain anchor (so a store that lost its
last blocks is caught), its data hash matches its transactions and its
write-set hash their writes; current state, the key history and the
transaction and event indexes must be exactly what the blocks produce.
LevelDB reads with every checksum enforced, so a damaged file is reported,
never skipped.

DIR is the node's --data-dir (the ledger is DIR/ledger) or the ledger
directory itself. It prints "ok: N blocks, M keys" and exits 0 only when
every record was checked and verified; otherwise it prints the first fault
(the block, and for a state or history record the object type of its key,
never its IDs) and exits 1.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir, err := findLedgerDir(dataDir)
			if err != nil {
				return err
			}
			res := ledgerVerification{Dir: dir}
			rep, verr := embedded.VerifyDir(cmd.Context(), dir)
			if verr == nil {
				res.OK, res.Report = true, &rep
			} else {
				res.Error = verr.Error()
				var te *embedded.TamperError
				if errors.As(verr, &te) {
					res.Block, res.ObjectType = &te.Block, te.ObjectType
				}
			}
			if err := a.emit(res, func(w io.Writer) { printLedgerVerification(w, res) }); err != nil {
				return err
			}
			if verr != nil {
				return fmt.Errorf("the ledger in %s failed verification", dir)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", "./medprov-data", "the node's data directory, or the ledger directory in it")
	return cmd
}

// findLedgerDir returns the ledger directory dataDir names: dataDir itself
// if it holds a ledger store or chain anchor, else dataDir/ledger.
func findLedgerDir(dataDir string) (string, error) {
	for _, dir := range []string{dataDir, filepath.Join(dataDir, nodeLedgerDir)} {
		for _, name := range []string{embedded.StoreDir, embedded.AnchorFile} {
			switch _, err := os.Stat(filepath.Join(dir, name)); {
			case err == nil:
				return dir, nil
			case !errors.Is(err, fs.ErrNotExist):
				return "", fmt.Errorf("ledger: %w", err)
			}
		}
	}
	return "", fmt.Errorf("no embedded ledger in %s (nor in %s)", dataDir, filepath.Join(dataDir, nodeLedgerDir))
}

func printLedgerVerification(w io.Writer, res ledgerVerification) {
	if !res.OK {
		fmt.Fprintf(w, "FAILED: %s\n", res.Error)
		return
	}
	r := res.Report
	anchor := "no chain anchor to compare with"
	if r.Anchored {
		anchor = "chain anchor matched"
	}
	fmt.Fprintf(w, "ok: %d blocks, %d keys (%d transactions, %d history entries; %s)\n", r.Blocks, r.Keys, r.Transactions, r.HistoryEntries, anchor)
}
