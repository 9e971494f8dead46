package chaincode

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/medprov/medprov/envelope"
)

// IssuedAtWindow is how far a signed action's issuedAt may lie from the
// transaction timestamp, either way.
const IssuedAtWindow = 5 * time.Minute

// actionHeader is carried by every signed action payload.
type actionHeader struct {
	Action   string `json:"action"`
	ActorID  string `json:"actorId"`
	IssuedAt string `json:"issuedAt"`
	Nonce    string `json:"nonce"`
}

func (h *actionHeader) header() *actionHeader { return h }

type actionPayload interface{ header() *actionHeader }

// decodeStrict decodes one JSON value into v, refusing unknown fields and
// trailing data.
func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("trailing data after JSON value")
	}
	return nil
}

// authenticate checks a signed action: well-formed envelope and payload,
// expected action, known actor whose ledger key verifies the signature,
// issuedAt within IssuedAtWindow of the transaction time, active actor in
// the required role, and a nonce never used by that actor (then consumed).
// p receives the decoded payload.
func (t *tx) authenticate(envelopeJSON, action, role string, p actionPayload) (*Actor, error) {
	env, err := envelope.Parse([]byte(envelopeJSON))
	if err != nil {
		return nil, invalid("malformed envelope")
	}
	if err := decodeStrict(env.Payload, p); err != nil {
		return nil, invalid("malformed %s payload: %v", action, jsonProblem(err))
	}
	h := p.header()
	if h.Action != action {
		return nil, invalid("payload action must be %q", action)
	}
	if !validID(h.ActorID) {
		return nil, invalid("actorId is malformed")
	}
	if !validNonce(h.Nonce) {
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
		return nil, refuse(CodeUnauthenticated, "unknown actor %s", h.ActorID)
	}
	pub, err := envelope.ParsePublicKey([]byte(actor.PublicKey))
	if err != nil {
		return nil, fmt.Errorf("ledger key of actor %s: %w", actor.ID, err)
	}
	if err := env.Verify(pub); err != nil {
		return nil, refuse(CodeUnauthenticated, "bad signature for actor %s", actor.ID)
	}
	if d := issuedAt.Sub(t.time); d > IssuedAtWindow || d < -IssuedAtWindow {
		return nil, refuse(CodeUnauthenticated, "stale issuedAt: more than %s from the transaction time", IssuedAtWindow)
	}
	if actor.Status != StatusActive {
		return nil, refuse(CodeForbidden, "actor %s is not active", actor.ID)
	}
	if actor.Role != role {
		return nil, refuse(CodeForbidden, "%s requires role %s, actor %s is %s", action, role, actor.ID, actor.Role)
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
		return nil, refuse(CodeConflict, "replayed nonce")
	}
	if err := t.stub.PutState(nk, []byte(t.id)); err != nil {
		return nil, fmt.Errorf("write nonce: %w", err)
	}
	return actor, nil
}

// jsonProblem describes a JSON decoding error without echoing input values.
func jsonProblem(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("syntax error at offset %d", syn.Offset)
	case errors.As(err, &typ):
		return fmt.Sprintf("field %s has the wrong type", typ.Field)
	}
	msg := err.Error()
	if len(msg) > 120 {
		msg = msg[:120]
	}
	return msg
}
