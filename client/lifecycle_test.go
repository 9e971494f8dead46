package client_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/medprov/medprov/client"
	"github.com/medprov/medprov/envelope"
	"github.com/medprov/medprov/internal/testkit"
	"github.com/medprov/medprov/wire"
)

func TestLifecycleCalls(t *testing.T) {
	actor := testkit.MustKey(t)
	tests := []struct {
		name     string
		call     func(t *testing.T, c *client.Client)
		respBody string
		path     string
		action   string
		fields   map[string]any
	}{
		{
			name: "revocation names the target in the path and the payload",
			call: func(t *testing.T, c *client.Client) {
				r, err := c.RevokeActor(t.Context(), "res-1", "left-study")
				require.NoError(t, err)
				assert.Equal(t, "revoked", r.Actor.Status)
				assert.Equal(t, "tx1", r.TxID)
			},
			respBody: `{"actorId":"res-1","txId":"tx1","block":3,"actor":{"id":"res-1","status":"revoked","revokedTx":"tx1"}}`,
			path:     "/v1/actors/res-1/revoke",
			action:   wire.ActionActorRevoke,
			fields:   map[string]any{"targetId": "res-1", "reason": "left-study"},
		},
		{
			name: "rotation goes to the signer's own route with the new key",
			call: func(t *testing.T, c *client.Client) {
				r, err := c.RotateKey(t.Context(), "NEW PEM")
				require.NoError(t, err)
				assert.Equal(t, "tx2", r.Actor.RotatedTx)
			},
			respBody: `{"actorId":"actor-1","txId":"tx2","block":4,"actor":{"id":"actor-1","publicKey":"NEW PEM","rotatedTx":"tx2"}}`,
			path:     "/v1/actors/actor-1/rotate",
			action:   wire.ActionActorRotate,
			fields:   map[string]any{"publicKey": "NEW PEM"},
		},
		{
			name: "erasure goes to the signer's own patient route",
			call: func(t *testing.T, c *client.Client) {
				r, err := c.ErasePatient(t.Context(), "gdpr-request")
				require.NoError(t, err)
				assert.True(t, r.KeysShredded)
				assert.Equal(t, "tx3", r.Erasure.ErasedTx)
			},
			respBody: `{"patientId":"actor-1","txId":"tx3","block":5,"erasure":{"patientId":"actor-1","reason":"gdpr-request","erasedTx":"tx3"},"keysShredded":true}`,
			path:     "/v1/patients/actor-1/erase",
			action:   wire.ActionPatientErase,
			fields:   map[string]any{"reason": "gdpr-request"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, c := newFake(t, http.StatusOK, tt.respBody, client.WithActor("actor-1", actor), client.WithClock(func() time.Time { return fixedNow }))
			tt.call(t, c)
			got := f.last(t)
			assert.Equal(t, http.MethodPost, got.method)
			assert.Equal(t, tt.path, got.path)
			assert.Empty(t, got.header.Get("Authorization"), "a signed call sends no admin token")
			m := openEnvelope(t, got.body, &actor.PublicKey)
			checkHeader(t, m, tt.action, "actor-1", fixedNow)
			for k, want := range tt.fields {
				assert.JSONEq(t, string(testkit.MustJSON(t, want)), string(testkit.MustJSON(t, m[k])), "payload %s", k)
			}
			assert.Len(t, m, 4+len(tt.fields), "payload fields")
		})
	}
}

func TestRevokeOrgActorSendsAdminToken(t *testing.T) {
	f, c := newFake(t, http.StatusOK, `{"actorId":"res-1","txId":"tx1","block":3,"actor":{"id":"res-1","status":"revoked","revokedBy":"org:HospitalMSP"}}`,
		client.WithAdminToken("s3cret"))
	r, err := c.RevokeOrgActor(t.Context(), "res-1", "offboarded")
	require.NoError(t, err)
	assert.Equal(t, "org:HospitalMSP", r.Actor.RevokedBy)
	got := f.last(t)
	assert.Equal(t, "/v1/actors/res-1/revoke", got.path)
	assert.Equal(t, "Bearer s3cret", got.header.Get("Authorization"))
	assert.JSONEq(t, `{"reason":"offboarded"}`, string(got.body))
}

func TestLifecycleRefusals(t *testing.T) {
	tests := []struct {
		name   string
		status int
		call   func(c *client.Client) error
		want   error
	}{
		{"revoking twice is a conflict", http.StatusConflict, func(c *client.Client) error {
			_, err := c.RevokeActor(context.Background(), "res-1", "x")
			return err
		}, client.ErrConflict},
		{"a key taken by someone else is a conflict", http.StatusConflict, func(c *client.Client) error {
			_, err := c.RotateKey(context.Background(), "PEM")
			return err
		}, client.ErrConflict},
		{"erasing as a non-patient is forbidden", http.StatusForbidden, func(c *client.Client) error {
			_, err := c.ErasePatient(context.Background(), "x")
			return err
		}, client.ErrForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, c := newFake(t, tt.status, `{"error":{"code":"x","message":"no"}}`, client.WithActor("actor-1", testkit.MustKey(t)))
			require.ErrorIs(t, tt.call(c), tt.want)
		})
	}
	t.Run("a signed lifecycle call without an actor fails before sending", func(t *testing.T) {
		f, c := newFake(t, http.StatusOK, `{}`)
		_, err := c.ErasePatient(t.Context(), "x")
		require.ErrorIs(t, err, client.ErrNoActor)
		assert.Empty(t, f.reqs, "requests sent")
	})
}

// An actor replaces its key: the rotation is signed with the current key,
// then a new client signs with the new one.
func ExampleClient_RotateKey() {
	ctx := context.Background()
	current, err := envelope.GenerateKey() // in practice: the key file in use
	if err != nil {
		log.Fatal(err)
	}
	next, err := envelope.GenerateKey()
	if err != nil {
		log.Fatal(err)
	}
	pub, err := envelope.MarshalPublicKey(&next.PublicKey)
	if err != nil {
		log.Fatal(err)
	}
	c, err := client.New("http://127.0.0.1:8080", client.WithActor("pat-1", current))
	if err != nil {
		log.Fatal(err)
	}
	r, err := c.RotateKey(ctx, string(pub))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("rotated in", r.TxID)
	c, err = client.New("http://127.0.0.1:8080", client.WithActor("pat-1", next))
	if err != nil {
		log.Fatal(err)
	}
	_ = c // signs with the new key from now on
}

// A patient erases its data: the ledger keeps the evidence, the keys are
// shredded, and later access requests are denied with patient_erased.
func ExampleClient_ErasePatient() {
	ctx := context.Background()
	key, err := envelope.GenerateKey() // in practice: the patient's key file
	if err != nil {
		log.Fatal(err)
	}
	c, err := client.New("http://127.0.0.1:8080", client.WithActor("pat-1", key))
	if err != nil {
		log.Fatal(err)
	}
	r, err := c.ErasePatient(ctx, "gdpr-request")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(r.PatientID, "erased in", r.TxID, "keys shredded:", r.KeysShredded)
}
