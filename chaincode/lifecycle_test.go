package chaincode_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/medprov/medprov/internal/testkit"
	"github.com/medprov/medprov/ledger"
	"github.com/medprov/medprov/wire"
)

// auditOf returns the audit event the transaction txID wrote.
func auditOf(t *testing.T, e *env, typ, txID string) wire.AuditEvent {
	t.Helper()
	var page wire.AuditEventPage
	e.mustEvaluate(&page, wire.FnListEvents, string(testkit.MustJSON(t, wire.EventFilter{Type: typ})), "1000", "")
	for _, ev := range page.Items {
		if ev.TxID == txID {
			return ev
		}
	}
	require.Failf(t, "no audit event", "no %s audit event for transaction %s", typ, txID)
	return wire.AuditEvent{}
}

// eventPayload requires that the transaction emitted exactly one event
// named name and decodes its payload into out.
func eventPayload(t *testing.T, e *env, c *ledger.Commit, name string, out any) {
	t.Helper()
	evs := eventsOf(t, e, c.Block, c.TxID)
	require.Len(t, evs, 1, "events of transaction %s", c.TxID)
	require.Equal(t, name, evs[0].Name, "event name")
	require.NoError(t, json.Unmarshal(evs[0].Payload, out), "event payload")
}

func TestRevokeActor(t *testing.T) {
	e := newEnv(t)
	reg := e.actor(wire.RoleRegulator)
	revoke := func(signer *principal, target, reason string) (*ledger.Commit, error) {
		return e.submit(wire.FnRevokeActor, e.sign(signer, wire.ActionActorRevoke, action{"targetId": target, "reason": reason}))
	}
	tests := []struct {
		name   string
		signer func(target *principal) *principal
		target func(target *principal) string
		reason string
		by     func(target *principal) string
		want   wire.Code
	}{
		{"an actor revokes itself", func(p *principal) *principal { return p }, nil, "key-lost", func(p *principal) string { return p.id }, ""},
		{"a regulator revokes another actor", func(*principal) *principal { return reg }, nil, "left-study", func(*principal) string { return reg.id }, ""},
		{"another patient may not revoke an actor", func(*principal) *principal { return e.actor(wire.RolePatient) }, nil, "spite", nil, wire.CodeForbidden},
		{"a researcher may not revoke an unknown actor either", func(*principal) *principal { return e.actor(wire.RoleResearcher) },
			func(*principal) string { return "nobody" }, "spite", nil, wire.CodeForbidden},
		{"a regulator revoking an unknown actor is not found", func(*principal) *principal { return reg },
			func(*principal) string { return "nobody" }, "left-study", nil, wire.CodeNotFound},
		{"a free-text reason is refused", func(*principal) *principal { return reg }, nil, "Patient told me: HIV+", nil, wire.CodeInvalid},
		{"a malformed target is refused", func(*principal) *principal { return reg }, func(*principal) string { return "a:b" }, "x", nil, wire.CodeInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target := e.actor(wire.RolePatient)
			targetID := target.id
			if tt.target != nil {
				targetID = tt.target(target)
			}
			c, err := revoke(tt.signer(target), targetID, tt.reason)
			require.Equal(t, tt.want, refusalCode(t, err), "refusal code (err %v)", err)
			var got wire.Actor
			e.mustEvaluate(&got, wire.FnGetActor, target.id)
			if tt.want != "" {
				assert.Equal(t, wire.StatusActive, got.Status, "a refused revocation changes nothing")
				return
			}
			assert.Equal(t, wire.StatusRevoked, got.Status, "status")
			assert.Equal(t, c.TxID, got.RevokedTx, "revokedTx")
			assert.NotEmpty(t, got.RevokedAt, "revokedAt")
			assert.Equal(t, tt.by(target), got.RevokedBy, "revokedBy")
			assert.Equal(t, tt.reason, got.RevokedReason, "revokedReason")
			assert.NotEmpty(t, got.RegisteredTx, "the registration stays on the record")

			ev := auditOf(t, e, wire.AuditActorRevoked, c.TxID)
			assert.Equal(t, tt.by(target), ev.ActorID, "audit actor")
			assert.Equal(t, target.id, ev.SubjectID, "audit subject")
			assert.Equal(t, []string{target.id}, ev.PatientIDs, "a revoked patient's trail shows it")
			var pub wire.Actor
			eventPayload(t, e, c, wire.EventActorRevoked, &pub)
			assert.Equal(t, got, pub, "event payload is the revoked actor")

			_, err = revoke(reg, target.id, "again")
			assert.Equal(t, wire.CodeConflict, refusalCode(t, err), "revoking twice")
		})
	}

	t.Run("a revoked actor's key is refused for every action", func(t *testing.T) {
		op := e.actor(wire.RoleOperator)
		patient := e.actor(wire.RolePatient)
		researcher := e.actor(wire.RoleResearcher)
		_, err := revoke(researcher, researcher.id, "key-lost")
		require.NoError(t, err)
		_, err = revoke(op, op.id, "key-lost")
		require.NoError(t, err)
		_, err = e.submit(wire.FnRequestAccess, e.sign(researcher, wire.ActionAccessRequest, action{
			"patientId": patient.id, "purpose": "p", "dataTypes": []string{"spo2"},
			"from": t0.Add(-time.Hour).Format(time.RFC3339), "to": t0.Format(time.RFC3339),
		}))
		assert.Equal(t, wire.CodeForbidden, refusalCode(t, err), "access request of a revoked researcher")
		d := newPrincipal(t, e.uid("dev"), "device")
		_, err = e.submit(wire.FnRegisterDevice, e.sign(op, wire.ActionDeviceRegister, action{
			"deviceId": d.id, "patientId": patient.id, "deviceType": "x", "publicKey": d.pem,
		}))
		assert.Equal(t, wire.CodeForbidden, refusalCode(t, err), "device registration of a revoked operator")
		_, err = e.submit(wire.FnRotateActorKey, e.sign(op, wire.ActionActorRotate, action{"publicKey": freshPEM(t)}))
		assert.Equal(t, wire.CodeForbidden, refusalCode(t, err), "a revoked actor rotating its key")
		_, err = revoke(researcher, researcher.id, "again")
		assert.Equal(t, wire.CodeForbidden, refusalCode(t, err), "a revoked actor signing anything")
	})
}

