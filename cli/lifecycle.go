package cli

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/medprov/medprov/client"
	"github.com/medprov/medprov/wire"
)

func newActorRevokeCmd(a *app) *cobra.Command {
	var id, reason, signer, key string
	cmd := &cobra.Command{
		Use:   "revoke --id ID --reason R [--signer ID --key FILE]",
		Short: "Revoke an actor (a regulator, the actor itself, or the org admin)",
		Long: `revoke revokes an actor on the ledger. With --signer and --key it signs an
actor.revoke action with that actor's key: the signer must be a regulator or
the actor itself. Without them it uses the admin token (--admin-token-file
or $MEDPROV_ADMIN_TOKEN) as the org admin, who may revoke the org's own
actors. --reason is a lower-case token such as key-compromised or
left-study; it is written to the ledger, so never free text.

From the revocation's block on, the actor's key is refused for every signed
action and signed request. Its record keeps who revoked it, when and why,
and everything it did before stays on the ledger. Revoking twice fails with
a conflict.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var (
				r   *wire.ActorReceipt
				err error
			)
			switch {
			case signer != "" || key != "":
				c, cerr := a.actorClient(signer, key)
				if cerr != nil {
					return cerr
				}
				r, err = c.RevokeActor(cmd.Context(), id, reason)
			default:
				tok, terr := a.adminToken()
				if terr != nil {
					return terr
				}
				c, cerr := a.newClient(client.WithAdminToken(tok))
				if cerr != nil {
					return cerr
				}
				r, err = c.RevokeOrgActor(cmd.Context(), id, reason)
			}
			if err != nil {
				return fmt.Errorf("revoke actor %s: %w", id, err)
			}
			return a.emit(r, func(w io.Writer) { printActorChange(w, r) })
		},
	}
	f := cmd.Flags()
	f.StringVar(&id, "id", "", "the actor to revoke")
	f.StringVar(&reason, "reason", "", "why, as a lower-case token (e.g. key-compromised)")
	f.StringVar(&signer, "signer", "", "signing actor id (a regulator or the actor itself); without it the admin token is used")
	f.StringVar(&key, "key", "", "the signing actor's private key file")
	required(cmd, "id", "reason")
	return cmd
}

func newActorRotateCmd(a *app) *cobra.Command {
	var id, key, newPub string
	cmd := &cobra.Command{
		Use:   "rotate --id ID --key CURRENT --new-pubkey FILE",
		Short: "Replace an actor's key, signed with its current key",
		Long: `rotate signs an actor.rotate action with the actor's current key (--key)
naming its new public key (--new-pubkey, PEM from "medprov keygen"). The new
key must never have been registered to any actor or device. From the
rotation's block on only the new key works: sign with the new private key
from then on. The old key stays on the ledger's history and can never be
registered again.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, pem, err := readPublicKey(newPub)
			if err != nil {
				return err
			}
			c, err := a.actorClient(id, key)
			if err != nil {
				return err
			}
			r, err := c.RotateKey(cmd.Context(), pem)
			if err != nil {
				return fmt.Errorf("rotate the key of actor %s: %w", id, err)
			}
			return a.emit(r, func(w io.Writer) { printActorChange(w, r) })
		},
	}
	f := cmd.Flags()
	f.StringVar(&id, "id", "", "the actor whose key is replaced (the signer)")
	f.StringVar(&key, "key", "", "the actor's current private key file")
	f.StringVar(&newPub, "new-pubkey", "", "the new public key file (PEM)")
	required(cmd, "id", "key", "new-pubkey")
	return cmd
}

func newPatientCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "patient",
		Short: "Act on a patient's own data (patient)",
		Long: `Commands a patient signs about its own data. "patient erase" crypto-shreds the
patient's keys after the ledger recorded the erasure; the ledger keeps the
hashes as evidence.`,
	}
	cmd.AddCommand(newPatientEraseCmd(a))
	return cmd
}

func newPatientEraseCmd(a *app) *cobra.Command {
	var patient, key, reason string
	cmd := &cobra.Command{
		Use:   "erase --patient ID --key FILE --reason R",
		Short: "Erase the patient's data, signed by the patient",
		Long: `erase signs a patient.erase action with the patient's key. The ledger records
the erasure first, so it is evidenced; then the gateway crypto-shreds the
patient's keys, so no stored reading of the patient can be decrypted again.
From then on access requests for the patient are denied (patient_erased),
and new consents, devices and readings for the patient are refused. The
readings' hashes, signatures and CIDs stay on the ledger as evidence.
--reason is a lower-case token such as gdpr-request. This cannot be undone.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.actorClient(patient, key)
			if err != nil {
				return err
			}
			r, err := c.ErasePatient(cmd.Context(), reason)
			if err != nil {
				return fmt.Errorf("erase patient %s: %w", patient, err)
			}
			return a.emit(r, func(w io.Writer) {
				fmt.Fprintf(w, "patient %s erased  reason %s  tx %s  block %d\n", r.PatientID, r.Erasure.Reason, r.TxID, r.Block)
				if r.KeysShredded {
					fmt.Fprintln(w, "  keys crypto-shredded")
				} else {
					fmt.Fprintln(w, "  keys not yet shredded: the gateway retries on the ledger's erasure event")
				}
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&patient, "patient", "", "the patient (the signer)")
	f.StringVar(&key, "key", "", "the patient's private key file")
	f.StringVar(&reason, "reason", "", "why, as a lower-case token (e.g. gdpr-request)")
	required(cmd, "patient", "key", "reason")
	return cmd
}

func printActorChange(w io.Writer, r *wire.ActorReceipt) {
	printActor(w, &r.Actor)
	if r.Actor.RevokedTx != "" {
		fmt.Fprintf(w, "  revoked by %s  reason %s  tx %s\n", r.Actor.RevokedBy, r.Actor.RevokedReason, r.Actor.RevokedTx)
	}
	if r.Actor.RotatedTx != "" {
		fmt.Fprintf(w, "  key rotated  tx %s\n", r.Actor.RotatedTx)
	}
	fmt.Fprintf(w, "  block %d\n", r.Block)
}
