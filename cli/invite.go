package cli

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/medprov/medprov/client"
	"github.com/medprov/medprov/wire"
)

// People enrol a passkey instead of handling PEM keys: the org admin sets
// the relying party once ("medprov rp set") and invites each person
// ("medprov actor invite"), who opens the printed link in a browser.

func newRPCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rp",
		Short: "Set the org's WebAuthn relying party (admin token)",
		Long: `People sign with passkeys (WebAuthn) bound to the organisation's relying
party: its id (rpId, a domain name such as portal.hospital.example, or
localhost) and the web origins of the portal where their ceremonies run. The
org admin records both on the ledger; every gateway and the chaincode check
each passkey signature against them.`,
	}
	cmd.AddCommand(newRPSetCmd(a))
	return cmd
}

func newRPSetCmd(a *app) *cobra.Command {
	var rpID string
	var origins []string
	cmd := &cobra.Command{
		Use:   "set --rp-id ID --origin URL [--origin URL...]",
		Short: "Record the relying party of the org on the ledger (admin token)",
		Long: `set records the relying party of the gateway's organisation on the ledger,
with the org's admin identity: --rp-id is a lower-case domain name (the
portal's host or a parent domain of it; localhost for a local portal), and
each --origin a web origin of the portal, https://host[:port] with host the
rpId or a subdomain of it (http:// only for localhost). Setting it again
replaces it: passkeys enrolled under another rpId stop working, and
assertions from origins no longer listed are refused. It needs the admin
token (--admin-token-file or $MEDPROV_ADMIN_TOKEN).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			tok, err := a.adminToken()
			if err != nil {
				return err
			}
			c, err := a.newClient(client.WithAdminToken(tok))
			if err != nil {
				return err
			}
			rp, err := c.SetRelyingParty(cmd.Context(), rpID, origins)
			if err != nil {
				return fmt.Errorf("set relying party: %w", err)
			}
			return a.emit(rp, func(w io.Writer) {
				fmt.Fprintf(w, "relying party of %s: rpId %s  origins %s  tx %s\n", rp.Org, rp.RPID, strings.Join(rp.Origins, " "), rp.SetTx)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&rpID, "rp-id", "", "relying party id: the portal's domain name, or localhost")
	f.StringArrayVar(&origins, "origin", nil, "a web origin of the portal, e.g. https://portal.hospital.example (repeatable)")
	required(cmd, "rp-id", "origin")
	return cmd
}

func newActorInviteCmd(a *app) *cobra.Command {
	var id, role string
	var ttl time.Duration
	cmd := &cobra.Command{
		Use:   "invite --id ID --role ROLE [--ttl 72h]",
		Short: "Invite a person to enrol a passkey (admin token)",
		Long: `invite creates a one-time enrolment link for a person who is to become actor
--id in --role (patient, operator, researcher or regulator). Opening it in a
browser creates a passkey (user verification required) and registers the
actor on the ledger with it; the link then stops working. It expires after
--ttl (5m to 720h). The link is a secret: give it to the person only. The
gateway prints links under its public URL (serve --public-url); the org's
relying party must be set first ("medprov rp set"). It needs the admin token
(--admin-token-file or $MEDPROV_ADMIN_TOKEN).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if ttl < wire.MinInviteTTL || ttl > wire.MaxInviteTTL {
				return usagef("--ttl must be from %s to %s", wire.MinInviteTTL, wire.MaxInviteTTL)
			}
			tok, err := a.adminToken()
			if err != nil {
				return err
			}
			c, err := a.newClient(client.WithAdminToken(tok))
			if err != nil {
				return err
			}
			inv, err := c.Invite(cmd.Context(), wire.InviteRequest{ID: id, Role: role, TTL: ttl.String()})
			if err != nil {
				return fmt.Errorf("invite %s: %w", id, err)
			}
			link := inv.URL
			if link == "" {
				link = strings.TrimRight(c.BaseURL(), "/") + inv.Path
			}
			return a.emit(inv, func(w io.Writer) {
				fmt.Fprintf(w, "enrolment link for %s (%s), valid until %s, usable once:\n%s\n", inv.ActorID, inv.Role, inv.ExpiresAt, link)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&id, "id", "", "the actor id the person will have")
	f.StringVar(&role, "role", "", "patient, operator, researcher or regulator")
	f.DurationVar(&ttl, "ttl", wire.DefaultInviteTTL, "how long the link stays valid")
	required(cmd, "id", "role")
	return cmd
}