func TestRevokeOrgActor(t *testing.T) {
	e := newEnv(t)
	arg := func(id, reason string) string {
		return string(testkit.MustJSON(t, wire.ActorRevokeInput{ID: id, Reason: reason}))
	}
	tests := []struct {
		name  string
		admin bool
		arg   func(target *principal) string
		want  wire.Code
	}{
		{"the org admin revokes an actor of its org", true, func(p *principal) string { return arg(p.id, "offboarded") }, ""},
		{"a non-admin identity is refused", false, func(p *principal) string { return arg(p.id, "offboarded") }, wire.CodeForbidden},
		{"an unknown actor is not found", true, func(*principal) string { return arg("nobody", "offboarded") }, wire.CodeNotFound},
		{"a free-text reason is refused", true, func(p *principal) string { return arg(p.id, "Off Boarded") }, wire.CodeInvalid},
		{"an unknown member is refused", true, func(p *principal) string { return `{"id":"` + p.id + `","reason":"x","role":"regulator"}` }, wire.CodeInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target := e.actor(wire.RoleResearcher)
			submit := e.submit
			if tt.admin {
				submit = e.submitAdmin
			}
			c, err := submit(wire.FnRevokeOrgActor, tt.arg(target))
			require.Equal(t, tt.want, refusalCode(t, err), "refusal code (err %v)", err)
			var got wire.Actor
			e.mustEvaluate(&got, wire.FnGetActor, target.id)
			if tt.want != "" {
				assert.Equal(t, wire.StatusActive, got.Status, "a refused revocation changes nothing")
				return
			}
			assert.Equal(t, wire.StatusRevoked, got.Status)
			assert.Equal(t, "org:HospitalMSP", got.RevokedBy, "revokedBy names the org")
			assert.Equal(t, c.TxID, got.RevokedTx)
			ev := auditOf(t, e, wire.AuditActorRevoked, c.TxID)
			assert.Equal(t, "org:HospitalMSP", ev.ActorID, "audit actor")
			assert.Empty(t, ev.PatientIDs, "a researcher's revocation names no patient")

			_, err = submit(wire.FnRevokeOrgActor, tt.arg(target))
			assert.Equal(t, wire.CodeConflict, refusalCode(t, err), "revoking twice")
			_, err = e.submit(wire.FnRevokeActor, e.sign(target, wire.ActionActorRevoke, action{"targetId": target.id, "reason": "x"}))
			assert.Equal(t, wire.CodeForbidden, refusalCode(t, err), "the revoked actor signing")
		})
	}
}

