package gateway_test

import (
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/medprov/medprov/client"
	"github.com/medprov/medprov/internal/testkit"
	"github.com/medprov/medprov/ledger"
	"github.com/medprov/medprov/node"
	"github.com/medprov/medprov/seal"
	"github.com/medprov/medprov/wire"
)

// actorParty is a registered actor and its current key.
type actorParty struct {
	id  string
	key *ecdsa.PrivateKey
}

func newActor(t *testing.T, s *node.Node, id, role string) *actorParty {
	t.Helper()
	return &actorParty{id: id, key: register(t, s, id, role)}
}

// signed returns the envelope JSON of an action by p, issued now, with the
// header filled in.
func (p *actorParty) signed(t *testing.T, action string, build func(h wire.ActionHeader) any) []byte {
	t.Helper()
	h, err := client.NewActionHeader(action, p.id, time.Now())
	require.NoError(t, err)
	env, err := client.SignPayload(p.key, build(h))
	require.NoError(t, err)
	return testkit.MustJSON(t, env)
}

// get sends a GET of path signed by p and returns the response.
func (p *actorParty) get(t *testing.T, s *node.Node, path string) *httptest.ResponseRecorder {
	t.Helper()
	h, err := client.SignedGetHeader(p.key, p.id, path, time.Now())
	require.NoError(t, err)
	req := httptest.NewRequestWithContext(t.Context(), http.MethodGet, path, nil)
	req.Header.Set(wire.SignatureHeader, h)
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	return rec
}

func (p *actorParty) revoke(t *testing.T, target, reason string) []byte {
	return p.signed(t, wire.ActionActorRevoke, func(h wire.ActionHeader) any {
		return wire.ActorRevokeAction{ActionHeader: h, TargetID: target, Reason: reason}
	})
}

func (p *actorParty) rotate(t *testing.T, pem string) []byte {
	return p.signed(t, wire.ActionActorRotate, func(h wire.ActionHeader) any {
		return wire.ActorRotateAction{ActionHeader: h, PublicKey: pem}
	})
}

func (p *actorParty) erase(t *testing.T, reason string) []byte {
	return p.signed(t, wire.ActionPatientErase, func(h wire.ActionHeader) any {
		return wire.PatientEraseAction{ActionHeader: h, Reason: reason}
	})
}

func (p *actorParty) grant(t *testing.T, grantee string, types ...string) []byte {
	return p.signed(t, wire.ActionConsentGrant, func(h wire.ActionHeader) any {
		return wire.ConsentGrantAction{ActionHeader: h, GranteeID: grantee, Purpose: "study", DataTypes: types,
			NotBefore: time.Now().Add(-24 * time.Hour).UTC().Format(time.RFC3339), NotAfter: time.Now().Add(24 * time.Hour).UTC().Format(time.RFC3339)}
	})
}

func (p *actorParty) access(t *testing.T, patient string, types ...string) []byte {
	return p.signed(t, wire.ActionAccessRequest, func(h wire.ActionHeader) any {
		return wire.AccessRequestAction{ActionHeader: h, PatientID: patient, Purpose: "study", DataTypes: types,
			From: time.Now().Add(-time.Hour).UTC().Format(time.RFC3339), To: time.Now().Add(time.Minute).UTC().Format(time.RFC3339)}
	})
}

// mustStatus requires the answer's status and decodes a 2xx body into out.
func mustStatus(t *testing.T, rec *httptest.ResponseRecorder, want int, out any) {
	t.Helper()
	require.Equal(t, want, rec.Code, "status: %s", rec.Body)
	checkResponse(t, rec)
	if out != nil {
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), out), "body %s", rec.Body)
	}
}

// eventually polls cond every 20ms for at most 10s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		require.False(t, time.Now().After(deadline), "%s did not happen within 10s", what)
		time.Sleep(20 * time.Millisecond)
	}
}

