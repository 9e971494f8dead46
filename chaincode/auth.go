package chaincode

import (
	"fmt"

	"github.com/medprov/medprov/wire"

	"github.com/medprov/medprov/envelope"
)

// authenticate checks a signed action: well-formed envelope and payload,
// expected action, known actor whose credential verifies the signature
// (its ledger key for a plain envelope; for a passkey envelope one of its
// passkeys, with the WebAuthn checks and counter of verifyPasskey),
// issuedAt within IssuedAtWindow of the transaction time, active actor in
// the required role, and a nonce never used by that actor (then consumed).
// role "" accepts any role (the caller decides who may act). p receives
// the decoded payload.
func (t *tx) authenticate(envelopeJSON, action, role string, p wire.Action) (*wire.Actor, error) {
	env, err := envelope.ParseSigned([]byte(envelopeJSON))
	if err != nil {
		return nil, invalid("malformed envelope")
	}
	if err := wire.DecodeStrict(env.Payload, p); err != nil {
		return nil, invalid("malformed %s payload: %v", action, wire.JSONProblem(err))
	}
	h := p.Header()
	if h.Action != action {
		return nil, invalid("payload action must be %q", action)
	}
	if !wire.ValidID(h.ActorID) {
		return nil, invalid("actorId is malformed")
	}
	if !wire.ValidNonce(h.Nonce) {
		return nil, invalid("nonce must be 16..128 base64, base64url or hex characters")
	}
	issuedAt, err := parseTime("issuedAt", h.IssuedAt)
	if err != nil {
		return nil, err
	}
	actor, found, err := getActor(t.stub, h.ActorID)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, refuse(wire.CodeUnauthenticated, "unknown actor %s", h.ActorID)
	}
	if env.WebAuthn != nil {
		if err := t.verifyPasskey(actor, env.Payload, env.WebAuthn); err != nil {
			return nil, err
		}
	} else {
		if actor.PublicKey == "" {
			return nil, refuse(wire.CodeUnauthenticated, "actor %s signs with a passkey only", actor.ID)
		}
		pub, err := envelope.ParsePublicKey([]byte(actor.PublicKey))
		if err != nil {
			return nil, fmt.Errorf("ledger key of actor %s: %w", actor.ID, err)
		}
		if err := env.Envelope().Verify(pub); err != nil {
			return nil, refuse(wire.CodeUnauthenticated, "bad signature for actor %s", actor.ID)
		}
	}
	if d := issuedAt.Sub(t.time); d > wire.IssuedAtWindow || d < -wire.IssuedAtWindow {
		return nil, refuse(wire.CodeUnauthenticated, "stale issuedAt: more than %s from the transaction time", wire.IssuedAtWindow)
	}
	if actor.Status != wire.StatusActive {
		return nil, refuse(wire.CodeForbidden, "actor %s is not active", actor.ID)
	}
	if role != "" && actor.Role != role {
		return nil, refuse(wire.CodeForbidden, "%s requires role %s, actor %s is %s", action, role, actor.ID, actor.Role)
	}
	nk, err := key(t.stub, objNonce, actor.ID, h.Nonce)
	if err != nil {
		return nil, fmt.Errorf("nonce key: %w", err)
	}
	used, err := t.stub.GetState(nk)
	if err != nil {
		return nil, fmt.Errorf("read nonce: %w", err)
	}
	if len(used) != 0 {
		return nil, refuse(wire.CodeConflict, "replayed nonce")
	}
	if err := t.stub.PutState(nk, []byte(t.id)); err != nil {
		return nil, fmt.Errorf("write nonce: %w", err)
	}
	return actor, nil
}