func TestRotateActorKey(t *testing.T) {
	e := newEnv(t)
	op := e.actor(wire.RoleOperator)
	patient := e.actor(wire.RolePatient)
	dev := e.device(op, patient)
	taken := e.actor(wire.RoleResearcher)
	rotate := func(p *principal, pem string) (*ledger.Commit, error) {
		return e.submit(wire.FnRotateActorKey, e.sign(p, wire.ActionActorRotate, action{"publicKey": pem}))
	}

	t.Run("a rotated key replaces the old one", func(t *testing.T) {
		p := e.actor(wire.RolePatient)
		old := *p
		next := newPrincipal(t, p.id, p.role)
		c, err := rotate(p, next.pem)
		require.NoError(t, err, "rotate")
		var got wire.Actor
		e.mustEvaluate(&got, wire.FnGetActor, p.id)
		assert.Equal(t, next.pem, got.PublicKey, "the ledger holds the new key")
		assert.Equal(t, c.TxID, got.RotatedTx, "rotatedTx")
		assert.NotEmpty(t, got.RotatedAt, "rotatedAt")
		assert.Equal(t, wire.StatusActive, got.Status, "status")
		ev := auditOf(t, e, wire.AuditActorRotated, c.TxID)
		assert.Equal(t, p.id, ev.ActorID, "audit actor")
		assert.Equal(t, p.id, ev.SubjectID, "audit subject")
		var pub wire.Actor
		eventPayload(t, e, c, wire.EventActorRotated, &pub)
		assert.Equal(t, got, pub, "event payload is the rotated actor")

		researcher := e.actor(wire.RoleResearcher)
		grant := func(signer *principal) error {
			_, err := e.submit(wire.FnGrantConsent, e.sign(signer, wire.ActionConsentGrant, action{
				"granteeId": researcher.id, "purpose": "study", "dataTypes": []string{"spo2"},
				"notBefore": t0.Format(time.RFC3339), "notAfter": t0.Add(time.Hour).Format(time.RFC3339),
			}))
			return err
		}
		assert.Equal(t, wire.CodeUnauthenticated, refusalCode(t, grant(&old)), "the old key is refused")
		assert.NoError(t, grant(next), "the new key is accepted")
		_, err = e.submitAdmin(wire.FnRegisterActor, string(testkit.MustJSON(t, wire.ActorInput{ID: e.uid("x"), Role: wire.RolePatient, PublicKey: old.pem})))
		assert.Equal(t, wire.CodeConflict, refusalCode(t, err), "the retired key cannot be registered to anyone")
		_, err = rotate(next, old.pem)
		assert.Equal(t, wire.CodeConflict, refusalCode(t, err), "rotating back to the retired key")
	})

	tests := []struct {
		name string
		pem  string
		want wire.Code
	}{
		{"another actor's key is refused", taken.pem, wire.CodeConflict},
		{"a device's key is refused", dev.pem, wire.CodeConflict},
		{"the current key is refused", "", wire.CodeConflict},
		{"a malformed key is refused", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", wire.CodeInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := e.actor(wire.RoleResearcher)
			pem := tt.pem
			if pem == "" {
				pem = p.pem
			}
			_, err := rotate(p, pem)
			require.Equal(t, tt.want, refusalCode(t, err), "refusal code (err %v)", err)
			var got wire.Actor
			e.mustEvaluate(&got, wire.FnGetActor, p.id)
			assert.Equal(t, p.pem, got.PublicKey, "a refused rotation keeps the key")
			assert.Empty(t, got.RotatedTx, "a refused rotation records nothing")
		})
	}

	t.Run("a rotation signed with another key is unauthenticated", func(t *testing.T) {
		p := e.actor(wire.RoleResearcher)
		forger := newPrincipal(t, p.id, p.role)
		_, err := rotate(forger, forger.pem)
		assert.Equal(t, wire.CodeUnauthenticated, refusalCode(t, err))
	})
}