// lcDevice registers a device of patient by op and returns its key.
func lcDevice(t *testing.T, s *node.Node, op *actorParty, dev, patient string) *ecdsa.PrivateKey {
	t.Helper()
	dk := testkit.MustKey(t)
	body := op.signed(t, wire.ActionDeviceRegister, func(h wire.ActionHeader) any {
		return wire.DeviceRegisterAction{ActionHeader: h, DeviceID: dev, PatientID: patient, DeviceType: "hr", PublicKey: testkit.PublicPEM(t, dk)}
	})
	mustStatus(t, post(t, s, "/v1/devices", body, nil), http.StatusCreated, nil)
	return dk
}

// lcReading submits a reading of dev and waits for its commit.
func lcReading(t *testing.T, s *node.Node, dk *ecdsa.PrivateKey, dev string, seq uint64, typ string) string {
	t.Helper()
	p, err := client.NewReading(dev, seq, typ, "bpm", 70+seq, time.Now().Add(-time.Minute))
	require.NoError(t, err)
	env, err := client.SignReading(dk, p)
	require.NoError(t, err)
	var r wire.ReadingReceipt
	mustStatus(t, post(t, s, "/v1/readings?wait=commit", testkit.MustJSON(t, env), nil), http.StatusCreated, &r)
	require.Equal(t, wire.StatusRecorded, r.Status)
	return r.ReadingID
}

func TestRevokeActorRoute(t *testing.T) {
	s := newServer(t)
	reg := newActor(t, s, "reg", wire.RoleRegulator)
	other := newActor(t, s, "other", wire.RolePatient)
	admin := map[string]string{"Authorization": "Bearer " + adminToken}
	tests := []struct {
		name   string
		target string
		body   func(target *actorParty) []byte
		hdr    map[string]string
		want   int
		by     string // revokedBy when it succeeds; "" = the target itself
	}{
		{"the actor revokes itself", "self-1", func(p *actorParty) []byte { return p.revoke(t, p.id, "key-lost") }, nil, http.StatusOK, ""},
		{"a regulator revokes an actor", "reg-target", func(p *actorParty) []byte { return reg.revoke(t, p.id, "left-study") }, nil, http.StatusOK, "reg"},
		{"the org admin revokes an actor with the admin token", "adm-target", func(*actorParty) []byte { return []byte(`{"reason":"offboarded"}`) }, admin, http.StatusOK, "org:HospitalMSP"},
		{"another patient is forbidden", "oth-target", func(p *actorParty) []byte { return other.revoke(t, p.id, "spite") }, nil, http.StatusForbidden, ""},
		{"a targetId other than the path is a bad request", "path-target", func(*actorParty) []byte { return reg.revoke(t, "other", "left-study") }, nil, http.StatusBadRequest, ""},
		{"a free-text reason is a bad request", "text-target", func(p *actorParty) []byte { return reg.revoke(t, p.id, "Left the study") }, nil, http.StatusBadRequest, ""},
		{"a wrong admin token is unauthenticated", "tok-target", func(*actorParty) []byte { return []byte(`{"reason":"offboarded"}`) },
			map[string]string{"Authorization": "Bearer not-the-admin-token-at-all"}, http.StatusUnauthorized, ""},
		{"an admin body with an unknown member is a bad request", "mem-target", func(*actorParty) []byte { return []byte(`{"reason":"x","role":"regulator"}`) }, admin, http.StatusBadRequest, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target := newActor(t, s, tt.target, wire.RolePatient)
			path := "/v1/patients/" + target.id + "/consents"
			mustStatus(t, target.get(t, s, path), http.StatusOK, nil) // the key is now cached

			var got wire.ActorReceipt
			rec := post(t, s, "/v1/actors/"+target.id+"/revoke", tt.body(target), tt.hdr)
			if tt.want != http.StatusOK {
				mustStatus(t, rec, tt.want, nil)
				assert.Equal(t, http.StatusOK, target.get(t, s, path).Code, "a refused revocation changes nothing")
				return
			}
			mustStatus(t, rec, http.StatusOK, &got)
			by := tt.by
			if by == "" {
				by = target.id
			}
			assert.Equal(t, target.id, got.ActorID)
			assert.Equal(t, wire.StatusRevoked, got.Actor.Status)
			assert.Equal(t, got.TxID, got.Actor.RevokedTx, "revokedTx")
			assert.Equal(t, by, got.Actor.RevokedBy, "revokedBy")
			assert.NotZero(t, got.Block)

			assert.Equal(t, http.StatusUnauthorized, target.get(t, s, path).Code, "a signed GET with the revoked key")
			mustStatus(t, post(t, s, "/v1/consents", target.grant(t, "nobody", "spo2"), nil), http.StatusForbidden, nil)
			mustStatus(t, post(t, s, "/v1/actors/"+target.id+"/revoke", reg.revoke(t, target.id, "again"), nil), http.StatusConflict, nil)
		})
	}

	t.Run("an admin revocation of an unknown actor is not found", func(t *testing.T) {
		mustStatus(t, post(t, s, "/v1/actors/nobody/revoke", []byte(`{"reason":"offboarded"}`), admin), http.StatusNotFound, nil)
	})

	t.Run("a revocation through another gateway reaches this one's key cache through the event", func(t *testing.T) {
		target := newActor(t, s, "elsewhere", wire.RolePatient)
		path := "/v1/patients/" + target.id + "/consents"
		mustStatus(t, target.get(t, s, path), http.StatusOK, nil)
		_, err := s.Ledger.Submit(t.Context(), ledger.Proposal{Function: wire.FnRevokeActor, Args: []string{string(reg.revoke(t, target.id, "left-study"))}})
		require.NoError(t, err, "revoke on the ledger directly")
		eventually(t, "the revoked key refused", func() bool { return target.get(t, s, path).Code == http.StatusUnauthorized })
	})
}

