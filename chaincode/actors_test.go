package chaincode_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/medprov/medprov/internal/testkit"
	"github.com/medprov/medprov/wire"
)

func TestRegisterActor(t *testing.T) {
	e := newEnv(t)
	actorArg := func(id, role, key string) string {
		return string(testkit.MustJSON(t, wire.ActorInput{ID: id, Role: role, PublicKey: key}))
	}
	taken := freshPEM(t)
	_, err := e.submitAdmin(wire.FnRegisterActor, actorArg("taken", "patient", taken))
	require.NoError(t, err, "register first actor")
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	require.NoError(t, err, "P-384 key")
	der, err := x509.MarshalPKIXPublicKey(&p384.PublicKey)
	require.NoError(t, err, "marshal P-384 key")
	p384PEM := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))

	tests := []struct {
		name  string
		admin bool
		arg   string
		want  wire.Code
	}{
		{"admin registers a patient", true, actorArg("pat-1", "patient", freshPEM(t)), ""},
		{"admin registers a regulator", true, actorArg("reg-1", "regulator", freshPEM(t)), ""},
		{"non-admin registration is refused", false, actorArg("pat-2", "patient", freshPEM(t)), wire.CodeForbidden},
		{"duplicate actor is a conflict", true, actorArg("taken", "patient", freshPEM(t)), wire.CodeConflict},
		{"key already registered to another actor is a conflict", true, actorArg("pat-3", "patient", taken), wire.CodeConflict},
		{"malformed key is refused", true, actorArg("pat-4", "patient", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"), wire.CodeInvalid},
		{"P-384 key is refused", true, actorArg("pat-5", "patient", p384PEM), wire.CodeInvalid},
		{"unknown role is refused", true, actorArg("pat-6", "doctor", freshPEM(t)), wire.CodeInvalid},
		{"id with a colon is refused", true, actorArg("pat:7", "patient", freshPEM(t)), wire.CodeInvalid},
		{"unknown field is refused", true, `{"id":"pat-8","role":"patient","publicKey":"x","admin":true}`, wire.CodeInvalid},
		{"malformed JSON is refused", true, `{"id":`, wire.CodeInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			submit := e.submit
			if tt.admin {
				submit = e.submitAdmin
			}
			c, err := submit(wire.FnRegisterActor, tt.arg)
			require.Equal(t, tt.want, refusalCode(t, err), "refusal code (err %v)", err)
			if tt.want != "" {
				return
			}
			var in wire.ActorInput
			require.NoError(t, json.Unmarshal([]byte(tt.arg), &in))
			var got wire.Actor
			e.mustEvaluate(&got, wire.FnGetActor, in.ID)
			want := wire.Actor{
				DocType: "actor", ID: in.ID, Role: in.Role, PublicKey: in.PublicKey, Org: "HospitalMSP",
				Status: "active", RegisteredTx: c.TxID, RegisteredAt: t0.Format("2006-01-02T15:04:05.000000000Z"),
			}
			assert.Equal(t, want, got, "GetActor")
		})
	}

	t.Run("unknown actor is not found", func(t *testing.T) {
		_, err := e.evaluate(wire.FnGetActor, "nobody")
		assert.Equal(t, wire.CodeNotFound, refusalCode(t, err))
	})
	t.Run("refused registration writes nothing", func(t *testing.T) {
		_, err := e.evaluate(wire.FnGetActor, "pat-2")
		assert.Equal(t, wire.CodeNotFound, refusalCode(t, err))
	})
}

func TestSignedActionRules(t *testing.T) {
	e := newEnv(t)
	op := e.actor("operator")
	patient := e.actor("patient")
	researcher := e.actor("researcher")
	otherKey := testkit.MustKey(t)

	// register builds a device.register action for a fresh device.
	register := func(signer *principal, over action) string {
		a := action{"deviceId": e.uid("dev"), "patientId": patient.id, "deviceType": "ecg", "publicKey": freshPEM(t)}
		for key, v := range over {
			a[key] = v
		}
		return e.sign(signer, wire.ActionDeviceRegister, a)
	}
	replayed := register(op, nil)
	_, err := e.submit(wire.FnRegisterDevice, replayed)
	require.NoError(t, err, "first use of the envelope")

	tests := []struct {
		name string
		env  string
		want wire.Code
	}{
		{"valid action is accepted", register(op, nil), ""},
		{"issuedAt four minutes old is accepted", register(op, action{"issuedAt": t0.Add(-4 * time.Minute).Format(time.RFC3339)}), ""},
		{"forged signature is refused", register(&principal{id: op.id, key: otherKey}, nil), wire.CodeUnauthenticated},
		{"unknown actor is refused", register(&principal{id: "ghost", key: otherKey}, nil), wire.CodeUnauthenticated},
		{"stale issuedAt is refused", register(op, action{"issuedAt": t0.Add(-6 * time.Minute).Format(time.RFC3339)}), wire.CodeUnauthenticated},
		{"issuedAt too far ahead is refused", register(op, action{"issuedAt": t0.Add(6 * time.Minute).Format(time.RFC3339)}), wire.CodeUnauthenticated},
		{"replayed nonce is refused", replayed, wire.CodeConflict},
		{"short nonce is refused", register(op, action{"nonce": "abc"}), wire.CodeInvalid},
		{"wrong action name is refused", register(op, action{"action": "device.revoke"}), wire.CodeInvalid},
		{"unknown payload field is refused", register(op, action{"admin": true}), wire.CodeInvalid},
		{"missing issuedAt is refused", register(op, action{"issuedAt": nil}), wire.CodeInvalid},
		{"signer without the role is refused", register(researcher, nil), wire.CodeForbidden},
		{"malformed envelope is refused", `{"payload":"","signature":""}`, wire.CodeInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.submit(wire.FnRegisterDevice, tt.env)
			assert.Equal(t, tt.want, refusalCode(t, err), "refusal code (err %v)", err)
		})
	}
}
