package cli

import (
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/medprov/medprov/wire"

	"github.com/spf13/cobra"

	"github.com/medprov/medprov/client"
	"github.com/medprov/medprov/envelope"
)

func newAccessCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "access",
		Short: "Request consented data (researcher) and read the access log",
		Long: `A researcher's access request is decided on the ledger against the patient's
consent and the decision is committed before any data is released; denied
requests are recorded too. Patients and regulators read who accessed what,
when and why with "access log".`,
	}
	cmd.AddCommand(newAccessRequestCmd(a), newAccessLogCmd(a))
	return cmd
}

// accessManifest is what access request writes to DIR/access.json.
type accessManifest struct {
	AccessID string              `json:"accessId"`
	Decision string              `json:"decision"`
	Readings []manifestEntry     `json:"readings"`
	Cursor   string              `json:"nextCursor,omitempty"`
	Checks   []wire.Verification `json:"verifications"`
}

type manifestEntry struct {
	ReadingID string `json:"readingId"`
	DataHash  string `json:"dataHash"`
	CID       string `json:"cid"`
	Payload   string `json:"payloadFile"`
	Signature string `json:"signatureFile"`
}

func newAccessRequestCmd(a *app) *cobra.Command {
	var researcher, key, patient, purpose, from, to, outDir, cursor string
	var types, devKeys []string
	var keyDir string
	var limit int
	cmd := &cobra.Command{
		Use:   "request --researcher ID --key FILE --patient ID --purpose P --types T --out DIR",
		Short: "Request a patient's readings and verify each one locally",
		Long: `request signs an access.request action with the researcher's key. The ledger
decides it against the patient's consent (purpose, data types, window) and
records the decision. If granted, every released reading is written to --out
(mode 0700) as <reading>.json, the exact bytes the device signed, and
<reading>.sig, the device's DER signature, so it can be re-checked with
  openssl dgst -sha256 -verify device.pub.pem -signature R.sig R.json
plus access.json listing hashes, CIDs and verification results.

Each reading is verified here without trusting the gateway: SHA-256 of the
bytes must equal the ledger's dataHash, the device signature must verify and
the payload must be the reading it was released as. The device's public key
comes from --device-pubkey DEVICE=FILE, else from <DEVICE>.pub.pem in
--device-key-dir, else from the reading's provenance if the researcher may
read it. The command fails if any check fails.

A denial exits non-zero and prints the reason and the access id under which
the denial was recorded. --from/--to default to the last 24 hours.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			now := time.Now()
			f, err := parseTime("from", from, now.Add(-24*time.Hour))
			if err != nil {
				return err
			}
			t, err := parseTime("to", to, now)
			if err != nil {
				return err
			}
			keys, err := parseDeviceKeys(devKeys)
			if err != nil {
				return err
			}
			c, err := a.actorClient(researcher, key)
			if err != nil {
				return err
			}
			g, err := c.RequestAccess(cmd.Context(), client.AccessRequest{PatientID: patient, Purpose: purpose, DataTypes: types, From: f, To: t, Cursor: cursor, Limit: limit})
			if id, denied := client.IsDenied(err); denied {
				var ae *client.APIError
				errors.As(err, &ae)
				return fmt.Errorf("access denied (%s: %s), recorded as %s", ae.Code, ae.Message, id)
			}
			if err != nil {
				return fmt.Errorf("request access: %w", err)
			}
			vs := verifyReleased(cmd.Context(), c, g.Readings, keys, keyDir)
			m, err := writeReleased(outDir, g, vs)
			if err != nil {
				return err
			}
			if err := a.emit(m, func(w io.Writer) { printGrant(w, g, vs, outDir) }); err != nil {
				return err
			}
			for _, v := range vs {
				if !v.OK {
					return fmt.Errorf("reading %s failed local verification", v.ReadingID)
				}
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&researcher, "researcher", "", "researcher actor id (the signer)")
	fl.StringVar(&key, "key", "", "researcher private key file")
	fl.StringVar(&patient, "patient", "", "patient id")
	fl.StringVar(&purpose, "purpose", "", "purpose the consent was granted for")
	fl.StringSliceVar(&types, "types", nil, "data types, comma separated")
	fl.StringVar(&from, "from", "", "start of the measurement range, RFC 3339 (default 24h ago)")
	fl.StringVar(&to, "to", "", "end of the measurement range, RFC 3339 (default now)")
	fl.StringVar(&outDir, "out", "", "directory to write released readings to")
	fl.StringArrayVar(&devKeys, "device-pubkey", nil, "DEVICE=FILE: a device's public key for verification (repeatable)")
	fl.StringVar(&keyDir, "device-key-dir", "", "directory holding <DEVICE>.pub.pem public keys")
	fl.StringVar(&cursor, "cursor", "", "nextCursor of a previous grant, to continue")
	fl.IntVar(&limit, "limit", 0, "maximum readings to release (server default when 0)")
	required(cmd, "researcher", "key", "patient", "purpose", "types", "out")
	return cmd
}

// parseDeviceKeys reads DEVICE=FILE pairs.
func parseDeviceKeys(pairs []string) (map[string]*ecdsa.PublicKey, error) {
	keys := map[string]*ecdsa.PublicKey{}
	for _, p := range pairs {
		id, file, ok := strings.Cut(p, "=")
		if !ok || id == "" || file == "" {
			return nil, usagef("--device-pubkey %q: want DEVICE=FILE", p)
		}
		k, _, err := readPublicKey(file)
		if err != nil {
			return nil, err
		}
		keys[id] = k
	}
	return keys, nil
}

// verifyReleased verifies every released reading; a device key missing
// from keys is read from keyDir (if set), else looked up through the
// reading's provenance.
func verifyReleased(ctx context.Context, c *client.Client, rs []wire.ReleasedReading, keys map[string]*ecdsa.PublicKey, keyDir string) []wire.Verification {
	out := make([]wire.Verification, 0, len(rs))
	for _, r := range rs {
		dev, _, _ := strings.Cut(r.ReadingID, ":")
		pub, ok := keys[dev]
		if !ok && keyDir != "" {
			if k, _, err := readPublicKey(filepath.Join(keyDir, fileSafe(dev)+".pub.pem")); err == nil {
				pub, ok = k, true
			}
		}
		if !ok {
			pub = deviceKeyFromProvenance(ctx, c, r.ReadingID)
			keys[dev] = pub // nil too: do not ask again
		}
		v, _ := client.VerifyReleasedReading(r, pub, nil) // the failure is in v.Checks
		if pub == nil {
			for i := range v.Checks {
				if v.Checks[i].Name == client.CheckSignature {
					v.Checks[i].Detail = "no public key for device " + dev + " (pass --device-pubkey " + dev + "=FILE)"
				}
			}
		}
		out = append(out, *v)
	}
	return out
}

// deviceKeyFromProvenance returns the device key the ledger holds for a
// reading, or nil if the caller may not read its provenance.
func deviceKeyFromProvenance(ctx context.Context, c *client.Client, readingID string) *ecdsa.PublicKey {
	p, err := c.Provenance(ctx, readingID)
	if err != nil {
		return nil
	}
	k, err := envelope.ParsePublicKey([]byte(p.Device.PublicKey))
	if err != nil {
		return nil
	}
	return k
}

// writeReleased writes the readings and a manifest into dir.
func writeReleased(dir string, g *wire.AccessGrant, vs []wire.Verification) (*accessManifest, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("output directory: %w", err)
	}
	m := &accessManifest{AccessID: g.AccessID, Decision: g.Decision, Cursor: g.NextCursor, Checks: vs, Readings: []manifestEntry{}}
	for _, r := range g.Readings {
		base := fileSafe(r.ReadingID)
		e := manifestEntry{ReadingID: r.ReadingID, DataHash: r.DataHash, CID: r.CID, Payload: base + ".json", Signature: base + ".sig"}
		if err := writeFile(filepath.Join(dir, e.Payload), r.Payload, 0o600, true); err != nil {
			return nil, err
		}
		if err := writeFile(filepath.Join(dir, e.Signature), r.Signature, 0o600, true); err != nil {
			return nil, err
		}
		m.Readings = append(m.Readings, e)
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	if err := writeFile(filepath.Join(dir, "access.json"), append(b, '\n'), 0o600, true); err != nil {
		return nil, err
	}
	return m, nil
}

// fileSafe maps a reading id to a file name ("dev:7" → "dev_7").
func fileSafe(id string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == ':' || r == '\\' || r == 0 {
			return '_'
		}
		return r
	}, id)
}

func printGrant(w io.Writer, g *wire.AccessGrant, vs []wire.Verification, dir string) {
	fmt.Fprintf(w, "access %s %s: %d readings written to %s\n", g.AccessID, g.Decision, len(g.Readings), dir)
	for _, v := range vs {
		printVerification(w, "  ", &v)
	}
	if g.NextCursor != "" {
		fmt.Fprintf(w, "more readings match: continue with --cursor %s\n", g.NextCursor)
	}
}

func printVerification(w io.Writer, indent string, v *wire.Verification) {
	verdict := "VERIFIED"
	if !v.OK {
		verdict = "FAILED"
	}
	fmt.Fprintf(w, "%s%s %s\n", indent, v.ReadingID, verdict)
	for _, c := range v.Checks {
		mark := "ok  "
		if !c.OK {
			mark = "FAIL"
		}
		fmt.Fprintf(w, "%s  %s %-22s %s\n", indent, mark, c.Name, c.Detail)
	}
}

func newAccessLogCmd(a *app) *cobra.Command {
	var actor, key, patient, bookmark string
	var pageSize int
	var all bool
	cmd := &cobra.Command{
		Use:   "log --actor ID --key FILE [--patient ID]",
		Short: "List who accessed a patient's data, when and why",
		Long: `log sends a signed GET for the patient's access log: every access decision,
granted or denied, oldest first, with the researcher, purpose, reason,
consent, readings released and the transaction that recorded it. The signer
must be the patient or a regulator; --patient defaults to the signer. --all
follows bookmarks to the end.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if patient == "" {
				patient = actor
			}
			c, err := a.actorClient(actor, key)
			if err != nil {
				return err
			}
			items, next, err := collectPages(cmd.Context(), client.PageRequest{PageSize: pageSize, Bookmark: bookmark}, all,
				func(ctx context.Context, pr client.PageRequest) ([]wire.AccessEvent, string, error) {
					p, err := c.AccessLog(ctx, patient, pr)
					if err != nil {
						return nil, "", err
					}
					return p.Items, p.Bookmark, nil
				})
			if err != nil {
				return fmt.Errorf("access log of %s: %w", patient, err)
			}
			return emitPage(a, items, next, printAccessEvents)
		},
	}
	f := cmd.Flags()
	f.StringVar(&actor, "actor", "", "signing actor id (the patient or a regulator)")
	f.StringVar(&key, "key", "", "signer's private key file")
	f.StringVar(&patient, "patient", "", "patient id (default: the signer)")
	f.IntVar(&pageSize, "page-size", 0, "events per page (server default when 0)")
	f.StringVar(&bookmark, "bookmark", "", "bookmark of the page to start at")
	f.BoolVar(&all, "all", false, "follow bookmarks to the last page")
	required(cmd, "actor", "key")
	return cmd
}

func printAccessEvents(w io.Writer, es []wire.AccessEvent) {
	if len(es) == 0 {
		fmt.Fprintln(w, "no access events")
	}
	for _, e := range es {
		fmt.Fprintf(w, "%s  %s  %-7s by %s  purpose %s", e.TxTime, e.ID, e.Decision, e.ActorID, e.Purpose)
		if e.Reason != "" {
			fmt.Fprintf(w, "  reason %s", e.Reason)
		}
		fmt.Fprintf(w, "  readings %d  tx %s\n", e.Count, e.TxID)
	}
}