func TestRotateActorKeyRoute(t *testing.T) {
	s := newServer(t)
	taken := newActor(t, s, "taken", wire.RoleResearcher)
	tests := []struct {
		name string
		// through the ledger directly, as through another gateway
		elsewhere bool
	}{
		{"a rotation through this gateway", false},
		{"a rotation through another gateway", true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newActor(t, s, "rot-"+strconv.Itoa(i), wire.RolePatient)
			path := "/v1/patients/" + p.id + "/consents"
			mustStatus(t, p.get(t, s, path), http.StatusOK, nil)
			next := testkit.MustKey(t)
			body := p.rotate(t, testkit.PublicPEM(t, next))
			if tt.elsewhere {
				_, err := s.Ledger.Submit(t.Context(), ledger.Proposal{Function: wire.FnRotateActorKey, Args: []string{string(body)}})
				require.NoError(t, err)
			} else {
				var got wire.ActorReceipt
				mustStatus(t, post(t, s, "/v1/actors/"+p.id+"/rotate", body, nil), http.StatusOK, &got)
				assert.Equal(t, testkit.PublicPEM(t, next), got.Actor.PublicKey, "the new key is on the record")
				assert.Equal(t, got.TxID, got.Actor.RotatedTx, "rotatedTx")
			}
			old := *p
			p.key = next
			eventually(t, "the old key refused", func() bool { return old.get(t, s, path).Code == http.StatusUnauthorized })
			mustStatus(t, p.get(t, s, path), http.StatusOK, nil)
			mustStatus(t, post(t, s, "/v1/consents", old.grant(t, taken.id, "spo2"), nil), http.StatusUnauthorized, nil)
			mustStatus(t, post(t, s, "/v1/consents", p.grant(t, taken.id, "spo2"), nil), http.StatusCreated, nil)
		})
	}

	refusals := []struct {
		name string
		body func(p *actorParty) []byte
		path func(p *actorParty) string
		want int
	}{
		{"a key registered to another actor is a conflict", func(p *actorParty) []byte { return p.rotate(t, testkit.PublicPEM(t, taken.key)) }, nil, http.StatusConflict},
		{"a malformed key is a bad request", func(p *actorParty) []byte { return p.rotate(t, "not a key") }, nil, http.StatusBadRequest},
		{"another actor's path is a bad request", func(p *actorParty) []byte { return p.rotate(t, testkit.PublicPEM(t, testkit.MustKey(t))) },
			func(*actorParty) string { return "/v1/actors/taken/rotate" }, http.StatusBadRequest},
		{"a rotation signed with another key is unauthenticated", func(p *actorParty) []byte {
			forger := &actorParty{id: p.id, key: testkit.MustKey(t)}
			return forger.rotate(t, testkit.PublicPEM(t, forger.key))
		}, nil, http.StatusUnauthorized},
	}
	for i, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			p := newActor(t, s, "ref-"+strconv.Itoa(i), wire.RolePatient)
			path := "/v1/actors/" + p.id + "/rotate"
			if tt.path != nil {
				path = tt.path(p)
			}
			mustStatus(t, post(t, s, path, tt.body(p), nil), tt.want, nil)
			mustStatus(t, p.get(t, s, "/v1/patients/"+p.id+"/consents"), http.StatusOK, nil)
		})
	}
}

