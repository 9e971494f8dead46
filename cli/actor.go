package cli

import (
	"fmt"
	"io"

	"github.com/medprov/medprov/wire"

	"github.com/spf13/cobra"

	"github.com/medprov/medprov/client"
)

func newActorCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "actor",
		Short: "Register, revoke and re-key actors",
		Long: `Actors are the people and organisations that sign on the ledger: patients,
device operators, researchers and regulators. Each is registered once by the
organisation's admin with its public key, or invited to enrol a passkey
instead (invite); from then on the ledger checks its signature on everything
it does. An actor can replace its key (rotate), and be revoked by itself, a
regulator or the org admin.`,
	}
	cmd.AddCommand(newActorRegisterCmd(a), newActorInviteCmd(a), newActorRevokeCmd(a), newActorRotateCmd(a))
	return cmd
}

func newActorRegisterCmd(a *app) *cobra.Command {
	var id, role, pubFile string
	cmd := &cobra.Command{
		Use:   "register --id ID --role ROLE --pubkey FILE",
		Short: "Register an actor and its public key (admin token)",
		Long: `register puts an actor on the ledger: its id (letters, digits, '.', '_', '-';
at most 64), its role (patient, operator, researcher or regulator) and its
public key (PEM, from "medprov keygen"). It needs the admin token
(--admin-token-file or $MEDPROV_ADMIN_TOKEN) and prints the registered actor
with the transaction that recorded it. Registering an existing id fails with
a conflict.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, pem, err := readPublicKey(pubFile)
			if err != nil {
				return err
			}
			tok, err := a.adminToken()
			if err != nil {
				return err
			}
			c, err := a.newClient(client.WithAdminToken(tok))
			if err != nil {
				return err
			}
			act, err := c.RegisterActor(cmd.Context(), wire.ActorInput{ID: id, Role: role, PublicKey: pem})
			if err != nil {
				return fmt.Errorf("register actor %s: %w", id, err)
			}
			return a.emit(act, func(w io.Writer) { printActor(w, act) })
		},
	}
	f := cmd.Flags()
	f.StringVar(&id, "id", "", "actor id")
	f.StringVar(&role, "role", "", "patient, operator, researcher or regulator")
	f.StringVar(&pubFile, "pubkey", "", "the actor's public key file (PEM)")
	required(cmd, "id", "role", "pubkey")
	return cmd
}

func printActor(w io.Writer, act *wire.Actor) {
	fmt.Fprintf(w, "actor %s  role %s  org %s  status %s  tx %s\n", act.ID, act.Role, act.Org, act.Status, act.RegisteredTx)
}
