package cli

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/medprov/medprov/wire"

	"github.com/spf13/cobra"

	"github.com/medprov/medprov/client"
	"github.com/medprov/medprov/envelope"
)

func newDemoCmd(a *app) *cobra.Command {
	var dataDir string
	var keep bool
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Walk through all four roles end to end, printing the ledger evidence",
		Long: `demo plays one patient's story through the gateway's HTTP API and prints each
step with its ledger evidence (transaction ids, blocks, decisions,
verification results):

  admin registers an operator, a patient, a researcher and a regulator;
  the operator registers a device to the patient;
  the device sends signed readings and waits for their blocks;
  the patient grants the researcher consent;
  the researcher requests access: granted, every reading verified locally;
  the patient reads the access log;
  the patient revokes consent and lists the consent's history;
  the researcher asks again: denied (403), and the denial is still recorded;
  the regulator reads the audit events, a reading's provenance and has the
  gateway verify that reading end to end.

With --gateway (or $MEDPROV_GATEWAY) it uses that gateway and its admin token
(--admin-token-file or $MEDPROV_ADMIN_TOKEN); otherwise it starts an embedded
gateway (embedded ledger and blob store) in --data-dir, or in a temporary
directory removed afterwards. Ids get a random suffix, so the demo can run
again on the same ledger. It exits non-zero as soon as an outcome is not the
expected one, so it doubles as a smoke test.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			external := cmd.Flags().Changed("gateway") || a.getenv(EnvGateway) != ""
			var opts []client.Option
			if external {
				tok, err := a.adminToken()
				if err != nil {
					return err
				}
				opts = append(opts, client.WithAdminToken(tok))
				fmt.Fprintf(a.out, "using gateway %s\n", a.gateway)
			} else {
				dir, cleanup, err := demoDir(dataDir, keep)
				if err != nil {
					return err
				}
				defer cleanup()
				base, tok, stop, err := startEmbeddedGateway(ctx, dir)
				if err != nil {
					return fmt.Errorf("start embedded gateway: %w", err)
				}
				defer func() {
					if err := stop(); err != nil {
						fmt.Fprintln(cmd.ErrOrStderr(), "stop embedded gateway:", err)
					}
				}()
				a.gateway = base
				opts = append(opts, client.WithAdminToken(tok))
				fmt.Fprintf(a.out, "started embedded gateway %s (data in %s)\n", base, dir)
			}
			d := &demo{a: a, out: a.out, opts: opts}
			if err := d.run(ctx); err != nil {
				fmt.Fprintf(a.out, "\nDEMO FAILED at step %d: %v\n", d.step, err)
				return fmt.Errorf("demo step %d: %w", d.step, err)
			}
			fmt.Fprintf(a.out, "\ndemo passed: %d steps, every outcome as expected\n", d.step)
			return nil
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", "", "data directory of the embedded gateway (default: temporary)")
	cmd.Flags().BoolVar(&keep, "keep", false, "keep the temporary data directory")
	return cmd
}

// demoDir returns the embedded gateway's data directory and its cleanup.
func demoDir(dir string, keep bool) (string, func(), error) {
	if dir != "" {
		return dir, func() {}, nil
	}
	tmp, err := os.MkdirTemp("", "medprov-demo-")
	if err != nil {
		return "", nil, fmt.Errorf("data directory: %w", err)
	}
	if keep {
		return tmp, func() {}, nil
	}
	return tmp, func() { os.RemoveAll(tmp) }, nil
}

// demoActor is one participant with its key and client.
type demoActor struct {
	id   string
	role string
	key  *ecdsa.PrivateKey
	c    *client.Client
}

// demo holds the walk-through's state between steps.
type demo struct {
	a    *app
	out  io.Writer
	opts []client.Option
	step int

	admin, device                            *client.Client
	operator, patient, researcher, regulator *demoActor
	deviceID                                 string
	deviceKey                                *ecdsa.PrivateKey
	readings                                 []*wire.ReadingReceipt
	consentID                                string
	grant                                    *wire.AccessGrant
	deniedID                                 string
	start                                    time.Time
}

const (
	demoPurpose  = "cardio.study"
	demoType     = "heart_rate"
	demoReadings = 3
)

// title starts a step.
func (d *demo) title(format string, args ...any) {
	d.step++
	fmt.Fprintf(d.out, "\n[%d] %s\n", d.step, fmt.Sprintf(format, args...))
}

// show prints one line of evidence.
func (d *demo) show(format string, args ...any) {
	fmt.Fprintf(d.out, "    %s\n", fmt.Sprintf(format, args...))
}

// expect fails the step unless ok.
func expect(ok bool, format string, args ...any) error {
	if ok {
		return nil
	}
	return fmt.Errorf("unexpected outcome: "+format, args...)
}

func (d *demo) run(ctx context.Context) error {
	d.start = time.Now()
	admin, err := d.a.newClient(d.opts...)
	if err != nil {
		return err
	}
	d.admin = admin
	if d.device, err = d.a.newClient(); err != nil {
		return err
	}
	steps := []func(context.Context) error{
		d.registerActors, d.registerDevice, d.sendReadings, d.grantConsent,
		d.requestGranted, d.accessLog, d.revokeConsent, d.listConsents,
		d.requestDenied, d.auditEvents, d.provenance, d.verify,
	}
	for _, s := range steps {
		if err := s(ctx); err != nil {
			return err
		}
	}
	return nil
}

func (d *demo) newActor(ctx context.Context, role, suffix string) (*demoActor, error) {
	key, err := envelope.GenerateKey()
	if err != nil {
		return nil, err
	}
	pem, err := envelope.MarshalPublicKey(&key.PublicKey)
	if err != nil {
		return nil, err
	}
	id := role + "-" + suffix
	act, err := d.admin.RegisterActor(ctx, wire.ActorInput{ID: id, Role: role, PublicKey: string(pem)})
	if err != nil {
		return nil, fmt.Errorf("register %s: %w", id, err)
	}
	if err := expect(act.ID == id && act.Role == role && act.Status == "active", "actor %+v", act); err != nil {
		return nil, err
	}
	d.show("%-10s %-22s status %s  tx %s", role, id, act.Status, act.RegisteredTx)
	c, err := d.a.newClient(append(d.opts, client.WithActor(id, key))...)
	if err != nil {
		return nil, err
	}
	return &demoActor{id: id, role: role, key: key, c: c}, nil
}

func (d *demo) registerActors(ctx context.Context) error {
	d.title("admin registers an operator, a patient, a researcher and a regulator")
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		return err
	}
	suffix := hex.EncodeToString(b)
	var err error
	for _, r := range []struct {
		p    **demoActor
		role string
	}{{&d.operator, wire.RoleOperator}, {&d.patient, wire.RolePatient}, {&d.researcher, wire.RoleResearcher}, {&d.regulator, wire.RoleRegulator}} {
		if *r.p, err = d.newActor(ctx, r.role, suffix); err != nil {
			return err
		}
	}
	d.deviceID = "ecg-" + suffix
	return nil
}

func (d *demo) registerDevice(ctx context.Context) error {
	d.title("operator %s registers device %s to patient %s", d.operator.id, d.deviceID, d.patient.id)
	key, err := envelope.GenerateKey()
	if err != nil {
		return err
	}
	pem, err := envelope.MarshalPublicKey(&key.PublicKey)
	if err != nil {
		return err
	}
	dev, err := d.operator.c.RegisterDevice(ctx, client.DeviceRegistration{DeviceID: d.deviceID, PatientID: d.patient.id, DeviceType: "ecg", PublicKey: string(pem)})
	if err != nil {
		return err
	}
	if err := expect(dev.ID == d.deviceID && dev.Status == "active" && dev.PatientID == d.patient.id, "device %+v", dev); err != nil {
		return err
	}
	d.deviceKey = key
	d.show("device %s  status %s  tx %s (signed by %s)", dev.ID, dev.Status, dev.RegisteredTx, dev.OperatorID)
	return nil
}

func (d *demo) sendReadings(ctx context.Context) error {
	d.title("device %s signs %d readings and waits for their blocks", d.deviceID, demoReadings)
	for i := 1; i <= demoReadings; i++ {
		p, err := client.NewReading(d.deviceID, uint64(i), demoType, "bpm", 60+i*5, time.Now().Add(-time.Duration(demoReadings-i)*time.Second))
		if err != nil {
			return err
		}
		env, err := client.SignReading(d.deviceKey, p)
		if err != nil {
			return err
		}
		r, err := d.device.SubmitReading(ctx, env, client.WaitForCommit())
		if err != nil {
			return fmt.Errorf("reading %s: %w", p.ReadingID(), err)
		}
		if err := expect(r.Status == wire.StatusRecorded && r.TxID != "" && r.ReadingID == p.ReadingID(), "receipt %+v", r); err != nil {
			return err
		}
		d.show("%s  %s  tx %s  block %d", r.ReadingID, r.Status, r.TxID, r.Block)
		d.show("    sha256 %s  cid %s", r.DataHash, r.CID)
		d.readings = append(d.readings, r)
	}
	return nil
}

func (d *demo) grantConsent(ctx context.Context) error {
	d.title("patient %s grants %s consent: %s, %s", d.patient.id, d.researcher.id, demoPurpose, demoType)
	r, err := d.patient.c.GrantConsent(ctx, client.ConsentGrant{
		GranteeID: d.researcher.id, Purpose: demoPurpose, DataTypes: []string{demoType},
		NotBefore: d.start.Add(-time.Hour), NotAfter: d.start.Add(24 * time.Hour),
	})
	if err != nil {
		return err
	}
	if err := expect(r.ConsentID != "", "no consent id in %+v", r); err != nil {
		return err
	}
	d.consentID = r.ConsentID
	d.show("consent %s  tx %s", r.ConsentID, r.TxID)
	return nil
}

func (d *demo) accessRequest() client.AccessRequest {
	return client.AccessRequest{PatientID: d.patient.id, Purpose: demoPurpose, DataTypes: []string{demoType}, From: d.start.Add(-time.Hour), To: time.Now()}
}

func (d *demo) requestGranted(ctx context.Context) error {
	d.title("researcher %s requests the readings: granted, each verified locally", d.researcher.id)
	g, err := d.researcher.c.RequestAccess(ctx, d.accessRequest())
	if err != nil {
		return err
	}
	if err := expect(g.Decision == wire.DecisionGranted && len(g.Readings) == demoReadings, "decision %q with %d readings, want granted with %d", g.Decision, len(g.Readings), demoReadings); err != nil {
		return err
	}
	d.grant = g
	d.show("access %s  decision %s  %d readings released", g.AccessID, g.Decision, len(g.Readings))
	for _, r := range g.Readings {
		v, err := client.VerifyReleasedReading(r, &d.deviceKey.PublicKey, nil)
		var names []string
		for _, c := range v.Checks {
			names = append(names, c.Name)
		}
		if err != nil {
			return fmt.Errorf("reading %s: %w", r.ReadingID, err)
		}
		d.show("%s  verified locally (%s)  %s", r.ReadingID, strings.Join(names, ", "), r.Payload)
	}
	return nil
}

func (d *demo) accessLog(ctx context.Context) error {
	d.title("patient %s reads the access log", d.patient.id)
	p, err := d.patient.c.AccessLog(ctx, d.patient.id, client.PageRequest{})
	if err != nil {
		return err
	}
	found := slices.ContainsFunc(p.Items, func(e wire.AccessEvent) bool {
		return e.ID == d.grant.AccessID && e.Decision == wire.DecisionGranted && e.ActorID == d.researcher.id
	})
	for _, e := range p.Items {
		d.show("%s  %s %s by %s  purpose %s  %d readings  tx %s", e.TxTime, e.ID, e.Decision, e.ActorID, e.Purpose, e.Count, e.TxID)
	}
	return expect(found, "access %s is not in the log", d.grant.AccessID)
}

func (d *demo) revokeConsent(ctx context.Context) error {
	d.title("patient %s revokes consent %s", d.patient.id, d.consentID)
	r, err := d.patient.c.RevokeConsent(ctx, d.consentID)
	if err != nil {
		return err
	}
	d.show("consent %s revoked  tx %s", r.ConsentID, r.TxID)
	return nil
}

func (d *demo) listConsents(ctx context.Context) error {
	d.title("patient %s lists consents with their ledger history", d.patient.id)
	cs, err := d.patient.c.Consents(ctx, d.patient.id)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(cs, func(c wire.Consent) bool { return c.ID == d.consentID })
	if err := expect(i >= 0, "consent %s is not listed", d.consentID); err != nil {
		return err
	}
	c := cs[i]
	d.show("consent %s  status %s", c.ID, c.Status)
	for _, h := range c.History {
		d.show("    %s  %s  tx %s", h.Timestamp, h.Status, h.TxID)
	}
	return expect(c.Status == "revoked" && len(c.History) >= 2, "status %q with %d history entries, want revoked with >= 2", c.Status, len(c.History))
}

func (d *demo) requestDenied(ctx context.Context) error {
	d.title("researcher %s asks again: denied, and the denial is recorded", d.researcher.id)
	_, err := d.researcher.c.RequestAccess(ctx, d.accessRequest())
	id, denied := client.IsDenied(err)
	if !denied {
		return expect(false, "want a recorded 403 denial, got %v", err)
	}
	var ae *client.APIError
	errors.As(err, &ae)
	d.deniedID = id
	d.show("HTTP %d  %s: %s", ae.Status, ae.Code, ae.Message)
	d.show("denial recorded as access %s", id)
	return nil
}

func (d *demo) auditEvents(ctx context.Context) error {
	d.title("regulator %s reads the audit events of patient %s", d.regulator.id, d.patient.id)
	p, err := d.regulator.c.AuditEvents(ctx, client.EventFilter{PatientID: d.patient.id}, client.PageRequest{PageSize: 100})
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, e := range p.Items {
		seen[e.Type] = true
		d.show("%s  %-18s by %-22s subject %s  tx %s", e.TxTime, e.Type, e.ActorID, e.SubjectID, e.TxID)
	}
	var missing []string
	for _, t := range []string{"consent.granted", "consent.revoked", "access.granted", "access.denied"} {
		if !seen[t] {
			missing = append(missing, t)
		}
	}
	return expect(len(missing) == 0, "audit events lack %s", strings.Join(missing, ", "))
}

func (d *demo) provenance(ctx context.Context) error {
	id := d.readings[0].ReadingID
	d.title("regulator %s reads the provenance of reading %s", d.regulator.id, id)
	p, err := d.regulator.c.Provenance(ctx, id)
	if err != nil {
		return err
	}
	d.show("reading %s  type %s  measured %s", p.Reading.ID, p.Reading.Type, p.Reading.MeasuredAt)
	d.show("recorded tx %s at %s", p.Reading.TxID, p.Reading.TxTime)
	if p.Tx != nil {
		d.show("block %d", p.Tx.Block)
	}
	d.show("device %s  operator %s  status %s", p.Device.ID, p.Device.OperatorID, p.Device.Status)
	released := false
	for _, e := range p.Accesses {
		d.show("released by access %s to %s (%s)  tx %s", e.ID, e.ActorID, e.Decision, e.TxID)
		released = released || e.ID == d.grant.AccessID
	}
	// The regulator cross-checks what the researcher received against the
	// ledger record.
	for _, r := range d.grant.Readings {
		if r.ReadingID != id {
			continue
		}
		if _, err := client.VerifyReleasedReading(r, &d.deviceKey.PublicKey, &p.Reading); err != nil {
			return fmt.Errorf("released reading vs ledger record: %w", err)
		}
		d.show("the released bytes match the ledger record (hash, signature, type, unit, time)")
	}
	return expect(p.Reading.ID == id && p.Device.ID == d.deviceID && released,
		"provenance of %s: device %s, released by %s: %v", p.Reading.ID, p.Device.ID, d.grant.AccessID, released)
}

func (d *demo) verify(ctx context.Context) error {
	id := d.readings[len(d.readings)-1].ReadingID
	d.title("regulator %s has the gateway verify reading %s end to end", d.regulator.id, id)
	v, err := d.regulator.c.VerifyReading(ctx, id)
	if err != nil {
		return err
	}
	for _, c := range v.Checks {
		mark := "ok  "
		if !c.OK {
			mark = "FAIL"
		}
		d.show("%s %-22s %s", mark, c.Name, c.Detail)
	}
	return expect(v.OK && len(v.Checks) > 0, "verification of %s: ok=%v", id, v.OK)
}