// erasureWorld is a patient with a device, readings and a consent to a
// researcher, and a regulator.
type erasureWorld struct {
	s                 *node.Node
	pat, res, reg, op *actorParty
	dk                *ecdsa.PrivateKey
	dev               string
	readings          []string
}

func newErasureWorld(t *testing.T, s *node.Node, suffix string) *erasureWorld {
	t.Helper()
	w := &erasureWorld{s: s, dev: "dev-" + suffix,
		pat: newActor(t, s, "pat-"+suffix, wire.RolePatient), res: newActor(t, s, "res-"+suffix, wire.RoleResearcher),
		reg: newActor(t, s, "reg-"+suffix, wire.RoleRegulator), op: newActor(t, s, "op-"+suffix, wire.RoleOperator)}
	w.dk = lcDevice(t, s, w.op, w.dev, w.pat.id)
	for seq := uint64(1); seq <= 2; seq++ {
		w.readings = append(w.readings, lcReading(t, s, w.dk, w.dev, seq, "heart_rate"))
	}
	mustStatus(t, post(t, s, "/v1/consents", w.pat.grant(t, w.res.id, "heart_rate"), nil), http.StatusCreated, nil)
	return w
}

// openSealed opens the stored ciphertext of a reading with the node's
// keyring.
func openSealed(t *testing.T, s *node.Node, rec wire.Reading) error {
	t.Helper()
	ct, err := s.Blobs.Get(t.Context(), rec.CID)
	require.NoError(t, err, "ciphertext is still stored")
	_, err = s.Keyring.Open(t.Context(), rec.PatientID, rec.ID, ct)
	return err
}

