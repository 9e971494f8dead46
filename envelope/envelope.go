// Package envelope implements medprov's signed envelope: the wire format every
// device reading and every actor action travels in.
//
// An envelope is {"payload": base64(bytes), "signature": base64(DER ECDSA)}
// where the signature is ECDSA P-256 over SHA-256(payload), exactly what
// `openssl dgst -sha256 -sign key.pem` produces. Keys are P-256 only; public
// keys travel as PEM "PUBLIC KEY" (PKIX).
//
// An actor action may instead be signed by a passkey (WebAuthn, ES256):
// {"payload": base64(bytes), "webauthn": {...}}, whose assertion's
// challenge is SHA-256(payload). ParseSigned reads either form;
// VerifyAssertion checks a passkey's assertion, and ParseCOSEKey turns the
// COSE key of a registration into the PEM key the ledger stores.
package envelope

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"

	"github.com/medprov/medprov/wire"
)

// MaxPublicKeyPEM bounds the size of a PEM public key accepted by ParsePublicKey.
const MaxPublicKeyPEM = 1024

var (
	// ErrBadSignature reports a signature that does not verify under the key.
	ErrBadSignature = errors.New("signature does not verify")
	// ErrBadKey reports a key that is not a well-formed ECDSA P-256 key.
	ErrBadKey = errors.New("not an ECDSA P-256 key")
	// ErrMalformed reports an envelope that is not well-formed JSON with a
	// non-empty payload and signature.
	ErrMalformed = errors.New("malformed envelope")
)

// Envelope is a payload and the signature over its SHA-256 digest. Payload
// and Signature marshal as standard base64 strings.
type Envelope struct {
	Payload   []byte `json:"payload"`
	Signature []byte `json:"signature"`
}

// Parse decodes the JSON form of an envelope with medprov's strict decoder
// ([wire.DecodeStrict]): exactly one object whose members are "payload" and
// "signature", each once, spelled exactly so, valid UTF-8, nothing after
// it, and both values canonical standard base64 (padded, no line breaks,
// zero padding bits), so one envelope text carries one payload and one
// signature for every reader. It returns an error wrapping ErrMalformed
// (and the broken rule, e.g. [wire.ErrDuplicateMember]) otherwise, or if
// either value is empty.
func Parse(data []byte) (Envelope, error) {
	var w struct {
		Payload   canonicalBase64 `json:"payload"`
		Signature canonicalBase64 `json:"signature"`
	}
	if err := wire.DecodeStrict(data, &w); err != nil {
		return Envelope{}, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if len(w.Payload) == 0 || len(w.Signature) == 0 {
		return Envelope{}, fmt.Errorf("%w: payload and signature are required", ErrMalformed)
	}
	return Envelope{Payload: w.Payload, Signature: w.Signature}, nil
}

var (
	// errBase64 reports a value that is not a JSON string of canonical
	// base64: standard base64, or base64url without padding in a webauthn
	// member.
	errBase64 = errors.New("not canonical base64")
	// strictBase64 is standard base64 that refuses non-zero padding bits.
	strictBase64 = base64.StdEncoding.Strict()
)

// canonicalBase64 is bytes carried as canonical standard base64 (padded,
// no line breaks, zero padding bits). The standard decoder skips CR and LF
// and, unless strict, ignores padding bits, so several texts would decode
// to the same bytes.
type canonicalBase64 []byte

// UnmarshalJSON implements json.Unmarshaler.
func (b *canonicalBase64) UnmarshalJSON(data []byte) error {
	out, err := decodeCanonical(data, strictBase64)
	if err != nil {
		return err
	}
	*b = out
	return nil
}

// Sign signs payload with key and returns the envelope.
func Sign(key *ecdsa.PrivateKey, payload []byte) (Envelope, error) {
	digest := sha256.Sum256(payload)
	sig, err := ecdsa.SignASN1(rand.Reader, key, digest[:])
	if err != nil {
		return Envelope{}, fmt.Errorf("sign: %w", err)
	}
	return Envelope{Payload: payload, Signature: sig}, nil
}

// Hash returns SHA-256(payload), the digest the signature covers.
func (e Envelope) Hash() [sha256.Size]byte { return sha256.Sum256(e.Payload) }

// Verify checks the signature over SHA-256(payload) against pub. It returns
// ErrBadSignature if it does not verify.
func (e Envelope) Verify(pub *ecdsa.PublicKey) error {
	h := e.Hash()
	return VerifyDigest(pub, h[:], e.Signature)
}

// VerifyDigest checks a DER ECDSA signature over a SHA-256 digest. It returns
// ErrBadSignature if it does not verify.
func VerifyDigest(pub *ecdsa.PublicKey, digest, sig []byte) error {
	if pub == nil || len(digest) != sha256.Size || !ecdsa.VerifyASN1(pub, digest, sig) {
		return ErrBadSignature
	}
	return nil
}

// GenerateKey returns a fresh ECDSA P-256 private key.
func GenerateKey() (*ecdsa.PrivateKey, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	return k, nil
}

// ParsePublicKey parses a PEM "PUBLIC KEY" (PKIX) block holding an ECDSA
// P-256 key. Anything else returns an error wrapping ErrBadKey.
func ParsePublicKey(pemBytes []byte) (*ecdsa.PublicKey, error) {
	if len(pemBytes) == 0 || len(pemBytes) > MaxPublicKeyPEM {
		return nil, fmt.Errorf("%w: PEM missing or too large", ErrBadKey)
	}
	block, _ := pem.Decode(pemBytes)
	if block == nil || block.Type != "PUBLIC KEY" {
		return nil, fmt.Errorf("%w: expected a PEM PUBLIC KEY block", ErrBadKey)
	}
	k, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadKey, err)
	}
	pub, ok := k.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		return nil, fmt.Errorf("%w: key is not ECDSA P-256", ErrBadKey)
	}
	return pub, nil
}

// MarshalPublicKey encodes pub as PEM "PUBLIC KEY" (PKIX).
func MarshalPublicKey(pub *ecdsa.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("marshal public key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// MarshalPrivateKey encodes key as PEM "PRIVATE KEY" (PKCS#8), the form
// `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256` writes.
func MarshalPrivateKey(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("marshal private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// ParsePrivateKey parses a PEM ECDSA P-256 private key, either PKCS#8
// ("PRIVATE KEY") or SEC 1 ("EC PRIVATE KEY", as `openssl ecparam -genkey`
// writes). Anything else returns an error wrapping ErrBadKey.
func ParsePrivateKey(pemBytes []byte) (*ecdsa.PrivateKey, error) {
	var block *pem.Block
	rest := pemBytes
	for {
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, fmt.Errorf("%w: no PEM private key block", ErrBadKey)
		}
		if block.Type == "PRIVATE KEY" || block.Type == "EC PRIVATE KEY" {
			break
		}
	}
	var key *ecdsa.PrivateKey
	if block.Type == "EC PRIVATE KEY" {
		k, err := x509.ParseECPrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBadKey, err)
		}
		key = k
	} else {
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBadKey, err)
		}
		ek, ok := k.(*ecdsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("%w: key is not ECDSA", ErrBadKey)
		}
		key = ek
	}
	if key.Curve != elliptic.P256() {
		return nil, fmt.Errorf("%w: curve is not P-256", ErrBadKey)
	}
	return key, nil
}
