package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/medprov/medprov/wire"

	"github.com/spf13/cobra"

	"github.com/medprov/medprov/client"
)

func newReadingCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "reading",
		Short: "Send signed readings (device)",
		Long: `Readings are built and signed on the device with its key: the payload
{deviceId, seq, type, unit, value, measuredAt, nonce} is what the ledger's
hash and the device's signature cover. The gateway encrypts it, stores the
ciphertext in IPFS and records hash, signature and metadata on the ledger.`,
	}
	cmd.AddCommand(newReadingSendCmd(a))
	return cmd
}

func newReadingSendCmd(a *app) *cobra.Command {
	var dev, key, typ, unit, value, measured string
	var seq uint64
	var wait bool
	cmd := &cobra.Command{
		Use:   "send --device ID --key FILE --seq N --type T --unit U --value V",
		Short: "Sign one reading with the device key and send it",
		Long: `send builds a reading payload with a fresh 128-bit random nonce, signs it with
the device key and posts it. --value is JSON: a number (72), an array
([120,80]) or an object ({"sys":120,"dia":80}). --seq must be unique for the
device; resending the same reading is safe, a different reading with a used
seq is a conflict. --measured-at defaults to now.

Without --wait the gateway answers once the reading is durably queued
(status "queued"); with --wait it answers once the reading is in a block
and prints the transaction id and block number.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !json.Valid([]byte(value)) {
				return usagef("--value %q is not JSON (a number, array or object)", value)
			}
			at, err := parseTime("measured-at", measured, time.Now())
			if err != nil {
				return err
			}
			k, err := readPrivateKey(key)
			if err != nil {
				return err
			}
			p, err := client.NewReading(dev, seq, typ, unit, json.RawMessage(value), at)
			if err != nil {
				return usageError{err}
			}
			env, err := client.SignReading(k, p)
			if err != nil {
				return err
			}
			c, err := a.newClient()
			if err != nil {
				return err
			}
			var opts []client.SubmitOption
			if wait {
				opts = append(opts, client.WaitForCommit())
			}
			r, err := c.SubmitReading(cmd.Context(), env, opts...)
			if err != nil {
				return fmt.Errorf("send reading %s: %w", p.ReadingID(), err)
			}
			return a.emit(r, func(w io.Writer) { printReceipt(w, r) })
		},
	}
	f := cmd.Flags()
	f.StringVar(&dev, "device", "", "device id")
	f.StringVar(&key, "key", "", "device private key file")
	f.Uint64Var(&seq, "seq", 0, "sequence number, unique per device")
	f.StringVar(&typ, "type", "", "reading type, e.g. heart_rate")
	f.StringVar(&unit, "unit", "", "unit, e.g. bpm")
	f.StringVar(&value, "value", "", "value as JSON: number, array or object")
	f.StringVar(&measured, "measured-at", "", "measurement time, RFC 3339 (default now)")
	f.BoolVar(&wait, "wait", false, "wait until the reading is in a block")
	required(cmd, "device", "key", "seq", "type", "unit", "value")
	return cmd
}

func printReceipt(w io.Writer, r *wire.ReadingReceipt) {
	fmt.Fprintf(w, "reading %s  status %s\n  dataHash %s\n  cid %s\n", r.ReadingID, r.Status, r.DataHash, r.CID)
	if r.TxID != "" {
		fmt.Fprintf(w, "  tx %s  block %d\n", r.TxID, r.Block)
	}
}
