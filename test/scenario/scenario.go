// Package scenario is medprov's end-to-end scenario suite: every role doing
// its whole job over the gateway's HTTP API, and every refusal the API
// promises. It is backend-agnostic; test/e2e runs it against the gateway
// binary on the embedded default and on Fabric + kubo.
package scenario

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/medprov/medprov/client"
	"github.com/medprov/medprov/envelope"
	"github.com/medprov/medprov/internal/apispec"
	"github.com/medprov/medprov/internal/testkit"
	"github.com/medprov/medprov/wire"
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

// newHTTPClient builds the HTTP client of every request the suite makes:
// the API clients of every party (newClient) and the raw requests
// (world.httpc). Every exchange is validated against the gateway's OpenAPI document: a
// request or response the spec does not describe fails t. Requests the
// suite makes malformed on purpose pass only when the gateway refuses them
// with an error status the spec declares for the route.
func newHTTPClient(t testing.TB) *http.Client {
	return &http.Client{Timeout: 60 * time.Second, Transport: apispec.NewTransport(t, nil, apispec.AllowRefused())}
}

// newClient returns an API client of env's gateway that sends through
// newHTTPClient.
func newClient(t *testing.T, env Env, opts ...client.Option) *client.Client {
	t.Helper()
	c, err := client.New(env.BaseURL, append([]client.Option{client.WithHTTPClient(newHTTPClient(t))}, opts...)...)
	require.NoError(t, err)
	return c
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
	k := testkit.MustKey(t)
	return &party{id: id, key: k, c: newClient(t, env, client.WithActor(id, k))}
}

// wantStatus requires err to be an *client.APIError with status, and
// returns it.
func wantStatus(t *testing.T, err error, status int) *client.APIError {
	t.Helper()
	var ae *client.APIError
	require.ErrorAs(t, err, &ae, "want HTTP %d", status)
	require.Equal(t, status, ae.Status, "HTTP status (%s: %s)", ae.Code, ae.Message)
	return ae
}

func (w *world) reading(t *testing.T, dev *party, seq uint64, typ string, value any, at time.Time) envelope.Envelope {
	t.Helper()
	p, err := client.NewReading(dev.id, seq, typ, "bpm", value, at)
	require.NoError(t, err)
	env, err := client.SignReading(dev.key, p)
	require.NoError(t, err)
	return env
}

