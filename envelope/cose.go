package envelope

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"fmt"

	"github.com/medprov/medprov/internal/cbor"
)

// COSE labels and values of an EC2 P-256 ES256 key (RFC 9052/9053).
const (
	coseKty   = 1
	coseAlg   = 3
	coseCrv   = -1
	coseX     = -2
	coseY     = -3
	coseEC2   = 2
	coseES256 = -7
	coseP256  = 1
)

// ParseCOSEKey parses the credential public key of a WebAuthn registration
// (attestedCredentialData.credentialPublicKey): a COSE_Key in CTAP2's
// canonical CBOR holding an EC2 key, alg ES256 (-7), curve P-256 (1), and
// 32-byte x and y coordinates of a point on the curve, with no other
// parameter (WebAuthn forbids optional ones). Each label appears once;
// integers and lengths use their shortest encoding; nothing follows the
// map. Anything else, including an RS256 or EdDSA key, returns an error
// wrapping ErrBadKey. Registering a passkey stores the result as PEM
// ([MarshalPublicKey]).
func ParseCOSEKey(b []byte) (*ecdsa.PublicKey, error) {
	d := cbor.NewDecoder(b)
	d.Shortest = true
	v, err := d.Item()
	if err != nil {
		return nil, fmt.Errorf("%w: COSE key: %w", ErrBadKey, err)
	}
	if d.Offset() != len(b) {
		return nil, fmt.Errorf("%w: data after the COSE key", ErrBadKey)
	}
	m, ok := v.(map[any]any)
	if !ok || len(m) != 5 {
		return nil, fmt.Errorf("%w: COSE key must be a map of exactly 5 EC2 parameters", ErrBadKey)
	}
	kty, okKty := m[int64(coseKty)].(int64)
	alg, okAlg := m[int64(coseAlg)].(int64)
	crv, okCrv := m[int64(coseCrv)].(int64)
	if !okKty || kty != coseEC2 || !okAlg || alg != coseES256 || !okCrv || crv != coseP256 {
		return nil, fmt.Errorf("%w: COSE key is not kty EC2, alg ES256, crv P-256", ErrBadKey)
	}
	x, okX := m[int64(coseX)].([]byte)
	y, okY := m[int64(coseY)].([]byte)
	if !okX || !okY || len(x) != 32 || len(y) != 32 {
		return nil, fmt.Errorf("%w: COSE key coordinates must be 32-byte strings", ErrBadKey)
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadKey, err)
	}
	return pub, nil
}
