package client

import (
	"context"
	"net/http"

	"github.com/medprov/medprov/wire"
)

// RevokeActor revokes actor targetID, signed by the client's actor, which
// must be a regulator or the target itself (POST /v1/actors/{id}/revoke).
// reason is a lower-case token such as "key-compromised" (it is written to
// the ledger, so never free text). From the revocation's block on the
// target's key is refused everywhere; revoking twice is ErrConflict.
func (c *Client) RevokeActor(ctx context.Context, targetID, reason string) (*wire.ActorReceipt, error) {
	h, err := c.header(wire.ActionActorRevoke)
	if err != nil {
		return nil, err
	}
	var out wire.ActorReceipt
	p := wire.ActorRevokeAction{ActionHeader: h, TargetID: targetID, Reason: reason}
	if _, err := c.postSigned(ctx, "/v1/actors/"+seg(targetID)+"/revoke", p, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RevokeOrgActor revokes an actor of the gateway's organisation with the
// admin token (POST /v1/actors/{id}/revoke, body {"reason"}); the ledger
// records the org as the revoker.
func (c *Client) RevokeOrgActor(ctx context.Context, id, reason string) (*wire.ActorReceipt, error) {
	var out wire.ActorReceipt
	body := wire.AdminRevokeRequest{Reason: reason}
	if _, err := c.do(ctx, request{method: http.MethodPost, path: "/v1/actors/" + seg(id) + "/revoke", body: body, admin: true}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RotateKey replaces the client's actor key on the ledger with
// newPublicKey (PEM "PUBLIC KEY", ECDSA P-256, never registered before),
// signed with the client's current key (POST /v1/actors/{id}/rotate). The
// client keeps signing with its current key, which the ledger refuses from
// now on: build a new Client WithActor(id, newKey) to go on.
func (c *Client) RotateKey(ctx context.Context, newPublicKey string) (*wire.ActorReceipt, error) {
	h, err := c.header(wire.ActionActorRotate)
	if err != nil {
		return nil, err
	}
	var out wire.ActorReceipt
	p := wire.ActorRotateAction{ActionHeader: h, PublicKey: newPublicKey}
	if _, err := c.postSigned(ctx, "/v1/actors/"+seg(c.actorID)+"/rotate", p, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ErasePatient erases the data of the client's actor, which must be a
// patient (POST /v1/patients/{id}/erase): the ledger records the erasure,
// then the gateway crypto-shreds the patient's keys (KeysShredded; if
// false the gateway finishes it on the ledger's event). Afterwards access
// to the patient is denied with reason patient_erased, while the hashes on
// the ledger remain as evidence. reason is a lower-case token. Erasing
// twice is ErrConflict.
func (c *Client) ErasePatient(ctx context.Context, reason string) (*wire.ErasureReceipt, error) {
	h, err := c.header(wire.ActionPatientErase)
	if err != nil {
		return nil, err
	}
	var out wire.ErasureReceipt
	p := wire.PatientEraseAction{ActionHeader: h, Reason: reason}
	if _, err := c.postSigned(ctx, "/v1/patients/"+seg(c.actorID)+"/erase", p, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
