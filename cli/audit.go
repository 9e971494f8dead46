package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/medprov/medprov/wire"

	"github.com/spf13/cobra"

	"github.com/medprov/medprov/audit"
	"github.com/medprov/medprov/client"
	"github.com/medprov/medprov/fhir"
)

func newAuditCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Audit the ledger: events, provenance, verification (regulator)",
		Long: `Regulators audit the ledger through signed GETs: the audit trail of every
state-changing transaction, the provenance of one reading (record, device,
consents, accesses) and an end-to-end verification of a reading (ciphertext
re-fetched from IPFS, hash, CID, device signature and block).`,
	}
	cmd.AddCommand(newAuditEventsCmd(a), newAuditProvenanceCmd(a), newAuditVerifyCmd(a),
		newAuditTrustCmd(a), newAuditExportCmd(a), newAuditCheckpointCmd(a))
	return cmd
}

func newAuditEventsCmd(a *app) *cobra.Command {
	var actor, key, patient, by, typ, from, to, bookmark string
	var pageSize int
	var all bool
	cmd := &cobra.Command{
		Use:   "events --actor ID --key FILE [--patient ID] [--by ID] [--type T] [--from T] [--to T]",
		Short: "List audit events, filtered by patient, actor, type and time",
		Long: `events sends a signed GET (the signer must be a regulator) for the audit
trail: one event per state-changing transaction (actor.registered,
device.registered, device.revoked, readings.recorded, consent.granted,
consent.revoked, access.granted, access.denied) with its actor, patients,
subject and transaction. Filter with --patient, --by (the acting actor),
--type and the RFC 3339 window --from/--to. --all follows bookmarks.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := parseTime("from", from, time.Time{})
			if err != nil {
				return err
			}
			t, err := parseTime("to", to, time.Time{})
			if err != nil {
				return err
			}
			c, err := a.actorClient(actor, key)
			if err != nil {
				return err
			}
			filter := client.EventFilter{PatientID: patient, ActorID: by, Type: typ, From: f, To: t}
			items, next, err := collectPages(cmd.Context(), client.PageRequest{PageSize: pageSize, Bookmark: bookmark}, all,
				func(ctx context.Context, pr client.PageRequest) ([]wire.AuditEvent, string, error) {
					p, err := c.AuditEvents(ctx, filter, pr)
					if err != nil {
						return nil, "", err
					}
					return p.Items, p.Bookmark, nil
				})
			if err != nil {
				return fmt.Errorf("audit events: %w", err)
			}
			return emitPage(a, items, next, printAuditEvents)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&actor, "actor", "", "signing actor id (a regulator)")
	fl.StringVar(&key, "key", "", "signer's private key file")
	fl.StringVar(&patient, "patient", "", "only events concerning this patient")
	fl.StringVar(&by, "by", "", "only events by this actor")
	fl.StringVar(&typ, "type", "", "only events of this type, e.g. access.denied")
	fl.StringVar(&from, "from", "", "only events at or after, RFC 3339")
	fl.StringVar(&to, "to", "", "only events at or before, RFC 3339")
	fl.IntVar(&pageSize, "page-size", 0, "events per page (server default when 0)")
	fl.StringVar(&bookmark, "bookmark", "", "bookmark of the page to start at")
	fl.BoolVar(&all, "all", false, "follow bookmarks to the last page")
	required(cmd, "actor", "key")
	return cmd
}

func printAuditEvents(w io.Writer, es []wire.AuditEvent) {
	if len(es) == 0 {
		fmt.Fprintln(w, "no audit events")
	}
	for _, e := range es {
		fmt.Fprintf(w, "%s  %-18s by %s", e.TxTime, e.Type, e.ActorID)
		if e.SubjectID != "" {
			fmt.Fprintf(w, "  subject %s", e.SubjectID)
		}
		if len(e.PatientIDs) > 0 {
			fmt.Fprintf(w, "  patients %s", strings.Join(e.PatientIDs, ","))
		}
		if e.Decision != "" {
			fmt.Fprintf(w, "  %s", e.Decision)
		}
		fmt.Fprintf(w, "  tx %s\n", e.TxID)
	}
}

// readingArg takes the reading id from --reading or the only argument.
func readingArg(flag string, args []string) (string, error) {
	switch {
	case flag != "" && len(args) == 0:
		return flag, nil
	case flag == "" && len(args) == 1:
		return args[0], nil
	default:
		return "", usagef("give one reading id, as --reading ID or as the argument")
	}
}

func newAuditProvenanceCmd(a *app) *cobra.Command {
	var actor, key, reading string
	cmd := &cobra.Command{
		Use:   "provenance --actor ID --key FILE (--reading ID | ID)",
		Short: "Show a reading's provenance: record, device, consents, accesses",
		Long: `provenance sends a signed GET (the signer must be a regulator or the reading's
patient) for everything the ledger holds about one reading "<device>:<seq>":
its record (hash, signature, CID, measured time, transaction), the device
that signed it, the patient's consents covering its type and every access
that released it.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := readingArg(reading, args)
			if err != nil {
				return err
			}
			c, err := a.actorClient(actor, key)
			if err != nil {
				return err
			}
			p, err := c.Provenance(cmd.Context(), id)
			if err != nil {
				return fmt.Errorf("provenance of %s: %w", id, err)
			}
			return a.emit(p, func(w io.Writer) { printProvenance(w, p) })
		},
	}
	f := cmd.Flags()
	f.StringVar(&actor, "actor", "", "signing actor id (a regulator or the patient)")
	f.StringVar(&key, "key", "", "signer's private key file")
	f.StringVar(&reading, "reading", "", "reading id, <device>:<seq>")
	required(cmd, "actor", "key")
	return cmd
}

