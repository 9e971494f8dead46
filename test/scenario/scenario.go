// Package scenario is medprov's end-to-end scenario suite: every role doing
// its whole job over the gateway's HTTP API, and every refusal the API
// promises. It is backend-agnostic; test/e2e runs it against the gateway
// binary on the embedded default and on Fabric + kubo.
package scenario

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/medprov/medprov/wire"

	"github.com/medprov/medprov/client"
	"github.com/medprov/medprov/envelope"
)

// Env is a running gateway the suite drives.
type Env struct {
	// BaseURL is the gateway's URL; it stays the same across Restart.
	BaseURL string
	// AdminToken authorises actor registration.
	AdminToken string
	// Restart stops the gateway (SIGTERM) and starts it again on the same
	// data and address, returning when it answers.
	Restart func(t *testing.T)
	// Prefix makes actor and device IDs unique, so the suite can run twice
	// against one ledger.
	Prefix string
}

type party struct {
	id  string
	key *ecdsa.PrivateKey
	c   *client.Client
}

// world holds the actors and devices the scenario creates.
type world struct {
	env                           Env
	admin                         *client.Client
	operator, patient, other, res *party
	reg                           *party
	dev, dev2                     *party // devices: dev belongs to patient; dev2 is revoked later
	recorded                      []string
	httpc                         *http.Client
}

func newParty(t *testing.T, env Env, id string) *party {
	t.Helper()
	k, err := envelope.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(env.BaseURL, client.WithActor(id, k), client.WithHTTPClient(&http.Client{Timeout: 60 * time.Second}))
	if err != nil {
		t.Fatal(err)
	}
	return &party{id: id, key: k, c: c}
}

func pubPEM(t *testing.T, k *ecdsa.PrivateKey) string {
	t.Helper()
	b, err := envelope.MarshalPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// wantStatus asserts that err is an *client.APIError with status.
func wantStatus(t *testing.T, err error, status int) *client.APIError {
	t.Helper()
	var ae *client.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("got error %v, want HTTP %d", err, status)
	}
	if ae.Status != status {
		t.Fatalf("got HTTP %d (%s: %s), want %d", ae.Status, ae.Code, ae.Message, status)
	}
	return ae
}

