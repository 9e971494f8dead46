package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/spf13/cobra"

	"github.com/medprov/medprov/audit"
	"github.com/medprov/medprov/chaincode"
	"github.com/medprov/medprov/client"
	"github.com/medprov/medprov/envelope"
	"github.com/medprov/medprov/evidence"
	"github.com/medprov/medprov/ledger/embedded"
	"github.com/medprov/medprov/ledger/fabric"
	"github.com/medprov/medprov/node"
	"github.com/medprov/medprov/seal"
)

// Offline audit: the trust root, bundles, their verification and
// checkpoints (package audit).

// blockFormats are the block encodings audit verify reads, by backend.
var blockFormats = map[string]audit.Format{
	evidence.BackendFabric:   fabric.BlockFormat{},
	evidence.BackendEmbedded: embedded.BlockFormat{},
}

// sourceFlags say where evidence comes from: the gateway (signed GET as a
// regulator), a stopped node's data directory (embedded ledger), or a
// Fabric peer with the org's identity (connection profile).
type sourceFlags struct {
	actor, key, dataDir, profile, org string
}

func (s *sourceFlags) add(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&s.actor, "actor", "", "through the gateway: signing actor id (a regulator)")
	f.StringVar(&s.key, "key", "", "through the gateway: the signer's private key file")
	f.StringVar(&s.dataDir, "data-dir", "", "straight from a stopped node's embedded ledger in this data directory")
	f.StringVar(&s.profile, "fabric-profile", "", "straight from a Fabric peer: the connection profile")
	f.StringVar(&s.org, "fabric-org", "HospitalMSP", "with --fabric-profile: the MSP ID whose identity reads")
}

// direct opens the ledger named by --data-dir or --fabric-profile, or
// returns nil when the evidence comes through the gateway.
func (s *sourceFlags) direct(ctx context.Context) (audit.Source, audit.Format, func() error, error) {
	switch {
	case s.dataDir != "" && s.profile != "":
		return nil, nil, nil, usagef("give --data-dir or --fabric-profile, not both")
	case s.dataDir != "":
		cc, err := chaincode.NewChaincode()
		if err != nil {
			return nil, nil, nil, err
		}
		l, err := embedded.New(ctx, embedded.Config{Dir: filepath.Join(s.dataDir, node.LedgerDir), Chaincode: cc, MSPID: node.EmbeddedMSPID})
		if err != nil {
			return nil, nil, nil, fmt.Errorf("open the embedded ledger (is the node stopped?): %w", err)
		}
		return l, embedded.BlockFormat{}, l.Close, nil
	case s.profile != "":
		p, err := fabric.LoadProfile(s.profile)
		if err != nil {
			return nil, nil, nil, err
		}
		fc, err := p.Config(s.org)
		if err != nil {
			return nil, nil, nil, err
		}
		l, err := fabric.New(ctx, fc)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("fabric ledger: %w", err)
		}
		return l, fabric.BlockFormat{}, l.Close, nil
	}
	return nil, nil, nil, nil
}

