package envelope

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/medprov/medprov/wire"
)

// Passkey-signed envelopes. A person's action may be signed by a WebAuthn
// credential (a passkey) instead of a PEM key:
//
//	{"payload": base64(bytes), "webauthn": {"credentialId", "authenticatorData",
//	  "clientDataJSON", "signature"}}
//
// with the four webauthn members in base64url without padding. The
// authenticator signs authenticatorData || SHA-256(clientDataJSON), and
// clientDataJSON's challenge is [Challenge](payload), so the signature
// covers the payload.

// Flags of WebAuthn authenticator data.
const (
	// FlagUserPresent (UP): the user touched the authenticator.
	FlagUserPresent = 0x01
	// FlagUserVerified (UV): the authenticator verified the user (PIN,
	// biometrics): medprov's second factor.
	FlagUserVerified = 0x04
	// FlagAttestedData (AT): attested credential data follows; only
	// registrations carry it.
	FlagAttestedData = 0x40
	// FlagExtensionData (ED): extension outputs (CBOR) follow.
	FlagExtensionData = 0x80
)

// ClientDataGet is the clientDataJSON type of an assertion
// (navigator.credentials.get); a registration's is "webauthn.create".
const ClientDataGet = "webauthn.get"

// Reasons VerifyAssertion refuses a well-formed assertion. A malformed one
// (client data that is not strict JSON, short authenticator data) is
// ErrMalformed instead; a signature that does not verify, ErrBadSignature.
var (
	ErrClientDataType   = errors.New("client data type is not webauthn.get")
	ErrChallenge        = errors.New("challenge is not base64url(SHA-256(payload))")
	ErrOrigin           = errors.New("origin is not allowed")
	ErrCrossOrigin      = errors.New("assertion was made in a cross-origin frame")
	ErrRPID             = errors.New("authenticator data is for another relying party")
	ErrUserPresence     = errors.New("user presence flag (UP) is not set")
	ErrUserVerification = errors.New("user verification flag (UV) is not set")
)

// Assertion is a WebAuthn assertion: the credential id and the
// authenticator's response (navigator.credentials.get). It marshals as
// the "webauthn" member of a passkey envelope, every value base64url
// without padding.
type Assertion struct {
	CredentialID      []byte
	AuthenticatorData []byte
	ClientDataJSON    []byte
	Signature         []byte
}

// assertionJSON is the wire form of Assertion.
type assertionJSON struct {
	CredentialID      canonicalBase64URL `json:"credentialId"`
	AuthenticatorData canonicalBase64URL `json:"authenticatorData"`
	ClientDataJSON    canonicalBase64URL `json:"clientDataJSON"`
	Signature         canonicalBase64URL `json:"signature"`
}

// MarshalJSON implements json.Marshaler.
func (a Assertion) MarshalJSON() ([]byte, error) {
	enc := base64.RawURLEncoding.EncodeToString
	return json.Marshal(struct {
		CredentialID      string `json:"credentialId"`
		AuthenticatorData string `json:"authenticatorData"`
		ClientDataJSON    string `json:"clientDataJSON"`
		Signature         string `json:"signature"`
	}{enc(a.CredentialID), enc(a.AuthenticatorData), enc(a.ClientDataJSON), enc(a.Signature)})
}

// Signed is the envelope of an actor action, in either form: a plain
// envelope (Signature set: DER ECDSA over SHA-256(Payload) by the actor's
// PEM key) or a passkey envelope (WebAuthn set). Exactly one is set.
type Signed struct {
	Payload   []byte
	Signature []byte
	WebAuthn  *Assertion
}

// Envelope returns the plain envelope of s (meaningful when s.WebAuthn is
// nil).
func (s Signed) Envelope() Envelope { return Envelope{Payload: s.Payload, Signature: s.Signature} }