func (w *world) reading(t *testing.T, dev *party, seq uint64, typ string, value any, at time.Time) envelope.Envelope {
	t.Helper()
	p, err := client.NewReading(dev.id, seq, typ, "bpm", value, at)
	if err != nil {
		t.Fatal(err)
	}
	env, err := client.SignReading(dev.key, p)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// rawPost posts body as-is and returns the status and decoded error code.
func (w *world) rawPost(t *testing.T, path, contentType string, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, w.env.BaseURL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := w.httpc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var eb struct {
		Error struct{ Code string } `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&eb); err != nil {
		t.Fatalf("%s answered %d with a body that is not JSON: %v", path, resp.StatusCode, err)
	}
	return resp.StatusCode, eb.Error.Code
}

// Run runs the whole scenario against env.
func Run(t *testing.T, env Env) {
	ctx := t.Context()
	admin, err := client.New(env.BaseURL, client.WithAdminToken(env.AdminToken))
	if err != nil {
		t.Fatal(err)
	}
	p := env.Prefix
	w := &world{env: env, admin: admin, httpc: &http.Client{Timeout: 60 * time.Second},
		operator: newParty(t, env, p+"op-1"), patient: newParty(t, env, p+"pat-1"), other: newParty(t, env, p+"pat-2"),
		res: newParty(t, env, p+"res-1"), reg: newParty(t, env, p+"reg-1"),
		dev: newParty(t, env, p+"dev-1"), dev2: newParty(t, env, p+"dev-2")}
	now := time.Now().UTC()

	t.Run("admin registers every role", func(t *testing.T) {
		for _, a := range []struct {
			p    *party
			role string
		}{{w.operator, wire.RoleOperator}, {w.patient, wire.RolePatient}, {w.other, wire.RolePatient},
			{w.res, wire.RoleResearcher}, {w.reg, wire.RoleRegulator}} {
			got, err := admin.RegisterActor(ctx, wire.ActorInput{ID: a.p.id, Role: a.role, PublicKey: pubPEM(t, a.p.key)})
			if err != nil {
				t.Fatalf("register %s: %v", a.p.id, err)
			}
			if got.ID != a.p.id || got.Role != a.role || got.Status != "active" || got.RegisteredTx == "" {
				t.Errorf("registered actor = %+v", got)
			}
		}
	})

	t.Run("actor registration refusals", func(t *testing.T) {
		bad, err := client.New(env.BaseURL, client.WithAdminToken("not-the-admin-token-at-all"))
		if err != nil {
			t.Fatal(err)
		}
		k := newParty(t, env, p+"x-1")
		_, err = bad.RegisterActor(ctx, wire.ActorInput{ID: k.id, Role: wire.RolePatient, PublicKey: pubPEM(t, k.key)})
		wantStatus(t, err, http.StatusUnauthorized)
		_, err = admin.RegisterActor(ctx, wire.ActorInput{ID: w.patient.id, Role: wire.RolePatient, PublicKey: pubPEM(t, k.key)})
		wantStatus(t, err, http.StatusConflict)
		_, err = admin.RegisterActor(ctx, wire.ActorInput{ID: k.id, Role: wire.RolePatient, PublicKey: "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"})
		wantStatus(t, err, http.StatusBadRequest)
		_, err = admin.RegisterActor(ctx, wire.ActorInput{ID: k.id, Role: "surgeon", PublicKey: pubPEM(t, k.key)})
		wantStatus(t, err, http.StatusBadRequest)
	})

	t.Run("operator registers devices to a patient", func(t *testing.T) {
		for _, d := range []*party{w.dev, w.dev2} {
			got, err := w.operator.c.RegisterDevice(ctx, client.DeviceRegistration{DeviceID: d.id, PatientID: w.patient.id, DeviceType: "hr-monitor", PublicKey: pubPEM(t, d.key)})
			if err != nil {
				t.Fatalf("register device: %v", err)
			}
			if got.PatientID != w.patient.id || got.OperatorID != w.operator.id || got.Status != "active" {
				t.Errorf("device = %+v", got)
			}
		}
		// A patient cannot register devices.
		d := newParty(t, env, p+"dev-x")
		_, err := w.patient.c.RegisterDevice(ctx, client.DeviceRegistration{DeviceID: d.id, PatientID: w.patient.id, DeviceType: "x", PublicKey: pubPEM(t, d.key)})
		wantStatus(t, err, http.StatusForbidden)
	})

	t.Run("device reading is committed with wait=commit", func(t *testing.T) {
		r, err := w.dev.c.SubmitReading(ctx, w.reading(t, w.dev, 1, "heart_rate", 72, now.Add(-time.Minute)), client.WaitForCommit())
		if err != nil {
			t.Fatal(err)
		}
		if r.Status != wire.StatusRecorded || r.TxID == "" || r.ReadingID != w.dev.id+":1" || r.CID == "" {
			t.Errorf("receipt = %+v, want recorded with txId", r)
		}
		w.recorded = append(w.recorded, r.ReadingID)
	})

	t.Run("queued readings and a batch are acknowledged then committed", func(t *testing.T) {
		for seq := uint64(2); seq <= 4; seq++ {
			r, err := w.dev.c.SubmitReading(ctx, w.reading(t, w.dev, seq, "heart_rate", 70+seq, now.Add(-time.Duration(seq)*time.Second)))
			if err != nil {
				t.Fatal(err)
			}
			if r.Status != wire.StatusQueued {
				t.Errorf("seq %d: status %q, want queued", seq, r.Status)
			}
			w.recorded = append(w.recorded, r.ReadingID)
		}
		envs := []envelope.Envelope{
			w.reading(t, w.dev, 5, "heart_rate", []float64{71, 72, 73}, now.Add(-5*time.Second)),
			w.reading(t, w.dev, 6, "spo2", map[string]any{"value": 97}, now.Add(-6*time.Second)),
			w.reading(t, w.dev2, 1, "heart_rate", 80, now.Add(-time.Second)),
		}
		forged := w.reading(t, w.dev, 7, "heart_rate", 60, now)
		forged.Signature = w.reading(t, w.dev2, 7, "heart_rate", 60, now).Signature
		envs = append(envs, forged)
		b, err := w.dev.c.SubmitReadings(ctx, envs, client.WaitForCommit())
		if err != nil {
			t.Fatal(err)
		}
		if b.Accepted != 3 || b.Rejected != 1 {
			t.Fatalf("batch accepted=%d rejected=%d, want 3 and 1: %+v", b.Accepted, b.Rejected, b.Results)
		}
		for _, r := range b.Results[:3] {
			if r.Status != wire.StatusRecorded {
				t.Errorf("batch item %d: %q, want recorded", r.Index, r.Status)
			}
		}
		if f := b.Results[3]; f.Error == nil || f.Error.Code != "unauthenticated" {
			t.Errorf("forged batch item: %+v, want unauthenticated", f)
		}
		w.recorded = append(w.recorded, b.Results[0].ReadingID, b.Results[1].ReadingID)
	})

	t.Run("forged replayed and refused readings", func(t *testing.T) {
		// Signed by another device's key.
		forged := w.reading(t, w.dev, 50, "heart_rate", 1, now)
		other := w.reading(t, w.dev2, 50, "heart_rate", 1, now)
		forged.Signature = other.Signature
		_, err := w.dev.c.SubmitReading(ctx, forged)
		wantStatus(t, err, http.StatusUnauthorized)
		// A payload altered after signing.
		tampered := w.reading(t, w.dev, 51, "heart_rate", 1, now)
		tampered.Payload = bytes.Replace(tampered.Payload, []byte(`"value":1`), []byte(`"value":2`), 1)
		_, err = w.dev.c.SubmitReading(ctx, tampered)
		wantStatus(t, err, http.StatusUnauthorized)
		// Replaying the identical signed reading is harmless: same reading, no second record.
		signed := w.reading(t, w.dev, 52, "heart_rate", 65, now)
		first, err := w.dev.c.SubmitReading(ctx, signed, client.WaitForCommit())
		if err != nil {
			t.Fatal(err)
		}
		again, err := w.dev.c.SubmitReading(ctx, signed)
		if err != nil {
			t.Fatalf("identical replay: %v", err)
		}
		if again.ReadingID != first.ReadingID || again.Status == wire.StatusQueued && again.CID != "" {
			t.Errorf("replay receipt = %+v, want the existing reading, not a new one", again)
		}
		w.recorded = append(w.recorded, first.ReadingID)
		// The same seq with different content is a conflict.
		_, err = w.dev.c.SubmitReading(ctx, w.reading(t, w.dev, 52, "heart_rate", 99, now))
		wantStatus(t, err, http.StatusConflict)
		// An unknown device.
		ghost := newParty(t, env, p+"ghost")
		_, err = ghost.c.SubmitReading(ctx, w.reading(t, ghost, 1, "heart_rate", 1, now))
		wantStatus(t, err, http.StatusForbidden)
	})

	t.Run("revoked device is refused", func(t *testing.T) {
		if _, err := w.patient.c.RevokeDevice(ctx, w.dev2.id); err == nil {
			t.Fatal("a patient revoked an operator's device")
		}
		d, err := w.operator.c.RevokeDevice(ctx, w.dev2.id)
		if err != nil {
			t.Fatal(err)
		}
		if d.Status != "revoked" {
			t.Errorf("device status %q, want revoked", d.Status)
		}
		_, err = w.dev2.c.SubmitReading(ctx, w.reading(t, w.dev2, 2, "heart_rate", 1, now))
		wantStatus(t, err, http.StatusForbidden)
		_, err = w.operator.c.RevokeDevice(ctx, w.dev2.id)
		wantStatus(t, err, http.StatusConflict)
	})

	t.Run("malformed oversized and unknown requests", func(t *testing.T) {
		cases := []struct {
			name, path, body string
			want             int
		}{
			{"malformed JSON", "/v1/readings", `{"payload":`, http.StatusBadRequest},
			{"envelope without signature", "/v1/readings", `{"payload":"e30="}`, http.StatusBadRequest},
			{"payload that is not a reading", "/v1/readings", `{"payload":"e30=","signature":"AAAA"}`, http.StatusBadRequest},
			{"oversized body", "/v1/readings", `{"payload":"` + strings.Repeat("A", 200<<10) + `","signature":"AAAA"}`, http.StatusRequestEntityTooLarge},
			{"empty batch", "/v1/readings/batch", `{"readings":[]}`, http.StatusBadRequest},
			{"consent that is not an envelope", "/v1/consents", `[1,2,3]`, http.StatusBadRequest},
			{"unknown route", "/v1/nope", `{}`, http.StatusNotFound},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				got, code := w.rawPost(t, c.path, "application/json", []byte(c.body))
				if got != c.want || code == "" {
					t.Errorf("POST %s: %d (code %q), want %d with an error code", c.path, got, code, c.want)
				}
			})
		}
	})

	var consentID string
	t.Run("patient grants consent and the researcher gets verified data", func(t *testing.T) {
		rc, err := w.patient.c.GrantConsent(ctx, client.ConsentGrant{GranteeID: w.res.id, Purpose: "cardio-study",
			DataTypes: []string{"heart_rate"}, NotBefore: now.Add(-24 * time.Hour), NotAfter: now.Add(24 * time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		consentID = rc.ConsentID
		if consentID == "" || rc.TxID == "" {
			t.Fatalf("consent receipt = %+v", rc)
		}
		g, err := w.res.c.RequestAccess(ctx, client.AccessRequest{PatientID: w.patient.id, Purpose: "cardio-study",
			DataTypes: []string{"heart_rate"}, From: now.Add(-time.Hour), To: now.Add(time.Minute)})
		if err != nil {
			t.Fatal(err)
		}
		if g.Decision != wire.DecisionGranted || g.AccessID == "" {
			t.Fatalf("access = %+v", g)
		}
		// Six heart_rate readings of dev-1 and one of dev-2 (revoked later,
		// but its reading was recorded while it was active).
		if len(g.Readings) != 7 {
			t.Errorf("released %d readings, want 7 heart_rate readings", len(g.Readings))
		}
		for _, r := range g.Readings {
			key := &w.dev.key.PublicKey
			if strings.HasPrefix(r.ReadingID, w.dev2.id+":") {
				key = &w.dev2.key.PublicKey
			}
			if _, err := client.VerifyReleasedReading(r, key, nil); err != nil {
				t.Errorf("reading %s does not verify: %v", r.ReadingID, err)
			}
		}
	})

	t.Run("access outside the consent is denied and still logged", func(t *testing.T) {
		cases := []struct {
			name    string
			purpose string
			types   []string
			reason  string
		}{
			{"wrong purpose", "marketing", []string{"heart_rate"}, "purpose_mismatch"},
			{"wrong data type", "cardio-study", []string{"spo2"}, "data_type_not_consented"},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				_, err := w.res.c.RequestAccess(ctx, client.AccessRequest{PatientID: w.patient.id, Purpose: c.purpose,
					DataTypes: c.types, From: now.Add(-time.Hour), To: now})
				ae := wantStatus(t, err, http.StatusForbidden)
				if ae.AccessID == "" {
					t.Errorf("denial has no accessId")
				}
				if !strings.Contains(ae.Message, c.reason) {
					t.Errorf("denial message %q does not name %s", ae.Message, c.reason)
				}
			})
		}
		// No consent at all for another patient.
		_, err := w.res.c.RequestAccess(ctx, client.AccessRequest{PatientID: w.other.id, Purpose: "cardio-study",
			DataTypes: []string{"heart_rate"}, From: now.Add(-time.Hour), To: now})
		wantStatus(t, err, http.StatusForbidden)
	})

	t.Run("consent not yet valid and expired", func(t *testing.T) {
		_, err := w.patient.c.GrantConsent(ctx, client.ConsentGrant{GranteeID: w.res.id, Purpose: "future-study",
			DataTypes: []string{"heart_rate"}, NotBefore: now.Add(time.Hour), NotAfter: now.Add(2 * time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		_, err = w.res.c.RequestAccess(ctx, client.AccessRequest{PatientID: w.patient.id, Purpose: "future-study",
			DataTypes: []string{"heart_rate"}, From: now.Add(time.Hour), To: now.Add(90 * time.Minute)})
		if ae := wantStatus(t, err, http.StatusForbidden); !strings.Contains(ae.Message, "consent_not_yet_valid") {
			t.Errorf("denial %q, want consent_not_yet_valid", ae.Message)
		}
		start := time.Now().UTC().Truncate(time.Second)
		_, err = w.patient.c.GrantConsent(ctx, client.ConsentGrant{GranteeID: w.res.id, Purpose: "short-study",
			DataTypes: []string{"heart_rate"}, NotBefore: start.Add(-time.Hour), NotAfter: start.Add(3 * time.Second)})
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Until(start.Add(4 * time.Second))) // let the consent lapse; nothing below depends on speed
		_, err = w.res.c.RequestAccess(ctx, client.AccessRequest{PatientID: w.patient.id, Purpose: "short-study",
			DataTypes: []string{"heart_rate"}, From: start.Add(-time.Hour), To: start})
		if ae := wantStatus(t, err, http.StatusForbidden); !strings.Contains(ae.Message, "consent_expired") {
			t.Errorf("denial %q, want consent_expired", ae.Message)
		}
	})

	t.Run("who may read what", func(t *testing.T) {
		log, err := w.patient.c.AccessLog(ctx, w.patient.id, client.PageRequest{})
		if err != nil {
			t.Fatal(err)
		}
		granted, denied := 0, 0
		for _, e := range log.Items {
			switch e.Decision {
			case wire.DecisionGranted:
				granted++
			case wire.DecisionDenied:
				denied++
			}
		}
		if granted < 1 || denied < 4 {
			t.Errorf("patient's access log has %d granted and %d denied, want >= 1 and >= 4", granted, denied)
		}
		_, err = w.other.c.AccessLog(ctx, w.patient.id, client.PageRequest{})
		wantStatus(t, err, http.StatusForbidden)
		_, err = w.other.c.Consents(ctx, w.patient.id)
		wantStatus(t, err, http.StatusForbidden)
		_, err = w.res.c.AuditEvents(ctx, client.EventFilter{}, client.PageRequest{})
		wantStatus(t, err, http.StatusForbidden)
		_, err = w.res.c.VerifyReading(ctx, w.recorded[0])
		wantStatus(t, err, http.StatusForbidden)
		cons, err := w.reg.c.Consents(ctx, w.patient.id)
		if err != nil || len(cons) < 3 {
			t.Errorf("regulator reads consents: %d, %v", len(cons), err)
		}
		ev, err := w.reg.c.AuditEvents(ctx, client.EventFilter{PatientID: w.patient.id}, client.PageRequest{})
		if err != nil {
			t.Fatal(err)
		}
		types := map[string]int{}
		for _, e := range ev.Items {
			types[e.Type]++
		}
		for _, want := range []string{"device.registered", "readings.recorded", "consent.granted", "access.granted", "access.denied"} {
			if types[want] == 0 {
				t.Errorf("audit trail of the patient lacks %s (has %v)", want, types)
			}
		}
	})

	t.Run("signed GETs with a bad signature, stale time or replayed nonce are refused", func(t *testing.T) {
		path := "/v1/patients/" + w.patient.id + "/consents"
		get := func(h string) int {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, env.BaseURL+path, nil)
			if err != nil {
				t.Fatal(err)
			}
			if h != "" {
				req.Header.Set("X-Medprov-Signature", h)
			}
			resp, err := w.httpc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}
		h, err := client.SignedGetHeader(w.patient.key, w.patient.id, path, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if got := get(h); got != http.StatusOK {
			t.Fatalf("fresh signed GET: %d", got)
		}
		if got := get(h); got != http.StatusUnauthorized {
			t.Errorf("replayed nonce: %d, want 401", got)
		}
		stale, err := client.SignedGetHeader(w.patient.key, w.patient.id, path, time.Now().Add(-10*time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		if got := get(stale); got != http.StatusUnauthorized {
			t.Errorf("stale issuedAt: %d, want 401", got)
		}
		forged, err := client.SignedGetHeader(w.other.key, w.patient.id, path, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if got := get(forged); got != http.StatusUnauthorized {
			t.Errorf("signed by another key: %d, want 401", got)
		}
		if got := get(""); got != http.StatusUnauthorized {
			t.Errorf("unsigned: %d, want 401", got)
		}
	})

	t.Run("regulator traces provenance and verifies a reading", func(t *testing.T) {
		pv, err := w.reg.c.Provenance(ctx, w.recorded[0])
		if err != nil {
			t.Fatal(err)
		}
		if pv.Reading.ID != w.recorded[0] || pv.Device.ID != w.dev.id || len(pv.Accesses) == 0 {
			t.Errorf("provenance = %+v, want the reading, its device and the access that released it", pv)
		}
		if pv.Tx == nil || pv.Tx.TxID != pv.Reading.TxID || pv.Tx.Block == 0 || !pv.Tx.Valid {
			t.Errorf("provenance tx = %+v, want the valid transaction and block that recorded the reading", pv.Tx)
		}
		v, err := w.reg.c.VerifyReading(ctx, w.recorded[0])
		if err != nil {
			t.Fatal(err)
		}
		if !v.OK || len(v.Checks) < 5 {
			t.Errorf("verification = %+v, want ok with every check", v)
		}
		_, err = w.other.c.Provenance(ctx, w.recorded[0])
		wantStatus(t, err, http.StatusForbidden)
	})

	t.Run("revoked consent stops access and the denial is logged", func(t *testing.T) {
		if _, err := w.other.c.RevokeConsent(ctx, consentID); err == nil {
			t.Fatal("another patient revoked the consent")
		}
		if _, err := w.patient.c.RevokeConsent(ctx, consentID); err != nil {
			t.Fatal(err)
		}
		_, err := w.res.c.RequestAccess(ctx, client.AccessRequest{PatientID: w.patient.id, Purpose: "cardio-study",
			DataTypes: []string{"heart_rate"}, From: now.Add(-time.Hour), To: now})
		ae := wantStatus(t, err, http.StatusForbidden)
		if !strings.Contains(ae.Message, "consent_revoked") {
			t.Errorf("denial %q, want consent_revoked", ae.Message)
		}
		log, err := w.patient.c.AccessLog(ctx, w.patient.id, client.PageRequest{PageSize: 1000})
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, e := range log.Items {
			found = found || e.ID == ae.AccessID
		}
		if !found {
			t.Errorf("denied access %s is not in the patient's access log", ae.AccessID)
		}
	})

	if env.Restart == nil {
		return
	}
	t.Run("a restart keeps everything", func(t *testing.T) {
		// Acknowledge readings, then restart before they are necessarily committed.
		var last string
		for seq := uint64(100); seq < 110; seq++ {
			r, err := w.dev.c.SubmitReading(ctx, w.reading(t, w.dev, seq, "heart_rate", seq, now))
			if err != nil {
				t.Fatal(err)
			}
			last = r.ReadingID
		}
		env.Restart(t)
		pv, err := waitProvenance(ctx, w.reg.c, last)
		if err != nil {
			t.Fatalf("reading acknowledged before the restart: %v", err)
		}
		if pv.Reading.ID != last {
			t.Errorf("provenance of %s = %+v", last, pv.Reading)
		}
		cons, err := w.patient.c.Consents(ctx, w.patient.id)
		if err != nil || len(cons) < 3 {
			t.Errorf("consents after restart: %d, %v", len(cons), err)
		}
		v, err := w.reg.c.VerifyReading(ctx, w.recorded[0])
		if err != nil || !v.OK {
			t.Errorf("verify after restart: %+v, %v", v, err)
		}
		r, err := w.dev.c.SubmitReading(ctx, w.reading(t, w.dev, 200, "heart_rate", 1, now), client.WaitForCommit())
		if err != nil || r.Status != wire.StatusRecorded {
			t.Errorf("new reading after restart: %+v, %v", r, err)
		}
	})
}

// waitProvenance polls until the reading is on the ledger (the batcher
// commits replayed readings shortly after start) or 30s pass.
func waitProvenance(ctx context.Context, c *client.Client, id string) (*wire.ProvenanceReport, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		pv, err := c.Provenance(ctx, id)
		if err == nil {
			return pv, nil
		}
		if !errors.Is(err, client.ErrNotFound) {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%s never reached the ledger: %w", id, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