func newAuditTrustCmd(a *app) *cobra.Command {
	var src sourceFlags
	var out string
	cmd := &cobra.Command{
		Use:   "trust --out TRUST (--actor ID --key FILE | --data-dir DIR | --fabric-profile FILE)",
		Short: "Export the ledger's trust root, to pin once",
		Long: `trust writes what a regulator pins once and verifies every audit bundle
against: per organisation the MSP root and intermediate certificates, the
ordering service and its block validation policy, the chaincode's
endorsement policy and the genesis block's header hash. Check it with each
organisation before pinning it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			var t *evidence.Trust
			ls, _, closeFn, err := src.direct(ctx)
			if err != nil {
				return err
			}
			if ls != nil {
				defer closeFn() //nolint:errcheck // read-only use
				t, err = ls.Trust(ctx)
			} else {
				var c interface {
					AuditTrust(context.Context) (*evidence.Trust, error)
				}
				if c, err = a.actorClient(src.actor, src.key); err != nil {
					return err
				}
				t, err = c.AuditTrust(ctx)
			}
			if err != nil {
				return fmt.Errorf("trust: %w", err)
			}
			b, err := json.MarshalIndent(t, "", "  ")
			if err != nil {
				return err
			}
			if err := writeNew(out, append(b, '\n')); err != nil {
				return err
			}
			fmt.Fprintf(a.out, "wrote the %s trust root of channel %s to %s (%d organisations, genesis %x)\n",
				t.Backend, t.Channel, out, len(t.Config.Orgs), t.GenesisHash[:min(8, len(t.GenesisHash))])
			return nil
		},
	}
	src.add(cmd)
	cmd.Flags().StringVar(&out, "out", "", "file to write (not overwritten)")
	required(cmd, "out")
	return cmd
}

func newAuditExportCmd(a *app) *cobra.Command {
	var src sourceFlags
	var out, outFormat string
	var scope audit.Scope
	var ciphertexts bool
	cmd := &cobra.Command{
		Use:   "export --out FILE.tar (--patient ID | --reading ID) [--from T] [--to T] [--ciphertexts] [--format tar|fhir] (--actor ID --key FILE | --data-dir DIR | --fabric-profile FILE)",
		Short: "Export an audit bundle to verify offline",
		Long: `export writes one tar file with the evidence of a patient or a reading: every
block header from genesis to the tip, the full blocks of the scope's
transactions and the tip block, the config blocks, the scope's records and,
with --ciphertexts, the encrypted readings. Through the gateway the signer
must be a regulator; --data-dir reads a stopped node's embedded ledger and
--fabric-profile a Fabric peer with the org's identity.

--format fhir writes instead a FHIR R4 Bundle (collection, JSON) of the
patient's Consents, AuditEvents and Provenances, read through the gateway's
FHIR API (--patient, --actor and --key: the patient or a regulator).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if outFormat == "fhir" {
				return a.exportFHIR(ctx, src, scope, ciphertexts, out)
			}
			if outFormat != "tar" {
				return usagef("--format must be tar or fhir")
			}
			var data []byte
			ls, format, closeFn, err := src.direct(ctx)
			if err != nil {
				return err
			}
			if ls != nil {
				defer closeFn() //nolint:errcheck // read-only use
				opt := audit.ExportOptions{Scope: scope, Format: format}
				if ciphertexts {
					return usagef("--ciphertexts needs the gateway (the blob store)")
				}
				b, err := audit.Export(ctx, ls, opt)
				if err != nil {
					return fmt.Errorf("export: %w", err)
				}
				var buf bytes.Buffer
				if err := audit.Write(&buf, b); err != nil {
					return err
				}
				data = buf.Bytes()
			} else {
				c, err := a.actorClient(src.actor, src.key)
				if err != nil {
					return err
				}
				rc, err := c.AuditBundle(ctx, clientScope(scope, ciphertexts))
				if err != nil {
					return fmt.Errorf("export: %w", err)
				}
				defer rc.Close()
				if data, err = io.ReadAll(rc); err != nil {
					return fmt.Errorf("export: %w", err)
				}
			}
			b, err := audit.Read(bytes.NewReader(data))
			if err != nil {
				return fmt.Errorf("export: the bundle received does not read back: %w", err)
			}
			if err := writeNew(out, data); err != nil {
				return err
			}
			fmt.Fprintf(a.out, "wrote %s: %d bytes, %d headers (tip %d), %d full blocks, %d transactions, %d ciphertexts\n",
				out, len(data), len(b.Headers), b.Manifest.Tip, len(b.Blocks), len(b.Manifest.Transactions), len(b.Ciphertexts))
			return nil
		},
	}
	src.add(cmd)
	f := cmd.Flags()
	f.StringVar(&out, "out", "", "tar file to write (not overwritten)")
	f.StringVar(&scope.PatientID, "patient", "", "the patient whose evidence to export")
	f.StringVar(&scope.ReadingID, "reading", "", "the reading whose evidence to export")
	f.StringVar(&scope.From, "from", "", "only transactions at or after, RFC 3339")
	f.StringVar(&scope.To, "to", "", "only transactions at or before, RFC 3339")
	f.BoolVar(&ciphertexts, "ciphertexts", false, "include the encrypted readings (through the gateway)")
	f.StringVar(&outFormat, "format", "tar", "tar (an audit bundle) or fhir (a FHIR R4 collection Bundle of a patient)")
	required(cmd, "out")
	return cmd
}

// verifyBundle reads a bundle and a trust root and verifies one against
// the other, with a checkpoint and a node's keyring when given.
func verifyBundle(bundleFile, trustFile, checkpointFile, checkpointKey string, openKeyring func(dir string) (*seal.Keyring, error), keyringDir string) (*audit.Bundle, *audit.Report, error) {
	tb, err := os.ReadFile(trustFile)
	if err != nil {
		return nil, nil, fmt.Errorf("trust root: %w", err)
	}
	var trust evidence.Trust
	if err := json.Unmarshal(tb, &trust); err != nil {
		return nil, nil, fmt.Errorf("trust root %s: %w", trustFile, err)
	}
	f, err := os.Open(bundleFile)
	if err != nil {
		return nil, nil, fmt.Errorf("bundle: %w", err)
	}
	defer f.Close()
	b, err := audit.Read(f)
	if err != nil {
		return nil, nil, err
	}
	opt := audit.VerifyOptions{Format: blockFormats[trust.Backend]}
	if checkpointFile != "" {
		if checkpointKey == "" {
			return nil, nil, usagef("--checkpoint needs --checkpoint-key, the public key that signed it")
		}
		pb, err := os.ReadFile(checkpointKey)
		if err != nil {
			return nil, nil, fmt.Errorf("checkpoint key: %w", err)
		}
		pub, err := envelope.ParsePublicKey(pb)
		if err != nil {
			return nil, nil, fmt.Errorf("checkpoint key: %w", err)
		}
		cb, err := os.ReadFile(checkpointFile)
		if err != nil {
			return nil, nil, fmt.Errorf("checkpoint: %w", err)
		}
		cp, err := audit.VerifyCheckpoint(cb, pub)
		if err != nil {
			return nil, nil, err
		}
		opt.Checkpoint = cp
	}
	if keyringDir != "" {
		kr, err := openKeyring(keyringDir)
		if err != nil {
			return nil, nil, err
		}
		defer kr.Close()
		opt.Open = func(patientID, readingID string, ct []byte) ([]byte, error) {
			return kr.Open(context.Background(), patientID, readingID, ct)
		}
	}
	return b, audit.Verify(b, &trust, opt), nil
}