func printProvenance(w io.Writer, p *wire.ProvenanceReport) {
	r := p.Reading
	fmt.Fprintf(w, "reading %s  patient %s  type %s (%s)  measured %s\n", r.ID, r.PatientID, r.Type, r.Unit, r.MeasuredAt)
	fmt.Fprintf(w, "  dataHash %s\n  cid %s  size %d\n  recorded tx %s at %s\n", r.DataHash, r.CID, r.Size, r.TxID, r.TxTime)
	if p.Tx != nil {
		fmt.Fprintf(w, "  block %d\n", p.Tx.Block)
	}
	d := p.Device
	fmt.Fprintf(w, "device %s  type %s  operator %s  status %s  registered tx %s\n", d.ID, d.DeviceType, d.OperatorID, d.Status, d.RegisteredTx)
	for _, c := range p.Consents {
		fmt.Fprintf(w, "consent %s  %s  grantee %s  purpose %s\n", c.ID, c.Status, c.GranteeID, c.Purpose)
	}
	for _, e := range p.Accesses {
		fmt.Fprintf(w, "access %s  %s by %s  purpose %s  tx %s at %s\n", e.ID, e.Decision, e.ActorID, e.Purpose, e.TxID, e.TxTime)
	}
}

func newAuditVerifyCmd(a *app) *cobra.Command {
	var actor, key, reading, trust, checkpoint, checkpointKey, keyringDir string
	cmd := &cobra.Command{
		Use:   "verify (FILE.tar --trust TRUST [--checkpoint CP --checkpoint-key PUB] [--keyring-dir DIR] | --actor ID --key FILE (--reading ID | ID))",
		Short: "Verify an audit bundle offline, or a reading on the gateway",
		Long: `With --trust, verify checks an audit bundle (medprov audit export) offline,
trusting only the pinned trust root (medprov audit trust): header chain from
the pinned genesis, data hashes, orderer signatures against the block
validation policy, each transaction's creator and endorsement signatures and
the endorsement policy, device signatures over each reading's hash, actor
signatures (plain and passkey) over each action, every access decision
re-derived from the consents then on the ledger, and with ciphertexts their
hash and CID (and, with --keyring-dir, a stopped node's data directory, the
plaintext hash). --checkpoint (medprov audit checkpoint) makes it fail
unless the chain extends that saved tip. It prints each failed check with
its block and transaction and exits 0 only when every check passes; --json
prints the whole report.

Without --trust, verify sends a signed GET (the signer must be a regulator)
asking the gateway to re-fetch the reading's ciphertext from IPFS and check
its CID and hash, decrypt it and check SHA-256 against the ledger's
dataHash, verify the device signature and locate the block. It prints every
check and fails unless all pass.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if trust != "" {
				return a.verifyBundleCmd(args, trust, checkpoint, checkpointKey, keyringDir)
			}
			id, err := readingArg(reading, args)
			if err != nil {
				return err
			}
			c, err := a.actorClient(actor, key)
			if err != nil {
				return err
			}
			v, err := c.VerifyReading(cmd.Context(), id)
			if err != nil {
				return fmt.Errorf("verify %s: %w", id, err)
			}
			if err := a.emit(v, func(w io.Writer) { printVerification(w, "", v) }); err != nil {
				return err
			}
			if !v.OK {
				return fmt.Errorf("reading %s failed verification", id)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&actor, "actor", "", "signing actor id (a regulator)")
	f.StringVar(&key, "key", "", "signer's private key file")
	f.StringVar(&reading, "reading", "", "reading id, <device>:<seq>")
	f.StringVar(&trust, "trust", "", "offline: the pinned trust root (medprov audit trust); the argument is the bundle")
	f.StringVar(&checkpoint, "checkpoint", "", "offline: a saved checkpoint the chain must extend")
	f.StringVar(&checkpointKey, "checkpoint-key", "", "offline: the public key (PEM) that signed the checkpoint")
	f.StringVar(&keyringDir, "keyring-dir", "", "offline: a stopped node's data directory, to check the plaintext hashes")
	return cmd
}

// exportFHIR writes a patient's Consents, AuditEvents and Provenances as
// one FHIR R4 collection Bundle (audit export --format fhir), read through
// the gateway's FHIR API as the signing actor.
func (a *app) exportFHIR(ctx context.Context, src sourceFlags, scope audit.Scope, ciphertexts bool, out string) error {
	switch {
	case scope.PatientID == "" || scope.ReadingID != "" || scope.From != "" || scope.To != "" || ciphertexts:
		return usagef("--format fhir exports one patient: give --patient, without --reading, --from, --to or --ciphertexts")
	case src.dataDir != "" || src.profile != "":
		return usagef("--format fhir reads the gateway's FHIR API: give --actor and --key, not --data-dir or --fabric-profile")
	case src.actor == "" || src.key == "":
		return usagef("--format fhir needs --actor and --key (the patient or a regulator)")
	}
	key, err := readPrivateKey(src.key)
	if err != nil {
		return err
	}
	r, err := fhir.NewSignedReader(a.gateway, src.actor, key, httpClient())
	if err != nil {
		return usageError{err}
	}
	b, err := fhir.ExportPatient(ctx, r, strings.TrimRight(a.gateway, "/")+fhir.BasePath, scope.PatientID, time.Now())
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	if err := writeNew(out, append(b, '\n')); err != nil {
		return err
	}
	var n struct {
		Entry []json.RawMessage `json:"entry"`
	}
	if err := json.Unmarshal(b, &n); err != nil {
		return err
	}
	fmt.Fprintf(a.out, "wrote %s: a FHIR R4 collection Bundle of %d resources (Consent, AuditEvent, Provenance) of patient %s\n", out, len(n.Entry), scope.PatientID)
	return nil
}
