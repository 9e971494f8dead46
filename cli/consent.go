package cli

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/medprov/medprov/wire"

	"github.com/spf13/cobra"

	"github.com/medprov/medprov/client"
)

func newConsentCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "consent",
		Short: "Grant, revoke and list consent (patient)",
		Long: `Consent is granted by the patient, signed with the patient's key, to one
researcher for one purpose, a set of data types and a time window. Access
requests are decided against it on the ledger; revoking it stops later
releases. Every change is kept in the consent's ledger history.`,
	}
	cmd.AddCommand(newConsentGrantCmd(a), newConsentRevokeCmd(a), newConsentListCmd(a))
	return cmd
}

func newConsentGrantCmd(a *app) *cobra.Command {
	var patient, key, grantee, purpose, notBefore, notAfter string
	var types []string
	var validFor time.Duration
	cmd := &cobra.Command{
		Use:   "grant --patient ID --key FILE --grantee ID --purpose P --types T[,T]",
		Short: "Grant a researcher consent, signed by the patient",
		Long: `grant signs a consent.grant action with the patient's key. The consent covers
the grantee (an active researcher), one purpose, the listed data types and
the window [--not-before, --not-after] (RFC 3339; defaults: now, and
--valid-for after --not-before). Purpose and types are lower-case tokens
(a-z 0-9 . _ -). It prints the consent id and the transaction id.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			nb, err := parseTime("not-before", notBefore, time.Now())
			if err != nil {
				return err
			}
			na, err := parseTime("not-after", notAfter, nb.Add(validFor))
			if err != nil {
				return err
			}
			c, err := a.actorClient(patient, key)
			if err != nil {
				return err
			}
			r, err := c.GrantConsent(cmd.Context(), client.ConsentGrant{GranteeID: grantee, Purpose: purpose, DataTypes: types, NotBefore: nb, NotAfter: na})
			if err != nil {
				return fmt.Errorf("grant consent: %w", err)
			}
			return a.emit(r, func(w io.Writer) { fmt.Fprintf(w, "consent %s granted  tx %s\n", r.ConsentID, r.TxID) })
		},
	}
	f := cmd.Flags()
	f.StringVar(&patient, "patient", "", "patient actor id (the signer)")
	f.StringVar(&key, "key", "", "patient private key file")
	f.StringVar(&grantee, "grantee", "", "researcher actor id")
	f.StringVar(&purpose, "purpose", "", "purpose, e.g. cardio.study")
	f.StringSliceVar(&types, "types", nil, "data types, comma separated")
	f.StringVar(&notBefore, "not-before", "", "start of the window, RFC 3339 (default now)")
	f.StringVar(&notAfter, "not-after", "", "end of the window, RFC 3339 (default not-before + valid-for)")
	f.DurationVar(&validFor, "valid-for", 30*24*time.Hour, "window length when --not-after is not given")
	required(cmd, "patient", "key", "grantee", "purpose", "types")
	return cmd
}

func newConsentRevokeCmd(a *app) *cobra.Command {
	var patient, key, id string
	cmd := &cobra.Command{
		Use:   "revoke --patient ID --key FILE --consent ID",
		Short: "Revoke a consent, signed by the patient",
		Long: `revoke signs a consent.revoke action with the patient's key. Only the consent's
patient may revoke it. Access requests decided after the revocation's block
are denied (and the denial is recorded); releases made before stay in the
access log.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.actorClient(patient, key)
			if err != nil {
				return err
			}
			r, err := c.RevokeConsent(cmd.Context(), id)
			if err != nil {
				return fmt.Errorf("revoke consent %s: %w", id, err)
			}
			return a.emit(r, func(w io.Writer) { fmt.Fprintf(w, "consent %s revoked  tx %s\n", r.ConsentID, r.TxID) })
		},
	}
	f := cmd.Flags()
	f.StringVar(&patient, "patient", "", "patient actor id (the signer)")
	f.StringVar(&key, "key", "", "patient private key file")
	f.StringVar(&id, "consent", "", "consent id")
	required(cmd, "patient", "key", "consent")
	return cmd
}

func newConsentListCmd(a *app) *cobra.Command {
	var actor, key, patient string
	cmd := &cobra.Command{
		Use:   "list --actor ID --key FILE [--patient ID]",
		Short: "List a patient's consents with their ledger history",
		Long: `list sends a signed GET for the patient's consents. The signer (--actor) must be
the patient or a regulator; --patient defaults to the signer. Each consent is
printed with its status and every committed change (transaction, time).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if patient == "" {
				patient = actor
			}
			c, err := a.actorClient(actor, key)
			if err != nil {
				return err
			}
			cs, err := c.Consents(cmd.Context(), patient)
			if err != nil {
				return fmt.Errorf("list consents of %s: %w", patient, err)
			}
			return a.emit(cs, func(w io.Writer) { printConsents(w, cs) })
		},
	}
	f := cmd.Flags()
	f.StringVar(&actor, "actor", "", "signing actor id (the patient or a regulator)")
	f.StringVar(&key, "key", "", "signer's private key file")
	f.StringVar(&patient, "patient", "", "patient id (default: the signer)")
	required(cmd, "actor", "key")
	return cmd
}

func printConsents(w io.Writer, cs []wire.Consent) {
	if len(cs) == 0 {
		fmt.Fprintln(w, "no consents")
	}
	for _, c := range cs {
		fmt.Fprintf(w, "consent %s  %s  grantee %s  purpose %s  types %s  [%s, %s]\n",
			c.ID, c.Status, c.GranteeID, c.Purpose, strings.Join(c.DataTypes, ","), c.NotBefore, c.NotAfter)
		for _, h := range c.History {
			fmt.Fprintf(w, "  %s  %s  tx %s\n", h.Timestamp, h.Status, h.TxID)
		}
	}
}