func TestErasePatientRoute(t *testing.T) {
	s := newServer(t)
	w := newErasureWorld(t, s, "1")
	var before wire.ProvenanceReport
	mustStatus(t, w.reg.get(t, s, "/v1/readings/"+w.readings[0]+"/provenance"), http.StatusOK, &before)
	var grant wire.AccessGrant
	mustStatus(t, post(t, s, "/v1/access", w.res.access(t, w.pat.id, "heart_rate"), nil), http.StatusOK, &grant)
	require.Len(t, grant.Readings, 2, "released before the erasure")

	t.Run("refused erasures", func(t *testing.T) {
		tests := []struct {
			name string
			path string
			body []byte
			want int
		}{
			{"erasing another patient is a bad request", "/v1/patients/other/erase", w.pat.erase(t, "gdpr-request"), http.StatusBadRequest},
			{"a researcher cannot erase", "/v1/patients/" + w.res.id + "/erase", w.res.erase(t, "gdpr-request"), http.StatusForbidden},
			{"a free-text reason is a bad request", "/v1/patients/" + w.pat.id + "/erase", w.pat.erase(t, "Please forget me"), http.StatusBadRequest},
			{"an unsigned body is a bad request", "/v1/patients/" + w.pat.id + "/erase", []byte(`{"reason":"gdpr-request"}`), http.StatusBadRequest},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				mustStatus(t, post(t, s, tt.path, tt.body, nil), tt.want, nil)
			})
		}
	})

	var er wire.ErasureReceipt
	mustStatus(t, post(t, s, "/v1/patients/"+w.pat.id+"/erase", w.pat.erase(t, "gdpr-request"), nil), http.StatusOK, &er)
	assert.True(t, er.KeysShredded, "the keys are shredded before the answer")
	assert.Equal(t, w.pat.id, er.Erasure.PatientID)
	assert.Equal(t, er.TxID, er.Erasure.ErasedTx)

	t.Run("the keys are crypto-shredded", func(t *testing.T) {
		assert.ErrorIs(t, openSealed(t, s, before.Reading), seal.ErrErased)
	})
	t.Run("erasing twice is a conflict", func(t *testing.T) {
		mustStatus(t, post(t, s, "/v1/patients/"+w.pat.id+"/erase", w.pat.erase(t, "gdpr-request"), nil), http.StatusConflict, nil)
	})
	t.Run("access is denied with patient_erased and still logged", func(t *testing.T) {
		rec := post(t, s, "/v1/access", w.res.access(t, w.pat.id, "heart_rate"), nil)
		var d wire.AccessDenial
		mustStatus(t, rec, http.StatusForbidden, &d)
		assert.Equal(t, wire.ReasonPatientErased, d.Reason)
		assert.NotEmpty(t, d.AccessID, "the denial is on the ledger")
	})
	t.Run("the ledger record and hashes stay as evidence", func(t *testing.T) {
		var after wire.ProvenanceReport
		mustStatus(t, w.reg.get(t, s, "/v1/readings/"+w.readings[0]+"/provenance"), http.StatusOK, &after)
		assert.Equal(t, before.Reading, after.Reading, "the reading record")
		var actor wire.Actor
		b, err := s.Ledger.Evaluate(t.Context(), ledger.Proposal{Function: wire.FnGetActor, Args: []string{w.pat.id}})
		require.NoError(t, err)
		require.NoError(t, json.Unmarshal(b, &actor))
		assert.Equal(t, er.TxID, actor.ErasedTx, "the patient record is marked erased")
	})
	t.Run("verification says the plaintext is erased", func(t *testing.T) {
		var v wire.Verification
		mustStatus(t, w.reg.get(t, s, "/v1/audit/verify/"+w.readings[0]), http.StatusOK, &v)
		assert.False(t, v.OK, "an erased reading cannot be fully verified")
		checks := map[string]wire.Check{}
		for _, c := range v.Checks {
			checks[c.Name] = c
		}
		assert.False(t, checks["plaintext_hash"].OK)
		assert.Contains(t, checks["plaintext_hash"].Detail, "erased", "plaintext_hash detail")
		assert.True(t, checks["device_signature"].OK, "the device signature over the hash still verifies")
		assert.True(t, checks["ciphertext_hash"].OK, "the ciphertext still matches its hash")
	})
	t.Run("the erased patient's device readings are refused", func(t *testing.T) {
		p, err := client.NewReading(w.dev, 3, "heart_rate", "bpm", 71, time.Now())
		require.NoError(t, err)
		env, err := client.SignReading(w.dk, p)
		require.NoError(t, err)
		mustStatus(t, post(t, s, "/v1/readings", testkit.MustJSON(t, env), nil), http.StatusForbidden, nil)
	})
	t.Run("the erasure is in the audit trail", func(t *testing.T) {
		var page wire.AuditEventPage
		mustStatus(t, w.reg.get(t, s, "/v1/audit/events?type="+wire.AuditPatientErased), http.StatusOK, &page)
		require.Len(t, page.Items, 1)
		assert.Equal(t, er.TxID, page.Items[0].TxID)
		assert.Equal(t, []string{w.pat.id}, page.Items[0].PatientIDs)
	})
}

func TestErasureShredsOnTheEvent(t *testing.T) {
	s := newServer(t)
	w := newErasureWorld(t, s, "ev")
	var pv wire.ProvenanceReport
	mustStatus(t, w.reg.get(t, s, "/v1/readings/"+w.readings[0]+"/provenance"), http.StatusOK, &pv)
	require.NoError(t, openSealed(t, s, pv.Reading), "opens before the erasure")
	// The erasure committed, but its gateway stopped before shredding (or
	// it went through another gateway): this gateway shreds on the event.
	_, err := s.Ledger.Submit(t.Context(), ledger.Proposal{Function: wire.FnErasePatient, Args: []string{string(w.pat.erase(t, "gdpr-request"))}})
	require.NoError(t, err)
	eventually(t, "the keys shredded", func() bool { return openSealed(t, s, pv.Reading) != nil })
	assert.ErrorIs(t, openSealed(t, s, pv.Reading), seal.ErrErased)
}

