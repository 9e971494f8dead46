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

	"github.com/medprov/medprov/wire"
)

func TestRegisterActor(t *testing.T) {
	e := newEnv(t)
	_, taken := newKey(t)
	if _, err := e.submitAdmin("RegisterActor", mustJSON(t, wire.ActorInput{ID: "taken", Role: "patient", PublicKey: taken})); err != nil {
		t.Fatalf("register first actor: %v", err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&p384.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	p384PEM := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	fresh := func() string { _, k := newKey(t); return k }

	tests := []struct {
		name  string
		admin bool
		arg   string
		want  wire.Code
	}{
		{"admin registers a patient", true, mustJSON(t, wire.ActorInput{ID: "pat-1", Role: "patient", PublicKey: fresh()}), ""},
		{"admin registers a regulator", true, mustJSON(t, wire.ActorInput{ID: "reg-1", Role: "regulator", PublicKey: fresh()}), ""},
		{"non-admin registration is refused", false, mustJSON(t, wire.ActorInput{ID: "pat-2", Role: "patient", PublicKey: fresh()}), wire.CodeForbidden},
		{"duplicate actor is a conflict", true, mustJSON(t, wire.ActorInput{ID: "taken", Role: "patient", PublicKey: fresh()}), wire.CodeConflict},
		{"key already registered to another actor is a conflict", true, mustJSON(t, wire.ActorInput{ID: "pat-3", Role: "patient", PublicKey: taken}), wire.CodeConflict},
		{"malformed key is refused", true, mustJSON(t, wire.ActorInput{ID: "pat-4", Role: "patient", PublicKey: "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"}), wire.CodeInvalid},
		{"P-384 key is refused", true, mustJSON(t, wire.ActorInput{ID: "pat-5", Role: "patient", PublicKey: p384PEM}), wire.CodeInvalid},
		{"unknown role is refused", true, mustJSON(t, wire.ActorInput{ID: "pat-6", Role: "doctor", PublicKey: fresh()}), wire.CodeInvalid},
		{"id with a colon is refused", true, mustJSON(t, wire.ActorInput{ID: "pat:7", Role: "patient", PublicKey: fresh()}), wire.CodeInvalid},
		{"unknown field is refused", true, `{"id":"pat-8","role":"patient","publicKey":"x","admin":true}`, wire.CodeInvalid},
		{"malformed JSON is refused", true, `{"id":`, wire.CodeInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			submit := e.submit
			if tt.admin {
				submit = e.submitAdmin
			}
			c, err := submit("RegisterActor", tt.arg)
			if got := refusalCode(t, err); got != tt.want {
				t.Fatalf("code = %q, want %q (err %v)", got, tt.want, err)
			}
			if tt.want != "" {
				return
			}
			var in wire.ActorInput
			if err := json.Unmarshal([]byte(tt.arg), &in); err != nil {
				t.Fatal(err)
			}
			var got wire.Actor
			e.mustEvaluate(&got, "GetActor", in.ID)
			want := wire.Actor{
				DocType: "actor", ID: in.ID, Role: in.Role, PublicKey: in.PublicKey, Org: "HospitalMSP",
				Status: "active", RegisteredTx: c.TxID, RegisteredAt: t0.Format("2006-01-02T15:04:05.000000000Z"),
			}
			if got != want {
				t.Errorf("GetActor = %+v, want %+v", got, want)
			}
		})
	}

	t.Run("unknown actor is not found", func(t *testing.T) {
		_, err := e.evaluate("GetActor", "nobody")
		if got := refusalCode(t, err); got != wire.CodeNotFound {
			t.Errorf("code = %q, want not_found", got)
		}
	})
	t.Run("refused registration writes nothing", func(t *testing.T) {
		_, err := e.evaluate("GetActor", "pat-2")
		if got := refusalCode(t, err); got != wire.CodeNotFound {
			t.Errorf("code = %q, want not_found", got)
		}
	})
}

func TestSignedActionRules(t *testing.T) {
	e := newEnv(t)
	op := e.actor("operator")
	patient := e.actor("patient")
	researcher := e.actor("researcher")
	otherKey, _ := newKey(t)

	// register builds a device.register action for a fresh device.
	register := func(signer *principal, over action) string {
		_, k := newKey(t)
		a := action{"deviceId": e.uid("dev"), "patientId": patient.id, "deviceType": "ecg", "publicKey": k}
		for key, v := range over {
			a[key] = v
		}
		return e.sign(signer, wire.ActionDeviceRegister, a)
	}
	replayed := register(op, nil)
	if _, err := e.submit("RegisterDevice", replayed); err != nil {
		t.Fatalf("first use of the envelope: %v", err)
	}

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
			_, err := e.submit("RegisterDevice", tt.env)
			if got := refusalCode(t, err); got != tt.want {
				t.Fatalf("code = %q, want %q (err %v)", got, tt.want, err)
			}
		})
	}
}