// verifyBundleCmd runs audit verify in its offline form (--trust).
func (a *app) verifyBundleCmd(args []string, trustFile, checkpoint, checkpointKey, keyringDir string) error {
	if len(args) != 1 {
		return usagef("give the bundle file: medprov audit verify FILE.tar --trust TRUST")
	}
	_, rep, err := verifyBundle(args[0], trustFile, checkpoint, checkpointKey, a.openKeyring, keyringDir)
	if err != nil {
		return err
	}
	if err := a.emit(rep, func(w io.Writer) { printReport(w, rep) }); err != nil {
		return err
	}
	if !rep.OK {
		return fmt.Errorf("the bundle failed verification: %d checks failed", len(rep.Failed()))
	}
	return nil
}

// openKeyring opens the keyring of a stopped node's data directory with
// its master key (the environment or DIR/master.key).
func (a *app) openKeyring(dir string) (*seal.Keyring, error) {
	mk, err := a.restoreMasterKey(dir, "")
	if err != nil {
		return nil, err
	}
	return seal.OpenKeyring(context.Background(), seal.KeyringConfig{Path: filepath.Join(dir, node.KeyringFile), MasterKey: mk})
}

// printReport prints the failed checks, then a count per check.
func printReport(w io.Writer, r *audit.Report) {
	for _, c := range r.Failed() {
		where := ""
		if c.Block != nil {
			where = fmt.Sprintf(" block %d", *c.Block)
		}
		if c.TxID != "" {
			where += " tx " + c.TxID
		}
		fmt.Fprintf(w, "FAIL %s%s: %s\n", c.Name, where, c.Detail)
	}
	counts := r.Count()
	names := make([]string, 0, len(counts))
	for n := range counts {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "%-28s %6d passed %6d failed\n", n, counts[n][0], counts[n][1])
	}
	verdict := "FAILED"
	if r.OK {
		verdict = "OK"
	}
	fmt.Fprintf(w, "%s: %s bundle, tip %d, %d blocks and %d transactions verified against the pinned trust root\n",
		verdict, r.Backend, r.Tip, r.Blocks, r.Transactions)
}

func newAuditCheckpointCmd(a *app) *cobra.Command {
	var trustFile, actor, key, out string
	cmd := &cobra.Command{
		Use:   "checkpoint FILE.tar --trust TRUST --actor ID --key FILE --out CHECKPOINT",
		Short: "Save a verified bundle's tip, signed, so later bundles must extend it",
		Long: `checkpoint verifies the bundle against the trust root and, only if every
check passes, writes its tip (block number and header hash) signed with the
regulator's key. A later bundle verified with --checkpoint must hold that
exact block at that height: a rewrite or a rollback of history after the
checkpoint fails verification.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			b, rep, err := verifyBundle(args[0], trustFile, "", "", nil, "")
			if err != nil {
				return err
			}
			if !rep.OK {
				printReport(a.out, rep)
				return errors.New("the bundle failed verification: no checkpoint written")
			}
			k, err := readPrivateKey(key)
			if err != nil {
				return err
			}
			sc, err := audit.NewCheckpoint(b, blockFormats[b.Manifest.Backend], k, actor, time.Now())
			if err != nil {
				return err
			}
			data, err := json.MarshalIndent(sc, "", "  ")
			if err != nil {
				return err
			}
			if err := writeNew(out, append(data, '\n')); err != nil {
				return err
			}
			fmt.Fprintf(a.out, "checkpoint of block %d (%x) written to %s\n", sc.Checkpoint.Height, sc.Checkpoint.HeaderHash[:8], out)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&trustFile, "trust", "", "the pinned trust root")
	f.StringVar(&actor, "actor", "", "the regulator who signs")
	f.StringVar(&key, "key", "", "the regulator's private key file")
	f.StringVar(&out, "out", "", "file to write (not overwritten)")
	required(cmd, "trust", "actor", "key", "out")
	return cmd
}

// writeNew writes data to a new file, 0600, refusing to overwrite.
func writeNew(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close() //nolint:errcheck // the write error is the one to report
		return err
	}
	return f.Close()
}

// clientScope is an export scope as the client sends it.
func clientScope(s audit.Scope, ciphertexts bool) client.BundleScope {
	return client.BundleScope{PatientID: s.PatientID, ReadingID: s.ReadingID, From: s.From, To: s.To, Ciphertexts: ciphertexts}
}
