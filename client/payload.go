package client

import (
	"crypto/ecdsa"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/medprov/medprov/envelope"
	"github.com/medprov/medprov/wire"
)

// NewNonce returns the standard base64 encoding of NonceBytes bytes from
// crypto/rand.
func NewNonce() (string, error) {
	b := make([]byte, wire.NonceBytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("nonce: %w", err)
	}
	return base64.StdEncoding.EncodeToString(b), nil
}

// NewReading builds a reading payload with a fresh random nonce. value is
// marshalled to JSON and must be a number, array or object.
func NewReading(deviceID string, seq uint64, typ, unit string, value any, measuredAt time.Time) (wire.ReadingPayload, error) {
	v, err := json.Marshal(value)
	if err != nil {
		return wire.ReadingPayload{}, fmt.Errorf("reading value: %w", err)
	}
	if !wire.ValidValue(v) {
		return wire.ReadingPayload{}, fmt.Errorf("%w: got %.20s", ErrBadValue, v)
	}
	nonce, err := NewNonce()
	if err != nil {
		return wire.ReadingPayload{}, err
	}
	return wire.ReadingPayload{
		DeviceID:   deviceID,
		Seq:        seq,
		Type:       typ,
		Unit:       unit,
		Value:      v,
		MeasuredAt: measuredAt.UTC().Format(time.RFC3339Nano),
		Nonce:      nonce,
	}, nil
}

// ErrBadValue reports a reading value that is not a JSON number, array or
// object.
var ErrBadValue = errors.New("reading value must be a JSON number, array or object")

// SignReading marshals p and signs it with the device key.
func SignReading(deviceKey *ecdsa.PrivateKey, p wire.ReadingPayload) (envelope.Envelope, error) {
	return SignPayload(deviceKey, p)
}

// SignPayload marshals v to JSON and signs the bytes with key.
func SignPayload(key *ecdsa.PrivateKey, v any) (envelope.Envelope, error) {
	if key == nil {
		return envelope.Envelope{}, errors.New("sign: no key")
	}
	b, err := json.Marshal(v)
	if err != nil {
		return envelope.Envelope{}, fmt.Errorf("marshal payload: %w", err)
	}
	return envelope.Sign(key, b)
}

// NewActionHeader returns a header for action by actorID issued at now,
// with a fresh random nonce.
func NewActionHeader(action, actorID string, now time.Time) (wire.ActionHeader, error) {
	nonce, err := NewNonce()
	if err != nil {
		return wire.ActionHeader{}, err
	}
	return wire.ActionHeader{
		Action:   action,
		ActorID:  actorID,
		IssuedAt: now.UTC().Format(time.RFC3339),
		Nonce:    nonce,
	}, nil
}

// SignedGetHeader returns the X-Medprov-Signature value for a GET of
// pathAndQuery by actorID: base64 of the JSON envelope of an http.get action.
func SignedGetHeader(key *ecdsa.PrivateKey, actorID, pathAndQuery string, now time.Time) (string, error) {
	h, err := NewActionHeader(wire.ActionHTTPGet, actorID, now)
	if err != nil {
		return "", err
	}
	env, err := SignPayload(key, wire.HTTPGetAction{ActionHeader: h, Method: "GET", Path: pathAndQuery})
	if err != nil {
		return "", err
	}
	b, err := json.Marshal(env)
	if err != nil {
		return "", fmt.Errorf("marshal envelope: %w", err)
	}
	return base64.StdEncoding.EncodeToString(b), nil
}