func TestErasePatient(t *testing.T) {
	e := newEnv(t)
	op := e.actor(wire.RoleOperator)
	researcher := e.actor(wire.RoleResearcher)
	patient := e.actor(wire.RolePatient)
	other := e.actor(wire.RolePatient)
	dev := e.device(op, patient)
	otherDev := e.device(op, other)
	res, _ := e.record(reading(t, dev, 1, "spo2", t0.Add(-time.Hour)), reading(t, otherDev, 1, "spo2", t0.Add(-time.Hour)))
	require.Equal(t, 2, res.Recorded, "setup readings: %+v", res.Results)
	var before wire.Reading
	e.mustEvaluate(&before, wire.FnGetReading, dev.id+":1")
	for _, p := range []*principal{patient, other} {
		e.grant(p, researcher, "study", []string{"spo2"}, t0.Add(-24*time.Hour), t0.Add(24*time.Hour))
	}
	erase := func(p *principal, reason string) (*ledger.Commit, error) {
		return e.submit(wire.FnErasePatient, e.sign(p, wire.ActionPatientErase, action{"reason": reason}))
	}

	t.Run("refused erasures change nothing", func(t *testing.T) {
		tests := []struct {
			name   string
			signer *principal
			reason string
			want   wire.Code
		}{
			{"a researcher cannot erase", researcher, "gdpr-request", wire.CodeForbidden},
			{"a free-text reason is refused", patient, "I want out", wire.CodeInvalid},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				_, err := erase(tt.signer, tt.reason)
				require.Equal(t, tt.want, refusalCode(t, err), "refusal code (err %v)", err)
				var got wire.Actor
				e.mustEvaluate(&got, wire.FnGetActor, patient.id)
				assert.Empty(t, got.ErasedTx, "patient not erased")
			})
		}
	})

	c, err := erase(patient, "gdpr-request")
	require.NoError(t, err, "erase")
	var er wire.Erasure
	require.NoError(t, json.Unmarshal(c.Payload, &er), "erasure result")
	assert.Equal(t, wire.Erasure{DocType: "erasure", PatientID: patient.id, Reason: "gdpr-request", ErasedTx: c.TxID, ErasedAt: er.ErasedAt}, er, "erasure record")
	assert.NotEmpty(t, er.ErasedAt, "erasedAt")

	t.Run("the erasure is recorded with its audit event and event", func(t *testing.T) {
		var got wire.Actor
		e.mustEvaluate(&got, wire.FnGetActor, patient.id)
		assert.Equal(t, c.TxID, got.ErasedTx, "the patient record is marked erased")
		assert.Equal(t, er.ErasedAt, got.ErasedAt, "erasedAt")
		assert.Equal(t, wire.StatusActive, got.Status, "the patient may still sign (revoke consents, read its log)")
		ev := auditOf(t, e, wire.AuditPatientErased, c.TxID)
		assert.Equal(t, patient.id, ev.ActorID)
		assert.Equal(t, []string{patient.id}, ev.PatientIDs)
		var pub wire.Erasure
		eventPayload(t, e, c, wire.EventPatientErased, &pub)
		assert.Equal(t, er, pub, "event payload is the erasure")
	})

	t.Run("what is on the ledger stays as evidence", func(t *testing.T) {
		var after wire.Reading
		e.mustEvaluate(&after, wire.FnGetReading, dev.id+":1")
		assert.Equal(t, before, after, "the reading record with its hashes, signature and CID")
	})

	t.Run("erasing twice is a conflict", func(t *testing.T) {
		_, err := erase(patient, "gdpr-request")
		assert.Equal(t, wire.CodeConflict, refusalCode(t, err))
	})

	t.Run("access to an erased patient is denied with patient_erased", func(t *testing.T) {
		var got wire.AccessEvent
		e.mustSubmit(&got, wire.FnRequestAccess, e.sign(researcher, wire.ActionAccessRequest, action{
			"patientId": patient.id, "purpose": "study", "dataTypes": []string{"spo2"},
			"from": t0.Add(-2 * time.Hour).Format(time.RFC3339), "to": t0.Format(time.RFC3339),
		}))
		assert.Equal(t, wire.DecisionDenied, got.Decision, "decision despite an active consent")
		assert.Equal(t, wire.ReasonPatientErased, got.Reason, "reason")
		assert.Empty(t, got.ReadingIDs, "no reading is listed")
	})

	t.Run("an erased patient's new data is refused", func(t *testing.T) {
		_, err := e.submit(wire.FnGrantConsent, e.sign(patient, wire.ActionConsentGrant, action{
			"granteeId": researcher.id, "purpose": "study", "dataTypes": []string{"spo2"},
			"notBefore": t0.Format(time.RFC3339), "notAfter": t0.Add(time.Hour).Format(time.RFC3339),
		}))
		assert.Equal(t, wire.CodeForbidden, refusalCode(t, err), "a new consent")
		d := newPrincipal(t, e.uid("dev"), "device")
		_, err = e.submit(wire.FnRegisterDevice, e.sign(op, wire.ActionDeviceRegister, action{
			"deviceId": d.id, "patientId": patient.id, "deviceType": "x", "publicKey": d.pem,
		}))
		assert.Equal(t, wire.CodeInvalid, refusalCode(t, err), "a new device")
		res, _ := e.record(reading(t, dev, 2, "spo2", t0), reading(t, otherDev, 2, "spo2", t0))
		require.Len(t, res.Results, 2)
		assert.Equal(t, wire.StatusRejected, res.Results[0].Status, "a reading of the erased patient's device")
		assert.Equal(t, wire.CodeForbidden, res.Results[0].Code, "a reading of the erased patient's device")
		assert.Equal(t, wire.StatusRecorded, res.Results[1].Status, "another patient's reading in the same batch")
	})

	t.Run("other patients are not affected", func(t *testing.T) {
		var got wire.AccessEvent
		e.mustSubmit(&got, wire.FnRequestAccess, e.sign(researcher, wire.ActionAccessRequest, action{
			"patientId": other.id, "purpose": "study", "dataTypes": []string{"spo2"},
			"from": t0.Add(-2 * time.Hour).Format(time.RFC3339), "to": t0.Format(time.RFC3339),
		}))
		assert.Equal(t, wire.DecisionGranted, got.Decision)
	})

	t.Run("the erased patient may still revoke its consents", func(t *testing.T) {
		var list []wire.Consent
		e.mustEvaluate(&list, wire.FnListConsents, patient.id)
		require.Len(t, list, 1)
		_, err := e.submit(wire.FnRevokeConsent, e.sign(patient, wire.ActionConsentRevoke, action{"consentId": list[0].ID}))
		assert.NoError(t, err)
	})
}