func TestReleaseOfShreddedKeysIsWithheldAndRecorded(t *testing.T) {
	s := newServer(t)
	w := newErasureWorld(t, s, "sh")
	// A grant the ledger decided before it knew of the erasure meets keys
	// already shredded: the release withholds every reading as erased.
	require.NoError(t, s.Keyring.Shred(t.Context(), w.pat.id))
	var g wire.AccessGrant
	mustStatus(t, post(t, s, "/v1/access", w.res.access(t, w.pat.id, "heart_rate"), nil), http.StatusOK, &g)
	assert.Empty(t, g.Readings, "nothing released")
	want := []wire.Withheld{{ReadingID: w.readings[0], Reason: wire.WithheldErased}, {ReadingID: w.readings[1], Reason: wire.WithheldErased}}
	assert.Equal(t, want, g.Withheld, "withheld in the answer")
	assert.Equal(t, want, accessEvent(t, s, g.AccessID).Withheld, "withheld on the ledger")
}

// accessEvent reads an access event from the ledger.
func accessEvent(t *testing.T, s *node.Node, id string) wire.AccessEvent {
	t.Helper()
	b, err := s.Ledger.Evaluate(t.Context(), ledger.Proposal{Function: wire.FnGetAccessEvent, Args: []string{id}})
	require.NoError(t, err)
	var ev wire.AccessEvent
	require.NoError(t, json.Unmarshal(b, &ev))
	return ev
}