// MarshalJSON implements json.Marshaler: {"payload","signature"} for a
// plain envelope, {"payload","webauthn"} for a passkey envelope.
func (s Signed) MarshalJSON() ([]byte, error) {
	if s.WebAuthn == nil {
		return json.Marshal(s.Envelope())
	}
	return json.Marshal(struct {
		Payload  []byte    `json:"payload"`
		WebAuthn Assertion `json:"webauthn"`
	}{s.Payload, *s.WebAuthn})
}

// ParseSigned decodes the JSON form of an actor action envelope, either
// form, with the strict decoder ([wire.DecodeStrict]): an object with
// "payload" (canonical standard base64) and exactly one of "signature"
// (canonical standard base64; a plain envelope, as Parse reads it) or
// "webauthn" (an object of exactly the members credentialId,
// authenticatorData, clientDataJSON and signature, each canonical base64url
// without padding). The presence of a member tells the forms apart, so an
// envelope with both, or with neither, is malformed; so is an empty value.
// Errors wrap ErrMalformed.
func ParseSigned(data []byte) (Signed, error) {
	var w struct {
		Payload   canonicalBase64 `json:"payload"`
		Signature canonicalBase64 `json:"signature"`
		WebAuthn  json.RawMessage `json:"webauthn"`
	}
	if err := wire.DecodeStrict(data, &w); err != nil {
		return Signed{}, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if len(w.Payload) == 0 {
		return Signed{}, fmt.Errorf("%w: payload is required", ErrMalformed)
	}
	switch {
	case w.Signature != nil && w.WebAuthn != nil:
		return Signed{}, fmt.Errorf("%w: signature and webauthn are exclusive", ErrMalformed)
	case w.Signature != nil:
		if len(w.Signature) == 0 {
			return Signed{}, fmt.Errorf("%w: signature is empty", ErrMalformed)
		}
		return Signed{Payload: w.Payload, Signature: w.Signature}, nil
	case w.WebAuthn == nil:
		return Signed{}, fmt.Errorf("%w: signature or webauthn is required", ErrMalformed)
	}
	var a assertionJSON
	if err := wire.DecodeStrict(w.WebAuthn, &a); err != nil {
		return Signed{}, fmt.Errorf("%w: webauthn: %w", ErrMalformed, err)
	}
	if len(a.CredentialID) == 0 || len(a.AuthenticatorData) == 0 || len(a.ClientDataJSON) == 0 || len(a.Signature) == 0 {
		return Signed{}, fmt.Errorf("%w: webauthn needs credentialId, authenticatorData, clientDataJSON and signature", ErrMalformed)
	}
	return Signed{Payload: w.Payload, WebAuthn: &Assertion{
		CredentialID: a.CredentialID, AuthenticatorData: a.AuthenticatorData,
		ClientDataJSON: a.ClientDataJSON, Signature: a.Signature,
	}}, nil
}

// Challenge returns the WebAuthn challenge that binds an assertion to
// payload: base64url without padding of SHA-256(payload). A portal passes
// SHA-256(payload) as the challenge of navigator.credentials.get; the
// browser writes this text into clientDataJSON.
func Challenge(payload []byte) string {
	h := sha256.Sum256(payload)
	return base64.RawURLEncoding.EncodeToString(h[:])
}

// ClientData is what the ledger reads of a clientDataJSON.
type ClientData struct {
	Type        string
	Challenge   string
	Origin      string
	CrossOrigin bool
}

// ParseClientData reads a clientDataJSON strictly: one JSON object, valid
// UTF-8, no duplicate member name at any depth, nothing after it (the
// [wire.DecodeStrict] rules, so every reader sees the same type,
// challenge and origin), with string members "type", "challenge" and
// "origin" and, if present, a boolean "crossOrigin". Other members are
// allowed: browsers add some (topOrigin, and Chrome sometimes a member
// that warns against comparing client data with a template), and WebAuthn
// tells relying parties to ignore them. Errors wrap ErrMalformed.
func ParseClientData(b []byte) (ClientData, error) {
	var m map[string]json.RawMessage
	if err := wire.DecodeStrict(b, &m); err != nil {
		return ClientData{}, fmt.Errorf("%w: clientDataJSON: %s", ErrMalformed, wire.JSONProblem(err))
	}
	if m == nil {
		return ClientData{}, fmt.Errorf("%w: clientDataJSON is not an object", ErrMalformed)
	}
	var cd ClientData
	for _, f := range []struct {
		name string
		dst  *string
	}{{"type", &cd.Type}, {"challenge", &cd.Challenge}, {"origin", &cd.Origin}} {
		raw, ok := m[f.name]
		if !ok || len(raw) == 0 || raw[0] != '"' {
			return ClientData{}, fmt.Errorf("%w: clientDataJSON needs a string %s", ErrMalformed, f.name)
		}
		if err := json.Unmarshal(raw, f.dst); err != nil {
			return ClientData{}, fmt.Errorf("%w: clientDataJSON %s", ErrMalformed, f.name)
		}
	}
	if raw, ok := m["crossOrigin"]; ok {
		switch string(raw) {
		case "true":
			cd.CrossOrigin = true
		case "false":
		default:
			return ClientData{}, fmt.Errorf("%w: clientDataJSON crossOrigin must be a boolean", ErrMalformed)
		}
	}
	return cd, nil
}

// AuthenticatorData is what the ledger reads of an assertion's
// authenticator data: SHA-256 of the relying party id, the flags and the
// signature counter.
type AuthenticatorData struct {
	RPIDHash  [sha256.Size]byte
	Flags     byte
	SignCount uint32
}

// authDataLen is the length of authenticator data without attested
// credential data or extensions: rpIdHash (32), flags (1), signCount (4).
const authDataLen = sha256.Size + 1 + 4

// ParseAuthenticatorData reads an assertion's authenticator data. It must
// be exactly 37 bytes, or longer with the ED flag set (the extension
// outputs are covered by the signature and not read); the AT flag, which
// only registrations carry, is refused. Errors wrap ErrMalformed.
func ParseAuthenticatorData(b []byte) (AuthenticatorData, error) {
	if len(b) < authDataLen {
		return AuthenticatorData{}, fmt.Errorf("%w: authenticatorData is shorter than %d bytes", ErrMalformed, authDataLen)
	}
	var ad AuthenticatorData
	copy(ad.RPIDHash[:], b)
	ad.Flags = b[sha256.Size]
	ad.SignCount = binary.BigEndian.Uint32(b[sha256.Size+1:])
	if ad.Flags&FlagAttestedData != 0 {
		return AuthenticatorData{}, fmt.Errorf("%w: authenticatorData of an assertion carries attested credential data", ErrMalformed)
	}
	if ad.Flags&FlagExtensionData == 0 && len(b) != authDataLen {
		return AuthenticatorData{}, fmt.Errorf("%w: authenticatorData has trailing bytes", ErrMalformed)
	}
	if ad.Flags&FlagExtensionData != 0 && len(b) == authDataLen {
		return AuthenticatorData{}, fmt.Errorf("%w: authenticatorData flags extensions but has none", ErrMalformed)
	}
	return ad, nil
}

// RelyingParty is what an assertion must match: the relying party id its
// authenticator data names and the origins its client data may carry
// (compared byte for byte).
type RelyingParty struct {
	ID      string
	Origins []string
}

// VerifyAssertion checks that a is a passkey's signature of payload for
// rp, made with the credential key pub, in this order: clientDataJSON is
// well-formed ([ParseClientData]) with type "webauthn.get"
// (ErrClientDataType), challenge [Challenge](payload) (ErrChallenge), an
// origin in rp.Origins (ErrOrigin), not from a cross-origin frame
// (ErrCrossOrigin); authenticatorData is well-formed
// ([ParseAuthenticatorData]), its rpIdHash is SHA-256(rp.ID) (ErrRPID),
// UP and UV are set (ErrUserPresence, ErrUserVerification); and the
// signature, ASN.1 DER ECDSA (ES256), verifies under pub over
// SHA-256(authenticatorData || SHA-256(clientDataJSON)) (ErrBadSignature).
// Malformed input wraps ErrMalformed. It returns the authenticator data,
// whose SignCount the caller compares with the one it stored. The check
// depends on its arguments only: no clock, no randomness.
func VerifyAssertion(pub *ecdsa.PublicKey, rp RelyingParty, payload []byte, a Assertion) (AuthenticatorData, error) {
	cd, err := ParseClientData(a.ClientDataJSON)
	if err != nil {
		return AuthenticatorData{}, err
	}
	if cd.Type != ClientDataGet {
		return AuthenticatorData{}, ErrClientDataType
	}
	if subtle.ConstantTimeCompare([]byte(cd.Challenge), []byte(Challenge(payload))) != 1 {
		return AuthenticatorData{}, ErrChallenge
	}
	if !slices.Contains(rp.Origins, cd.Origin) {
		return AuthenticatorData{}, ErrOrigin
	}
	if cd.CrossOrigin {
		return AuthenticatorData{}, ErrCrossOrigin
	}
	ad, err := ParseAuthenticatorData(a.AuthenticatorData)
	if err != nil {
		return AuthenticatorData{}, err
	}
	if ad.RPIDHash != sha256.Sum256([]byte(rp.ID)) {
		return AuthenticatorData{}, ErrRPID
	}
	if ad.Flags&FlagUserPresent == 0 {
		return AuthenticatorData{}, ErrUserPresence
	}
	if ad.Flags&FlagUserVerified == 0 {
		return AuthenticatorData{}, ErrUserVerification
	}
	if err := VerifyDigest(pub, AssertionDigest(a.AuthenticatorData, a.ClientDataJSON), a.Signature); err != nil {
		return AuthenticatorData{}, err
	}
	return ad, nil
}

// AssertionDigest returns SHA-256(authenticatorData ||
// SHA-256(clientDataJSON)): the digest an ES256 assertion signature signs.
func AssertionDigest(authenticatorData, clientDataJSON []byte) []byte {
	cdHash := sha256.Sum256(clientDataJSON)
	h := sha256.New()
	h.Write(authenticatorData)
	h.Write(cdHash[:])
	return h.Sum(nil)
}

// canonicalBase64URL is bytes carried as canonical base64url without
// padding (no '=', no line breaks, zero padding bits).
type canonicalBase64URL []byte

// strictBase64URL is unpadded base64url that refuses non-zero padding
// bits.
var strictBase64URL = base64.RawURLEncoding.Strict()

// UnmarshalJSON implements json.Unmarshaler.
func (b *canonicalBase64URL) UnmarshalJSON(data []byte) error {
	out, err := decodeCanonical(data, strictBase64URL)
	if err != nil {
		return err
	}
	*b = out
	return nil
}

// decodeCanonical decodes a JSON string holding canonical text of enc:
// escapes are resolved first (every JSON reader sees the unescaped text);
// CR and LF, which Go's decoders skip, are refused.
func decodeCanonical(data []byte, enc *base64.Encoding) ([]byte, error) {
	if len(data) < 2 || data[0] != '"' {
		return nil, errBase64 // null, or not a string
	}
	text := data[1 : len(data)-1]
	if bytes.IndexByte(text, '\\') >= 0 { // escaped, e.g. "\/" for "/"
		var s string
		if err := json.Unmarshal(data, &s); err != nil {
			return nil, errBase64
		}
		text = []byte(s)
	}
	if bytes.IndexByte(text, '\r') >= 0 || bytes.IndexByte(text, '\n') >= 0 {
		return nil, errBase64
	}
	out := make([]byte, enc.DecodedLen(len(text)))
	n, err := enc.Decode(out, text)
	if err != nil {
		return nil, errBase64
	}
	return out[:n], nil
}