func TestRecordWithheld(t *testing.T) {
	e := newEnv(t)
	op := e.actor(wire.RoleOperator)
	researcher := e.actor(wire.RoleResearcher)
	patient := e.actor(wire.RolePatient)
	dev := e.device(op, patient)
	res, _ := e.record(reading(t, dev, 1, "spo2", t0.Add(-2*time.Hour)), reading(t, dev, 2, "spo2", t0.Add(-time.Hour)))
	require.Equal(t, 2, res.Recorded)
	e.grant(patient, researcher, "study", []string{"spo2"}, t0.Add(-24*time.Hour), t0.Add(24*time.Hour))
	request := func(purpose string) wire.AccessEvent {
		var ev wire.AccessEvent
		e.mustSubmit(&ev, wire.FnRequestAccess, e.sign(researcher, wire.ActionAccessRequest, action{
			"patientId": patient.id, "purpose": purpose, "dataTypes": []string{"spo2"},
			"from": t0.Add(-3 * time.Hour).Format(time.RFC3339), "to": t0.Format(time.RFC3339),
		}))
		return ev
	}
	denied := request("marketing")
	require.Equal(t, wire.DecisionDenied, denied.Decision)
	arg := func(accessID string, w ...wire.Withheld) string {
		return string(testkit.MustJSON(t, wire.WithheldInput{AccessID: accessID, Withheld: w}))
	}
	mismatch := func(id string) wire.Withheld {
		return wire.Withheld{ReadingID: id, Reason: wire.WithheldEvidenceMismatch}
	}

	tests := []struct {
		name string
		arg  func(granted wire.AccessEvent) string
		want wire.Code
	}{
		{"a granted reading withheld for evidence_mismatch is recorded", func(g wire.AccessEvent) string {
			return arg(g.ID, mismatch(g.ReadingIDs[1]))
		}, ""},
		{"every reason of the wire vocabulary is accepted", func(g wire.AccessEvent) string {
			return arg(g.ID, wire.Withheld{ReadingID: g.ReadingIDs[0], Reason: wire.WithheldErased},
				wire.Withheld{ReadingID: g.ReadingIDs[1], Reason: wire.WithheldCiphertextMissing})
		}, ""},
		{"an unknown access is not found", func(g wire.AccessEvent) string { return arg("acc-000000000000000000000000", mismatch(g.ReadingIDs[0])) }, wire.CodeNotFound},
		{"a denied access granted nothing", func(g wire.AccessEvent) string { return arg(denied.ID, mismatch(g.ReadingIDs[0])) }, wire.CodeForbidden},
		{"a reading the access did not grant is refused", func(g wire.AccessEvent) string { return arg(g.ID, mismatch(dev.id+":99")) }, wire.CodeForbidden},
		{"an unknown reason is refused", func(g wire.AccessEvent) string {
			return arg(g.ID, wire.Withheld{ReadingID: g.ReadingIDs[0], Reason: "lost"})
		}, wire.CodeInvalid},
		{"a reading listed twice is refused", func(g wire.AccessEvent) string {
			return arg(g.ID, mismatch(g.ReadingIDs[0]), mismatch(g.ReadingIDs[0]))
		}, wire.CodeInvalid},
		{"an empty list is refused", func(g wire.AccessEvent) string { return arg(g.ID) }, wire.CodeInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			granted := request("study")
			require.Equal(t, wire.DecisionGranted, granted.Decision)
			require.Len(t, granted.ReadingIDs, 2)
			a := tt.arg(granted)
			c, err := e.submit(wire.FnRecordWithheld, a)
			require.Equal(t, tt.want, refusalCode(t, err), "refusal code (err %v)", err)
			var got wire.AccessEvent
			e.mustEvaluate(&got, wire.FnGetAccessEvent, granted.ID)
			if tt.want != "" {
				assert.Empty(t, got.Withheld, "a refused record writes nothing")
				return
			}
			var in wire.WithheldInput
			require.NoError(t, json.Unmarshal([]byte(a), &in))
			assert.Equal(t, in.Withheld, got.Withheld, "the access event lists the withheld readings")
			assert.Equal(t, c.TxID, got.WithheldTx, "withheldTx")
			assert.Equal(t, granted.ReadingIDs, got.ReadingIDs, "the grant itself is unchanged")
			ev := auditOf(t, e, wire.AuditReadingsWithheld, c.TxID)
			assert.Equal(t, "org:HospitalMSP", ev.ActorID, "audit actor")
			assert.Equal(t, []string{patient.id}, ev.PatientIDs, "audit patients")
			assert.Equal(t, granted.ID, ev.SubjectID, "audit subject")
			var pub wire.AccessEvent
			eventPayload(t, e, c, wire.EventReadingsWithheld, &pub)
			assert.Equal(t, got, pub, "event payload is the access event")

			var pv wire.Provenance
			e.mustEvaluate(&pv, wire.FnGetProvenance, in.Withheld[0].ReadingID)
			var shown []wire.Withheld
			for _, a := range pv.Accesses {
				if a.ID == granted.ID {
					shown = a.Withheld
				}
			}
			assert.Equal(t, in.Withheld, shown, "the reading's provenance shows it")

			_, err = e.submit(wire.FnRecordWithheld, a)
			assert.Equal(t, wire.CodeConflict, refusalCode(t, err), "recording twice")
		})
	}
}