func TestReleaseRechecksEvidence(t *testing.T) {
	s := newServer(t)
	w := newErasureWorld(t, s, "ev")
	at := time.Now().Add(-time.Minute).UTC().Truncate(time.Second)
	// Each case records on the ledger a reading whose signed payload and
	// metadata disagree, as a compromised ingest could: the device's
	// signature over the payload's hash is genuine (the chaincode accepts
	// it), the ciphertext is the payload sealed under the patient's key,
	// but the record claims something else.
	tests := []struct {
		name   string
		signed func(seq uint64) wire.ReadingPayload // what the device signed
		claim  func(in *wire.ReadingInput)          // what the ledger record says
		sealAs func(in wire.ReadingInput) string    // the reading id the ciphertext is sealed for
	}{
		{"a record claiming another type", nil, func(in *wire.ReadingInput) { in.Type = "heart_rate" }, nil},
		{"a record claiming another unit", func(seq uint64) wire.ReadingPayload {
			return payload(t, w.dev, seq, "heart_rate", "mmHg", at)
		}, nil, nil},
		{"a record claiming another measuredAt", func(seq uint64) wire.ReadingPayload {
			return payload(t, w.dev, seq, "heart_rate", "bpm", at.Add(-24*time.Hour))
		}, nil, nil},
		{"a record claiming another seq", func(seq uint64) wire.ReadingPayload {
			return payload(t, w.dev, seq+1000, "heart_rate", "bpm", at)
		}, nil, nil},
		{"a record claiming another device", func(seq uint64) wire.ReadingPayload {
			return payload(t, "dev-other", seq, "heart_rate", "bpm", at)
		}, nil, nil},
		{"a ciphertext sealed for another reading", func(seq uint64) wire.ReadingPayload {
			return payload(t, w.dev, seq, "heart_rate", "bpm", at)
		}, nil, func(in wire.ReadingInput) string { return wire.ReadingID(in.DeviceID, in.Seq+1) }},
	}
	var tampered []string
	for i, tt := range tests {
		seq := uint64(100 + i)
		signed := tt.signed
		if signed == nil {
			signed = func(seq uint64) wire.ReadingPayload { return payload(t, w.dev, seq, "spo2", "bpm", at) }
		}
		p := signed(seq)
		env, err := client.SignReading(w.dk, p)
		require.NoError(t, err)
		// The record: what the honest gateway would claim for seq, then the lie.
		in := wire.ReadingInput{DeviceID: w.dev, Seq: seq, Type: "heart_rate", Unit: "bpm", MeasuredAt: at.Format(time.RFC3339Nano)}
		if tt.claim != nil {
			tt.claim(&in)
		}
		sealID := in.ID()
		if tt.sealAs != nil {
			sealID = tt.sealAs(in)
		}
		ct, err := s.Keyring.Seal(t.Context(), w.pat.id, sealID, env.Payload)
		require.NoError(t, err)
		cids, err := s.Blobs.PutMany(t.Context(), [][]byte{ct})
		require.NoError(t, err)
		dh, ch := sha256.Sum256(env.Payload), sha256.Sum256(ct)
		in.DataHash, in.Signature = hex.EncodeToString(dh[:]), base64.StdEncoding.EncodeToString(env.Signature)
		in.CID, in.CipherHash, in.Size = cids[0], hex.EncodeToString(ch[:]), int64(len(ct))
		cm, err := s.Ledger.Submit(t.Context(), ledger.Proposal{Function: wire.FnRecordReadings,
			Args: []string{string(testkit.MustJSON(t, wire.BatchInput{Readings: []wire.ReadingInput{in}}))}})
		require.NoError(t, err, tt.name)
		var res wire.BatchResult
		require.NoError(t, json.Unmarshal(cm.Payload, &res))
		require.Equal(t, 1, res.Recorded, "%s: the chaincode cannot tell: %+v", tt.name, res.Results)
		tampered = append(tampered, in.ID())
	}

	var g wire.AccessGrant
	mustStatus(t, post(t, s, "/v1/access", w.res.access(t, w.pat.id, "heart_rate"), nil), http.StatusOK, &g)
	var released []string
	for _, r := range g.Readings {
		released = append(released, r.ReadingID)
	}
	assert.ElementsMatch(t, w.readings, released, "honest readings are released")
	held := map[string]string{}
	for _, h := range g.Withheld {
		held[h.ReadingID] = h.Reason
	}
	onLedger := map[string]string{}
	for _, h := range accessEvent(t, s, g.AccessID).Withheld {
		onLedger[h.ReadingID] = h.Reason
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, wire.WithheldEvidenceMismatch, held[tampered[i]], "withheld in the answer")
			assert.Equal(t, wire.WithheldEvidenceMismatch, onLedger[tampered[i]], "recorded on the access event")
		})
	}
	assert.Len(t, g.Withheld, len(tests), "only the tampered readings are withheld")

	t.Run("a regulator sees the withheld readings in the audit trail and the access log", func(t *testing.T) {
		var page wire.AuditEventPage
		mustStatus(t, w.reg.get(t, s, "/v1/audit/events?type="+wire.AuditReadingsWithheld), http.StatusOK, &page)
		require.Len(t, page.Items, 1)
		assert.Equal(t, g.AccessID, page.Items[0].SubjectID)
		assert.Equal(t, "org:HospitalMSP", page.Items[0].ActorID)
		var log wire.AccessEventPage
		mustStatus(t, w.reg.get(t, s, "/v1/patients/"+w.pat.id+"/access-log"), http.StatusOK, &log)
		var found bool
		for _, ev := range log.Items {
			if ev.ID == g.AccessID {
				found = true
				assert.Len(t, ev.Withheld, len(tests), "the access log shows the withheld readings")
			}
		}
		assert.True(t, found, "the access is in the log")
	})
	t.Run("verification flags the tampered metadata", func(t *testing.T) {
		var v wire.Verification
		mustStatus(t, w.reg.get(t, s, "/v1/audit/verify/"+tampered[0]), http.StatusOK, &v)
		assert.False(t, v.OK)
		for _, c := range v.Checks {
			if c.Name == "payload_metadata" {
				assert.False(t, c.OK, "payload_metadata")
			}
		}
	})
}

// payload builds a reading payload with a fresh nonce.
func payload(t *testing.T, dev string, seq uint64, typ, unit string, at time.Time) wire.ReadingPayload {
	t.Helper()
	p, err := client.NewReading(dev, seq, typ, unit, 72, at)
	require.NoError(t, err)
	return p
}