// rawPost posts body as-is and returns the status and decoded error code.
func (w *world) rawPost(t *testing.T, path, contentType string, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, w.env.BaseURL+path, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", contentType)
	resp, err := w.httpc.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var eb struct {
		Error struct{ Code string } `json:"error"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&eb), "%s answered %d with a body that is not JSON", path, resp.StatusCode)
	return resp.StatusCode, eb.Error.Code
}

// Run runs the whole scenario against env.
func Run(t *testing.T, env Env) {
	ctx := t.Context()
	admin := newClient(t, env, client.WithAdminToken(env.AdminToken))
	p := env.Prefix
	w := &world{env: env, admin: admin, httpc: newHTTPClient(t),
		operator: newParty(t, env, p+"op-1"), patient: newParty(t, env, p+"pat-1"), other: newParty(t, env, p+"pat-2"),
		res: newParty(t, env, p+"res-1"), reg: newParty(t, env, p+"reg-1"),
		dev: newParty(t, env, p+"dev-1"), dev2: newParty(t, env, p+"dev-2")}
	now := time.Now().UTC()

	t.Run("admin registers every role", func(t *testing.T) {
		tests := []struct {
			name string
			p    *party
			role string
		}{
			{"an operator is registered", w.operator, wire.RoleOperator},
			{"a patient is registered", w.patient, wire.RolePatient},
			{"a second patient is registered", w.other, wire.RolePatient},
			{"a researcher is registered", w.res, wire.RoleResearcher},
			{"a regulator is registered", w.reg, wire.RoleRegulator},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got, err := admin.RegisterActor(ctx, wire.ActorInput{ID: tt.p.id, Role: tt.role, PublicKey: testkit.PublicPEM(t, tt.p.key)})
				require.NoError(t, err, "register %s", tt.p.id)
				assert.Equal(t, tt.p.id, got.ID)
				assert.Equal(t, tt.role, got.Role)
				assert.Equal(t, wire.StatusActive, got.Status)
				assert.NotEmpty(t, got.RegisteredTx)
			})
		}
	})

	t.Run("actor registration refusals", func(t *testing.T) {
		bad := newClient(t, env, client.WithAdminToken("not-the-admin-token-at-all"))
		k := newParty(t, env, p+"x-1")
		tests := []struct {
			name  string
			admin *client.Client
			in    wire.ActorInput
			want  error
		}{
			{"a wrong admin token is unauthenticated", bad,
				wire.ActorInput{ID: k.id, Role: wire.RolePatient, PublicKey: testkit.PublicPEM(t, k.key)}, client.ErrUnauthenticated},
			{"an actor ID already taken is a conflict", admin,
				wire.ActorInput{ID: w.patient.id, Role: wire.RolePatient, PublicKey: testkit.PublicPEM(t, k.key)}, client.ErrConflict},
			{"a public key that does not parse is invalid", admin,
				wire.ActorInput{ID: k.id, Role: wire.RolePatient, PublicKey: "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"}, client.ErrInvalid},
			{"an unknown role is invalid", admin,
				wire.ActorInput{ID: k.id, Role: "surgeon", PublicKey: testkit.PublicPEM(t, k.key)}, client.ErrInvalid},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				_, err := tt.admin.RegisterActor(ctx, tt.in)
				require.ErrorIs(t, err, tt.want)
			})
		}
	})

	t.Run("operator registers devices to a patient", func(t *testing.T) {
		for _, d := range []*party{w.dev, w.dev2} {
			got, err := w.operator.c.RegisterDevice(ctx, client.DeviceRegistration{DeviceID: d.id, PatientID: w.patient.id, DeviceType: "hr-monitor", PublicKey: testkit.PublicPEM(t, d.key)})
			require.NoError(t, err, "register device %s", d.id)
			assert.Equal(t, w.patient.id, got.PatientID)
			assert.Equal(t, w.operator.id, got.OperatorID)
			assert.Equal(t, wire.StatusActive, got.Status)
		}
		t.Run("a patient cannot register devices", func(t *testing.T) {
			d := newParty(t, env, p+"dev-x")
			_, err := w.patient.c.RegisterDevice(ctx, client.DeviceRegistration{DeviceID: d.id, PatientID: w.patient.id, DeviceType: "x", PublicKey: testkit.PublicPEM(t, d.key)})
			require.ErrorIs(t, err, client.ErrForbidden)
		})
	})

	t.Run("device reading is committed with wait=commit", func(t *testing.T) {
		r, err := w.dev.c.SubmitReading(ctx, w.reading(t, w.dev, 1, "heart_rate", 72, now.Add(-time.Minute)), client.WaitForCommit())
		require.NoError(t, err)
		assert.Equal(t, wire.StatusRecorded, r.Status)
		assert.NotEmpty(t, r.TxID)
		assert.Equal(t, w.dev.id+":1", r.ReadingID)
		assert.NotEmpty(t, r.CID)
		w.recorded = append(w.recorded, r.ReadingID)
	})

	t.Run("queued readings and a batch are acknowledged then committed", func(t *testing.T) {
		for seq := uint64(2); seq <= 4; seq++ {
			r, err := w.dev.c.SubmitReading(ctx, w.reading(t, w.dev, seq, "heart_rate", 70+seq, now.Add(-time.Duration(seq)*time.Second)))
			require.NoError(t, err)
			assert.Equal(t, wire.StatusQueued, r.Status, "seq %d", seq)
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
		require.NoError(t, err)
		require.Equal(t, 3, b.Accepted, "accepted: %+v", b.Results)
		require.Equal(t, 1, b.Rejected, "rejected: %+v", b.Results)
		require.Len(t, b.Results, len(envs))
		for i, r := range b.Results[:3] {
			assert.Equal(t, wire.StatusRecorded, r.Status, "batch item %d", i)
		}
		if f := b.Results[3]; assert.NotNil(t, f.Error, "forged batch item %+v is not refused", f) {
			assert.Equal(t, wire.CodeUnauthenticated, f.Error.Code, "forged batch item")
		}
		w.recorded = append(w.recorded, b.Results[0].ReadingID, b.Results[1].ReadingID)
	})

	t.Run("forged replayed and refused readings", func(t *testing.T) {
		t.Run("replaying the identical signed reading returns the same reading", func(t *testing.T) {
			signed := w.reading(t, w.dev, 52, "heart_rate", 65, now)
			first, err := w.dev.c.SubmitReading(ctx, signed, client.WaitForCommit())
			require.NoError(t, err)
			again, err := w.dev.c.SubmitReading(ctx, signed)
			require.NoError(t, err, "identical replay")
			assert.Equal(t, first.ReadingID, again.ReadingID, "replay receipt %+v: want the existing reading", again)
			assert.False(t, again.Status == wire.StatusQueued && again.CID != "", "replay receipt %+v: want no second record", again)
			w.recorded = append(w.recorded, first.ReadingID)
		})

		forged := w.reading(t, w.dev, 50, "heart_rate", 1, now)
		forged.Signature = w.reading(t, w.dev2, 50, "heart_rate", 1, now).Signature
		tampered := w.reading(t, w.dev, 51, "heart_rate", 1, now)
		tampered.Payload = bytes.Replace(tampered.Payload, []byte(`"value":1`), []byte(`"value":2`), 1)
		ghost := newParty(t, env, p+"ghost")
		tests := []struct {
			name string
			from *party
			env  envelope.Envelope
			want error
		}{
			{"a reading signed by another device's key is unauthenticated", w.dev, forged, client.ErrUnauthenticated},
			{"a payload altered after signing is unauthenticated", w.dev, tampered, client.ErrUnauthenticated},
			{"the same seq with different content is a conflict", w.dev, w.reading(t, w.dev, 52, "heart_rate", 99, now), client.ErrConflict},
			{"a reading from an unknown device is forbidden", ghost, w.reading(t, ghost, 1, "heart_rate", 1, now), client.ErrForbidden},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				_, err := tt.from.c.SubmitReading(ctx, tt.env)
				require.ErrorIs(t, err, tt.want)
			})
		}
	})

	t.Run("revoked device is refused", func(t *testing.T) {
		_, err := w.patient.c.RevokeDevice(ctx, w.dev2.id)
		require.Error(t, err, "a patient revoked an operator's device")
		d, err := w.operator.c.RevokeDevice(ctx, w.dev2.id)
		require.NoError(t, err)
		assert.Equal(t, wire.StatusRevoked, d.Status)
		_, err = w.dev2.c.SubmitReading(ctx, w.reading(t, w.dev2, 2, "heart_rate", 1, now))
		assert.ErrorIs(t, err, client.ErrForbidden, "a reading of the revoked device")
		_, err = w.operator.c.RevokeDevice(ctx, w.dev2.id)
		assert.ErrorIs(t, err, client.ErrConflict, "revoking the device again")
	})

	t.Run("malformed oversized and unknown requests", func(t *testing.T) {
		tests := []struct {
			name, path, body string
			want             int
		}{
			{"malformed JSON is a bad request", "/v1/readings", `{"payload":`, http.StatusBadRequest},
			{"an envelope without signature is a bad request", "/v1/readings", `{"payload":"e30="}`, http.StatusBadRequest},
			{"a payload that is not a reading is a bad request", "/v1/readings", `{"payload":"e30=","signature":"AAAA"}`, http.StatusBadRequest},
			{"an oversized body is too large", "/v1/readings", `{"payload":"` + strings.Repeat("A", 200<<10) + `","signature":"AAAA"}`, http.StatusRequestEntityTooLarge},
			{"an empty batch is a bad request", "/v1/readings/batch", `{"readings":[]}`, http.StatusBadRequest},
			{"a consent that is not an envelope is a bad request", "/v1/consents", `[1,2,3]`, http.StatusBadRequest},
			{"an unknown route is not found", "/v1/nope", `{}`, http.StatusNotFound},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got, code := w.rawPost(t, tt.path, "application/json", []byte(tt.body))
				assert.Equal(t, tt.want, got, "POST %s", tt.path)
				assert.NotEmpty(t, code, "POST %s: the error body has no code", tt.path)
			})
		}
	})

	var consentID string
	t.Run("patient grants consent and the researcher gets verified data", func(t *testing.T) {
		rc, err := w.patient.c.GrantConsent(ctx, client.ConsentGrant{GranteeID: w.res.id, Purpose: "cardio-study",
			DataTypes: []string{"heart_rate"}, NotBefore: now.Add(-24 * time.Hour), NotAfter: now.Add(24 * time.Hour)})
		require.NoError(t, err)
		consentID = rc.ConsentID
		require.NotEmpty(t, rc.ConsentID, "consent receipt %+v", rc)
		require.NotEmpty(t, rc.TxID, "consent receipt %+v", rc)
		g, err := w.res.c.RequestAccess(ctx, client.AccessRequest{PatientID: w.patient.id, Purpose: "cardio-study",
			DataTypes: []string{"heart_rate"}, From: now.Add(-time.Hour), To: now.Add(time.Minute)})
		require.NoError(t, err)
		require.Equal(t, wire.DecisionGranted, g.Decision, "access %+v", g)
		require.NotEmpty(t, g.AccessID, "access %+v", g)
		// Six heart_rate readings of dev-1 and one of dev-2 (revoked later,
		// but its reading was recorded while it was active).
		assert.Len(t, g.Readings, 7, "released heart_rate readings")
		for _, r := range g.Readings {
			key := &w.dev.key.PublicKey
			if strings.HasPrefix(r.ReadingID, w.dev2.id+":") {
				key = &w.dev2.key.PublicKey
			}
			_, err := client.VerifyReleasedReading(r, key, nil)
			assert.NoError(t, err, "reading %s does not verify", r.ReadingID)
		}
	})

	t.Run("access outside the consent is denied and still logged", func(t *testing.T) {
		tests := []struct {
			name    string
			purpose string
			types   []string
			reason  string
		}{
			{"a purpose the consent does not name is denied", "marketing", []string{"heart_rate"}, "purpose_mismatch"},
			{"a data type the consent does not name is denied", "cardio-study", []string{"spo2"}, "data_type_not_consented"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				_, err := w.res.c.RequestAccess(ctx, client.AccessRequest{PatientID: w.patient.id, Purpose: tt.purpose,
					DataTypes: tt.types, From: now.Add(-time.Hour), To: now})
				ae := wantStatus(t, err, http.StatusForbidden)
				assert.NotEmpty(t, ae.AccessID, "the denial has no accessId")
				assert.Contains(t, ae.Message, tt.reason, "the denial names its reason")
			})
		}
		t.Run("a patient who consented to nothing is denied", func(t *testing.T) {
			_, err := w.res.c.RequestAccess(ctx, client.AccessRequest{PatientID: w.other.id, Purpose: "cardio-study",
				DataTypes: []string{"heart_rate"}, From: now.Add(-time.Hour), To: now})
			require.ErrorIs(t, err, client.ErrForbidden)
		})
	})

	t.Run("consent not yet valid and expired", func(t *testing.T) {
		t.Run("a consent not yet valid is denied", func(t *testing.T) {
			_, err := w.patient.c.GrantConsent(ctx, client.ConsentGrant{GranteeID: w.res.id, Purpose: "future-study",
				DataTypes: []string{"heart_rate"}, NotBefore: now.Add(time.Hour), NotAfter: now.Add(2 * time.Hour)})
			require.NoError(t, err)
			_, err = w.res.c.RequestAccess(ctx, client.AccessRequest{PatientID: w.patient.id, Purpose: "future-study",
				DataTypes: []string{"heart_rate"}, From: now.Add(time.Hour), To: now.Add(90 * time.Minute)})
			ae := wantStatus(t, err, http.StatusForbidden)
			assert.Contains(t, ae.Message, "consent_not_yet_valid")
		})
		t.Run("an expired consent is denied", func(t *testing.T) {
			start := time.Now().UTC().Truncate(time.Second)
			_, err := w.patient.c.GrantConsent(ctx, client.ConsentGrant{GranteeID: w.res.id, Purpose: "short-study",
				DataTypes: []string{"heart_rate"}, NotBefore: start.Add(-time.Hour), NotAfter: start.Add(3 * time.Second)})
			require.NoError(t, err)
			time.Sleep(time.Until(start.Add(4 * time.Second))) // let the consent lapse; nothing below depends on speed
			_, err = w.res.c.RequestAccess(ctx, client.AccessRequest{PatientID: w.patient.id, Purpose: "short-study",
				DataTypes: []string{"heart_rate"}, From: start.Add(-time.Hour), To: start})
			ae := wantStatus(t, err, http.StatusForbidden)
			assert.Contains(t, ae.Message, "consent_expired")
		})
	})

	t.Run("who may read what", func(t *testing.T) {
		log, err := w.patient.c.AccessLog(ctx, w.patient.id, client.PageRequest{})
		require.NoError(t, err)
		granted, denied := 0, 0
		for _, e := range log.Items {
			switch e.Decision {
			case wire.DecisionGranted:
				granted++
			case wire.DecisionDenied:
				denied++
			}
		}
		assert.GreaterOrEqual(t, granted, 1, "granted accesses in the patient's access log")
		assert.GreaterOrEqual(t, denied, 4, "denied accesses in the patient's access log")

		refusals := []struct {
			name string
			call func() error
		}{
			{"another patient cannot read the patient's access log", func() error {
				_, err := w.other.c.AccessLog(ctx, w.patient.id, client.PageRequest{})
				return err
			}},
			{"another patient cannot read the patient's consents", func() error {
				_, err := w.other.c.Consents(ctx, w.patient.id)
				return err
			}},
			{"a researcher cannot read the audit trail", func() error {
				_, err := w.res.c.AuditEvents(ctx, client.EventFilter{}, client.PageRequest{})
				return err
			}},
			{"a researcher cannot verify a reading", func() error {
				_, err := w.res.c.VerifyReading(ctx, w.recorded[0])
				return err
			}},
		}
		for _, tt := range refusals {
			t.Run(tt.name, func(t *testing.T) {
				require.ErrorIs(t, tt.call(), client.ErrForbidden)
			})
		}

		cons, err := w.reg.c.Consents(ctx, w.patient.id)
		assert.NoError(t, err, "the regulator reads consents")
		assert.GreaterOrEqual(t, len(cons), 3, "consents the regulator reads")
		ev, err := w.reg.c.AuditEvents(ctx, client.EventFilter{PatientID: w.patient.id}, client.PageRequest{})
		require.NoError(t, err)
		types := map[string]int{}
		for _, e := range ev.Items {
			types[e.Type]++
		}
		for _, want := range []string{wire.AuditDeviceRegistered, wire.AuditReadingsRecorded, wire.AuditConsentGranted, wire.AuditAccessGranted, wire.AuditAccessDenied} {
			assert.Contains(t, types, want, "the audit trail of the patient")
		}
	})

	t.Run("signed GETs with a bad signature, stale time or replayed nonce are refused", func(t *testing.T) {
		path := "/v1/patients/" + w.patient.id + "/consents"
		get := func(t *testing.T, h string) int {
			t.Helper()
			req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, env.BaseURL+path, nil)
			require.NoError(t, err)
			if h != "" {
				req.Header.Set(wire.SignatureHeader, h)
			}
			resp, err := w.httpc.Do(req)
			require.NoError(t, err)
			resp.Body.Close()
			return resp.StatusCode
		}
		fresh, err := client.SignedGetHeader(w.patient.key, w.patient.id, path, time.Now())
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, get(t, fresh), "fresh signed GET")
		stale, err := client.SignedGetHeader(w.patient.key, w.patient.id, path, time.Now().Add(-10*time.Minute))
		require.NoError(t, err)
		forged, err := client.SignedGetHeader(w.other.key, w.patient.id, path, time.Now())
		require.NoError(t, err)
		tests := []struct {
			name   string
			header string
		}{
			{"a replayed nonce is unauthenticated", fresh},
			{"a stale issuedAt is unauthenticated", stale},
			{"a signature by another key is unauthenticated", forged},
			{"an unsigned GET is unauthenticated", ""},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				assert.Equal(t, http.StatusUnauthorized, get(t, tt.header))
			})
		}
	})

	t.Run("regulator traces provenance and verifies a reading", func(t *testing.T) {
		pv, err := w.reg.c.Provenance(ctx, w.recorded[0])
		require.NoError(t, err)
		assert.Equal(t, w.recorded[0], pv.Reading.ID, "provenance names the reading")
		assert.Equal(t, w.dev.id, pv.Device.ID, "provenance names the reading's device")
		assert.NotEmpty(t, pv.Accesses, "provenance lists the access that released the reading")
		if assert.NotNil(t, pv.Tx, "provenance has the transaction that recorded the reading") {
			assert.Equal(t, pv.Reading.TxID, pv.Tx.TxID, "provenance tx")
			assert.NotZero(t, pv.Tx.Block, "provenance tx block")
			assert.True(t, pv.Tx.Valid, "provenance tx is valid")
		}
		v, err := w.reg.c.VerifyReading(ctx, w.recorded[0])
		require.NoError(t, err)
		assert.True(t, v.OK, "verification %+v", v)
		assert.GreaterOrEqual(t, len(v.Checks), 5, "verification %+v has every check", v)
		_, err = w.other.c.Provenance(ctx, w.recorded[0])
		assert.ErrorIs(t, err, client.ErrNotFound, "another patient traces the reading: not yours answers as not found")
	})

	t.Run("revoked consent stops access and the denial is logged", func(t *testing.T) {
		_, err := w.other.c.RevokeConsent(ctx, consentID)
		require.Error(t, err, "another patient revoked the consent")
		_, err = w.patient.c.RevokeConsent(ctx, consentID)
		require.NoError(t, err)
		_, err = w.res.c.RequestAccess(ctx, client.AccessRequest{PatientID: w.patient.id, Purpose: "cardio-study",
			DataTypes: []string{"heart_rate"}, From: now.Add(-time.Hour), To: now})
		ae := wantStatus(t, err, http.StatusForbidden)
		assert.Contains(t, ae.Message, "consent_revoked")
		log, err := w.patient.c.AccessLog(ctx, w.patient.id, client.PageRequest{PageSize: 1000})
		require.NoError(t, err)
		var logged []string
		for _, e := range log.Items {
			logged = append(logged, e.ID)
		}
		assert.Contains(t, logged, ae.AccessID, "the patient's access log has the denied access")
	})

	t.Run("a patient reads its own readings through the ledger", func(t *testing.T) {
		// No consent covers the patient itself, and the researcher's was
		// revoked above: the patient needs none.
		g, err := w.patient.c.RequestAccess(ctx, client.AccessRequest{PatientID: w.patient.id, Purpose: "self-review",
			DataTypes: []string{"heart_rate", "spo2"}, From: now.Add(-time.Hour), To: now.Add(time.Minute)})
		require.NoError(t, err, "the patient's request for its own readings")
		require.Equal(t, wire.DecisionGranted, g.Decision, "access %+v", g)
		assert.Empty(t, g.ConsentID, "a patient's own readings need no consent")
		var released []string
		for _, r := range g.Readings {
			released = append(released, r.ReadingID)
			key := &w.dev.key.PublicKey
			if strings.HasPrefix(r.ReadingID, w.dev2.id+":") {
				key = &w.dev2.key.PublicKey
			}
			_, err := client.VerifyReleasedReading(r, key, nil)
			assert.NoError(t, err, "reading %s does not verify", r.ReadingID)
		}
		// Every reading of dev-1 (heart_rate and spo2) and dev-2's one.
		assert.Subset(t, released, w.recorded, "the patient's readings of dev-1 are released")
		assert.Len(t, released, len(w.recorded)+1, "released readings: dev-1's and dev-2's")

		log, err := w.patient.c.AccessLog(ctx, w.patient.id, client.PageRequest{PageSize: 1000})
		require.NoError(t, err)
		i := slices.IndexFunc(log.Items, func(e wire.AccessEvent) bool { return e.ID == g.AccessID })
		if assert.GreaterOrEqual(t, i, 0, "the patient's access log has its own access") {
			assert.True(t, log.Items[i].SelfAccess(), "the logged access %+v is the patient's own", log.Items[i])
		}
		_, err = w.other.c.RequestAccess(ctx, client.AccessRequest{PatientID: w.patient.id, Purpose: "self-review",
			DataTypes: []string{"heart_rate"}, From: now.Add(-time.Hour), To: now})
		require.ErrorIs(t, err, client.ErrForbidden, "another patient asking for the patient's readings")
		_, denied := client.IsDenied(err)
		assert.False(t, denied, "the refusal is not a decision on the ledger")
	})

	t.Run("the operator lists its devices and reads a device's statistics", func(t *testing.T) {
		var ids []string
		for bookmark, pages := "", 0; pages == 0 || bookmark != ""; pages++ {
			require.Less(t, pages, 100, "the operator's device list did not end")
			page, err := w.operator.c.Devices(ctx, client.DeviceFilter{}, client.PageRequest{PageSize: 1000, Bookmark: bookmark})
			require.NoError(t, err)
			for _, d := range page.Items {
				assert.Equal(t, w.operator.id, d.OperatorID, "device %s in the operator's list", d.ID)
				ids = append(ids, d.ID)
			}
			bookmark = page.Bookmark
		}
		assert.Subset(t, ids, []string{w.dev.id, w.dev2.id}, "the operator's devices")

		d, err := w.operator.c.Device(ctx, w.dev.id)
		require.NoError(t, err)
		assert.Equal(t, w.patient.id, d.Device.PatientID, "the device's patient")
		assert.Equal(t, len(w.recorded), d.Stats.Readings, "readings recorded for %s", w.dev.id)
		assert.False(t, d.Stats.ReadingsCapped, "readings capped")
		if assert.NotNil(t, d.Stats.LastReading, "the device's last reading") {
			assert.Equal(t, w.dev.id+":52", d.Stats.LastReading.ReadingID, "the reading with the highest seq")
			assert.NotEmpty(t, d.Stats.LastReading.TxID, "the transaction that recorded it")
		}
		_, err = w.other.c.Device(ctx, w.dev.id)
		assert.ErrorIs(t, err, client.ErrNotFound, "another patient reads the device: not yours answers as not found")
	})

	t.Run("a regulator lists the actors", func(t *testing.T) {
		roles := map[string]string{}
		for bookmark, pages := "", 0; pages == 0 || bookmark != ""; pages++ {
			require.Less(t, pages, 100, "the actor list did not end")
			page, err := w.reg.c.Actors(ctx, wire.RolePatient, client.PageRequest{PageSize: 1000, Bookmark: bookmark})
			require.NoError(t, err)
			for _, a := range page.Items {
				roles[a.ID] = a.Role
			}
			bookmark = page.Bookmark
		}
		for _, p := range []*party{w.patient, w.other} {
			assert.Equal(t, wire.RolePatient, roles[p.id], "patient %s in the regulator's list", p.id)
		}
		assert.NotContains(t, roles, w.res.id, "a researcher in the list of patients")
	})

	t.Run("who may not read the registries", func(t *testing.T) {
		_, err := w.res.c.Devices(ctx, client.DeviceFilter{}, client.PageRequest{})
		assert.ErrorIs(t, err, client.ErrForbidden, "a researcher lists devices")
		_, err = w.operator.c.Devices(ctx, client.DeviceFilter{OperatorID: p + "op-other"}, client.PageRequest{})
		assert.ErrorIs(t, err, client.ErrForbidden, "an operator lists another operator's devices")
		_, err = w.patient.c.Actors(ctx, "", client.PageRequest{})
		assert.ErrorIs(t, err, client.ErrForbidden, "a patient lists actors")
	})

	t.Run("identity lifecycle: rotate, erase and revoke", func(t *testing.T) {
		pat, res, dev := newParty(t, env, p+"pat-lc"), newParty(t, env, p+"res-lc"), newParty(t, env, p+"dev-lc")
		for _, a := range []struct {
			p    *party
			role string
		}{{pat, wire.RolePatient}, {res, wire.RoleResearcher}} {
			_, err := admin.RegisterActor(ctx, wire.ActorInput{ID: a.p.id, Role: a.role, PublicKey: testkit.PublicPEM(t, a.p.key)})
			require.NoError(t, err, "register %s", a.p.id)
		}
		_, err := w.operator.c.RegisterDevice(ctx, client.DeviceRegistration{DeviceID: dev.id, PatientID: pat.id, DeviceType: "hr-monitor", PublicKey: testkit.PublicPEM(t, dev.key)})
		require.NoError(t, err)
		rec, err := dev.c.SubmitReading(ctx, w.reading(t, dev, 1, "heart_rate", 64, now.Add(-time.Minute)), client.WaitForCommit())
		require.NoError(t, err)
		_, err = pat.c.GrantConsent(ctx, client.ConsentGrant{GranteeID: res.id, Purpose: "lc-study", DataTypes: []string{"heart_rate"},
			NotBefore: now.Add(-24 * time.Hour), NotAfter: now.Add(24 * time.Hour)})
		require.NoError(t, err)
		request := client.AccessRequest{PatientID: pat.id, Purpose: "lc-study", DataTypes: []string{"heart_rate"}, From: now.Add(-time.Hour), To: now.Add(time.Minute)}

		t.Run("a rotated key replaces the old one", func(t *testing.T) {
			next := testkit.MustKey(t)
			r, err := pat.c.RotateKey(ctx, testkit.PublicPEM(t, next))
			require.NoError(t, err)
			assert.Equal(t, testkit.PublicPEM(t, next), r.Actor.PublicKey, "the ledger holds the new key")
			assert.Equal(t, r.TxID, r.Actor.RotatedTx, "rotatedTx")
			_, err = pat.c.Consents(ctx, pat.id)
			assert.ErrorIs(t, err, client.ErrUnauthenticated, "a signed GET with the old key")
			_, err = w.other.c.RotateKey(ctx, testkit.PublicPEM(t, next))
			assert.ErrorIs(t, err, client.ErrConflict, "another actor taking the key")
			pat.key, pat.c = next, newClient(t, env, client.WithActor(pat.id, next))
			_, err = pat.c.Consents(ctx, pat.id)
			assert.NoError(t, err, "a signed GET with the new key")
		})

		t.Run("an erasure shreds the data and keeps the evidence", func(t *testing.T) {
			g, err := res.c.RequestAccess(ctx, request)
			require.NoError(t, err)
			require.Len(t, g.Readings, 1, "released before the erasure")
			before, err := w.reg.c.Provenance(ctx, rec.ReadingID)
			require.NoError(t, err)

			er, err := pat.c.ErasePatient(ctx, "gdpr-request")
			require.NoError(t, err)
			assert.True(t, er.KeysShredded, "keys shredded")
			assert.Equal(t, er.TxID, er.Erasure.ErasedTx)

			_, err = res.c.RequestAccess(ctx, request)
			ae := wantStatus(t, err, http.StatusForbidden)
			assert.Contains(t, ae.Message, wire.ReasonPatientErased, "the denial names its reason")
			assert.NotEmpty(t, ae.AccessID, "the denial is on the ledger")
			after, err := w.reg.c.Provenance(ctx, rec.ReadingID)
			require.NoError(t, err)
			assert.Equal(t, before.Reading, after.Reading, "the reading record and its hashes stay")
			v, err := w.reg.c.VerifyReading(ctx, rec.ReadingID)
			require.NoError(t, err)
			assert.False(t, v.OK, "an erased reading does not fully verify")
			for _, c := range v.Checks {
				if c.Name == "plaintext_hash" {
					assert.Contains(t, c.Detail, "erased", "verification says the plaintext is erased")
				}
			}
			_, err = dev.c.SubmitReading(ctx, w.reading(t, dev, 2, "heart_rate", 65, now))
			assert.ErrorIs(t, err, client.ErrForbidden, "a reading of the erased patient's device")
			_, err = pat.c.ErasePatient(ctx, "gdpr-request")
			assert.ErrorIs(t, err, client.ErrConflict, "erasing twice")
		})

		t.Run("a revoked actor's key is refused", func(t *testing.T) {
			r, err := w.reg.c.RevokeActor(ctx, res.id, "left-study")
			require.NoError(t, err)
			assert.Equal(t, wire.StatusRevoked, r.Actor.Status)
			assert.Equal(t, w.reg.id, r.Actor.RevokedBy)
			_, err = res.c.RequestAccess(ctx, client.AccessRequest{PatientID: w.patient.id, Purpose: "cardio-study",
				DataTypes: []string{"heart_rate"}, From: now.Add(-time.Hour), To: now})
			assert.ErrorIs(t, err, client.ErrForbidden, "a signed action of the revoked actor")
			_, err = w.reg.c.RevokeActor(ctx, res.id, "left-study")
			assert.ErrorIs(t, err, client.ErrConflict, "revoking twice")
			_, err = w.other.c.RevokeActor(ctx, w.operator.id, "spite")
			assert.ErrorIs(t, err, client.ErrForbidden, "a patient revoking someone else")

			x := newParty(t, env, p+"x-lc")
			_, err = admin.RegisterActor(ctx, wire.ActorInput{ID: x.id, Role: wire.RolePatient, PublicKey: testkit.PublicPEM(t, x.key)})
			require.NoError(t, err)
			_, err = x.c.Consents(ctx, x.id)
			require.NoError(t, err, "a signed GET before the revocation")
			r, err = admin.RevokeOrgActor(ctx, x.id, "offboarded")
			require.NoError(t, err)
			assert.True(t, strings.HasPrefix(r.Actor.RevokedBy, "org:"), "revokedBy %q names the org", r.Actor.RevokedBy)
			_, err = x.c.Consents(ctx, x.id)
			assert.ErrorIs(t, err, client.ErrUnauthenticated, "a signed GET of the revoked actor")
		})
	})

	var pk *client.Client // a patient who signs with a passkey
	t.Run("a patient enrols a passkey by invitation and grants consent with it", func(t *testing.T) {
		pk = enrolPasskeyPatient(t, w, p+"pat-pk")
		rc, err := pk.GrantConsent(ctx, client.ConsentGrant{GranteeID: w.res.id, Purpose: "passkey-study",
			DataTypes: []string{"heart_rate"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour)})
		require.NoError(t, err, "a passkey-signed consent grant")
		assert.NotEmpty(t, rc.TxID)
		cons, err := pk.Consents(ctx, pk.ActorID())
		require.NoError(t, err, "a passkey-signed GET of the patient's consents")
		require.Len(t, cons, 1)
		assert.Equal(t, rc.ConsentID, cons[0].ID)
	})

	if env.Restart == nil {
		return
	}
	t.Run("a restart keeps everything", func(t *testing.T) {
		// Acknowledge readings, then restart before they are necessarily committed.
		var last string
		for seq := uint64(100); seq < 110; seq++ {
			r, err := w.dev.c.SubmitReading(ctx, w.reading(t, w.dev, seq, "heart_rate", seq, now))
			require.NoError(t, err)
			last = r.ReadingID
		}
		env.Restart(t)
		pv, err := waitProvenance(ctx, w.reg.c, last)
		require.NoError(t, err, "reading acknowledged before the restart")
		assert.Equal(t, last, pv.Reading.ID, "provenance %+v", pv.Reading)
		cons, err := w.patient.c.Consents(ctx, w.patient.id)
		assert.NoError(t, err, "consents after restart")
		assert.GreaterOrEqual(t, len(cons), 3, "consents after restart")
		v, err := w.reg.c.VerifyReading(ctx, w.recorded[0])
		if assert.NoError(t, err, "verify after restart") {
			assert.True(t, v.OK, "verify after restart: %+v", v)
		}
		r, err := w.dev.c.SubmitReading(ctx, w.reading(t, w.dev, 200, "heart_rate", 1, now), client.WaitForCommit())
		if assert.NoError(t, err, "new reading after restart") {
			assert.Equal(t, wire.StatusRecorded, r.Status, "new reading after restart")
		}
		if pk != nil {
			_, err = pk.Consents(ctx, pk.ActorID())
			assert.NoError(t, err, "a passkey-signed GET after restart")
		}
	})
}

// enrolPasskeyPatient enrols patient id with a software passkey through
// the SDK, as the portal will through a browser: the org admin sets the
// relying party (rpId localhost, the gateway's origin on localhost) and
// invites the patient; the patient asks for creation options, registers
// the passkey and posts it. It returns a client that signs with the
// passkey, after checking that the invitation is spent and that a
// tampered assertion is refused.
func enrolPasskeyPatient(t *testing.T, w *world, id string) *client.Client {
	t.Helper()
	ctx := t.Context()
	u, err := url.Parse(w.env.BaseURL)
	require.NoError(t, err)
	origin := "http://localhost:" + u.Port()
	rp, err := w.admin.SetRelyingParty(ctx, "localhost", []string{origin})
	require.NoError(t, err, "set the relying party")
	assert.Equal(t, "localhost", rp.RPID)

	inv, err := w.admin.Invite(ctx, wire.InviteRequest{ID: id, Role: wire.RolePatient, TTL: "1h"})
	require.NoError(t, err, "invite %s", id)
	assert.Equal(t, wire.EnrolPathPrefix+inv.Token, inv.Path)
	anon := newClient(t, w.env)
	opts, err := anon.EnrolmentOptions(ctx, inv.Token)
	require.NoError(t, err, "creation options")
	assert.Equal(t, "required", opts.AuthenticatorSelection.UserVerification)
	challenge, err := base64.RawURLEncoding.DecodeString(opts.Challenge)
	require.NoError(t, err)

	auth := testkit.NewAuthenticator(t, rp.RPID, origin)
	cdj, att := auth.Register(t, challenge)
	req, err := client.Registration{CredentialID: auth.CredentialID, ClientDataJSON: cdj, AttestationObject: att}.EnrolmentRequest()
	require.NoError(t, err)
	got, err := anon.Enrol(ctx, inv.Token, req)
	require.NoError(t, err, "enrol the passkey")
	assert.Equal(t, id, got.Actor.ID)
	assert.Empty(t, got.Actor.PublicKey, "a passkey-only actor")
	_, err = anon.EnrolmentOptions(ctx, inv.Token)
	require.ErrorIs(t, err, client.ErrNotFound, "the used invitation")

	var edit func(*testkit.AssertionParts) // set to tamper with the next assertion
	signer := client.PasskeySignerFunc(func(_ context.Context, payload []byte) (envelope.Assertion, error) {
		var edits []func(*testkit.AssertionParts)
		if edit != nil {
			edits, edit = append(edits, edit), nil
		}
		return *auth.Assert(t, payload, edits...).WebAuthn, nil
	})
	c := newClient(t, w.env, client.WithPasskey(id, signer))
	edit = func(p *testkit.AssertionParts) { p.Flags &^= envelope.FlagUserVerified }
	_, err = c.Consents(ctx, id)
	require.ErrorIs(t, err, client.ErrUnauthenticated, "an assertion without user verification")
	return c
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
