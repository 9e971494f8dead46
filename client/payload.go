package client

import (
	"crypto/ecdsa"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/medprov/medprov/envelope"
)

// NonceBytes is the number of random bytes in every nonce this package
// makes (128 bits, the minimum the design requires).
const NonceBytes = 16

// Action names of the signed actor actions.
const (
	ActionDeviceRegister = "device.register"
	ActionDeviceRevoke   = "device.revoke"
	ActionConsentGrant   = "consent.grant"
	ActionConsentRevoke  = "consent.revoke"
	ActionAccessRequest  = "access.request"
	ActionHTTPGet        = "http.get"
)

// SignatureHeader carries a signed GET request's envelope (base64 JSON).
const SignatureHeader = "X-Medprov-Signature"

// NewNonce returns the standard base64 encoding of NonceBytes bytes from
// crypto/rand.
func NewNonce() (string, error) {
	b := make([]byte, NonceBytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("nonce: %w", err)
	}
	return base64.StdEncoding.EncodeToString(b), nil
}

// ReadingPayload is the reading JSON a device signs. Its fields marshal in
// the wire order {deviceId, seq, type, unit, value, measuredAt, nonce}.
type ReadingPayload struct {
	DeviceID string `json:"deviceId"`
	Seq      uint64 `json:"seq"`
	Type     string `json:"type"`
	Unit     string `json:"unit"`
	// Value is a JSON number, array or object.
	Value json.RawMessage `json:"value"`
	// MeasuredAt is RFC 3339.
	MeasuredAt string `json:"measuredAt"`
	// Nonce is base64 of at least 16 random bytes, so the payload's hash
	// cannot be brute-forced from the ledger.
	Nonce string `json:"nonce"`
}

// ReadingID returns the ledger id of the reading, "<deviceId>:<seq>".
func (p ReadingPayload) ReadingID() string {
	return p.DeviceID + ":" + strconv.FormatUint(p.Seq, 10)
}

// NewReading builds a reading payload with a fresh random nonce. value is
// marshalled to JSON and must be a number, array or object.
func NewReading(deviceID string, seq uint64, typ, unit string, value any, measuredAt time.Time) (ReadingPayload, error) {
	v, err := json.Marshal(value)
	if err != nil {
		return ReadingPayload{}, fmt.Errorf("reading value: %w", err)
	}
	if err := checkValue(v); err != nil {
		return ReadingPayload{}, err
	}
	nonce, err := NewNonce()
	if err != nil {
		return ReadingPayload{}, err
	}
	return ReadingPayload{
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

func checkValue(v json.RawMessage) error {
	if len(v) == 0 {
		return ErrBadValue
	}
	switch c := v[0]; {
	case c == '[' || c == '{' || c == '-' || (c >= '0' && c <= '9'):
		return nil
	default:
		return fmt.Errorf("%w: got %.20s", ErrBadValue, v)
	}
}

// SignReading marshals p and signs it with the device key.
func SignReading(deviceKey *ecdsa.PrivateKey, p ReadingPayload) (envelope.Envelope, error) {
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

// ActionHeader is the part every actor action payload carries. Embed it in
// an action's payload struct; its fields marshal first.
type ActionHeader struct {
	Action  string `json:"action"`
	ActorID string `json:"actorId"`
	// IssuedAt is RFC 3339; the ledger accepts it within 5 minutes of the
	// transaction time.
	IssuedAt string `json:"issuedAt"`
	// Nonce is accepted once per actor, ever.
	Nonce string `json:"nonce"`
}

// NewActionHeader returns a header for action by actorID issued at now,
// with a fresh random nonce.
func NewActionHeader(action, actorID string, now time.Time) (ActionHeader, error) {
	nonce, err := NewNonce()
	if err != nil {
		return ActionHeader{}, err
	}
	return ActionHeader{
		Action:   action,
		ActorID:  actorID,
		IssuedAt: now.UTC().Format(time.RFC3339),
		Nonce:    nonce,
	}, nil
}

// DeviceRegisterAction is the payload of device.register (signer: operator).
type DeviceRegisterAction struct {
	ActionHeader
	DeviceID   string `json:"deviceId"`
	PatientID  string `json:"patientId"`
	DeviceType string `json:"deviceType"`
	PublicKey  string `json:"publicKey"`
}

// DeviceRevokeAction is the payload of device.revoke (signer: the operator
// that registered the device).
type DeviceRevokeAction struct {
	ActionHeader
	DeviceID string `json:"deviceId"`
}

// ConsentGrantAction is the payload of consent.grant (signer: the patient).
type ConsentGrantAction struct {
	ActionHeader
	GranteeID string   `json:"granteeId"`
	Purpose   string   `json:"purpose"`
	DataTypes []string `json:"dataTypes"`
	NotBefore string   `json:"notBefore"`
	NotAfter  string   `json:"notAfter"`
}

// ConsentRevokeAction is the payload of consent.revoke (signer: the patient).
type ConsentRevokeAction struct {
	ActionHeader
	ConsentID string `json:"consentId"`
}

// AccessRequestAction is the payload of access.request (signer: researcher).
type AccessRequestAction struct {
	ActionHeader
	PatientID string   `json:"patientId"`
	Purpose   string   `json:"purpose"`
	DataTypes []string `json:"dataTypes"`
	From      string   `json:"from"`
	To        string   `json:"to"`
	Cursor    string   `json:"cursor,omitempty"`
	Limit     int      `json:"limit,omitempty"`
}

// HTTPGetAction is the payload of a signed GET: the method and the request
// path including its query, exactly as sent.
type HTTPGetAction struct {
	ActionHeader
	Method string `json:"method"`
	Path   string `json:"path"`
}

// SignedGetHeader returns the X-Medprov-Signature value for a GET of
// pathAndQuery by actorID: base64 of the JSON envelope of an http.get action.
func SignedGetHeader(key *ecdsa.PrivateKey, actorID, pathAndQuery string, now time.Time) (string, error) {
	h, err := NewActionHeader(ActionHTTPGet, actorID, now)
	if err != nil {
		return "", err
	}
	env, err := SignPayload(key, HTTPGetAction{ActionHeader: h, Method: "GET", Path: pathAndQuery})
	if err != nil {
		return "", err
	}
	b, err := json.Marshal(env)
	if err != nil {
		return "", fmt.Errorf("marshal envelope: %w", err)
	}
	return base64.StdEncoding.EncodeToString(b), nil
}
