package envelope

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"encoding/binary"
	"fmt"
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
	r := cborReader{b: b}
	major, n, err := r.head()
	if err != nil {
		return nil, err
	}
	if major != cborMap || n == 0 || n > 5 {
		return nil, fmt.Errorf("%w: COSE key must be a map of 5 EC2 parameters", ErrBadKey)
	}
	ints := map[int64]int64{}
	bytesOf := map[int64][]byte{}
	for range n {
		label, err := r.int()
		if err != nil {
			return nil, err
		}
		if _, dup := ints[label]; dup {
			return nil, fmt.Errorf("%w: COSE label %d appears twice", ErrBadKey, label)
		}
		if _, dup := bytesOf[label]; dup {
			return nil, fmt.Errorf("%w: COSE label %d appears twice", ErrBadKey, label)
		}
		switch label {
		case coseKty, coseAlg, coseCrv:
			v, err := r.int()
			if err != nil {
				return nil, err
			}
			ints[label] = v
		case coseX, coseY:
			v, err := r.bytes()
			if err != nil {
				return nil, err
			}
			bytesOf[label] = v
		default:
			return nil, fmt.Errorf("%w: COSE label %d is not an EC2 P-256 parameter", ErrBadKey, label)
		}
	}
	if r.i != len(b) {
		return nil, fmt.Errorf("%w: data after the COSE key", ErrBadKey)
	}
	kty, okKty := ints[coseKty]
	alg, okAlg := ints[coseAlg]
	crv, okCrv := ints[coseCrv]
	if !okKty || kty != coseEC2 || !okAlg || alg != coseES256 || !okCrv || crv != coseP256 {
		return nil, fmt.Errorf("%w: COSE key is not kty EC2, alg ES256, crv P-256", ErrBadKey)
	}
	x, y := bytesOf[coseX], bytesOf[coseY]
	if len(x) != 32 || len(y) != 32 {
		return nil, fmt.Errorf("%w: COSE key coordinates must be 32 bytes each", ErrBadKey)
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadKey, err)
	}
	return pub, nil
}

// CBOR major types a COSE EC2 key uses.
const (
	cborUint  = 0
	cborNeg   = 1
	cborBytes = 2
	cborMap   = 5
)

// cborReader reads the definite-length, shortest-form CBOR subset of a
// COSE key.
type cborReader struct {
	b []byte
	i int
}

// head reads an item's major type and argument (a value, a length or a
// count). Indefinite lengths and non-shortest arguments are refused.
func (r *cborReader) head() (major byte, arg uint64, err error) {
	if r.i >= len(r.b) {
		return 0, 0, fmt.Errorf("%w: COSE key is truncated", ErrBadKey)
	}
	ib := r.b[r.i]
	r.i++
	major, info := ib>>5, ib&0x1f
	var size int
	switch {
	case info < 24:
		return major, uint64(info), nil
	case info == 24:
		size = 1
	case info == 25:
		size = 2
	case info == 26:
		size = 4
	case info == 27:
		size = 8
	default:
		return 0, 0, fmt.Errorf("%w: COSE key uses indefinite or reserved CBOR lengths", ErrBadKey)
	}
	if len(r.b)-r.i < size {
		return 0, 0, fmt.Errorf("%w: COSE key is truncated", ErrBadKey)
	}
	var buf [8]byte
	copy(buf[8-size:], r.b[r.i:r.i+size])
	r.i += size
	arg = binary.BigEndian.Uint64(buf[:])
	if min := [...]uint64{1: 24, 2: 1 << 8, 4: 1 << 16, 8: 1 << 32}[size]; arg < min {
		return 0, 0, fmt.Errorf("%w: COSE key is not in canonical CBOR", ErrBadKey)
	}
	return major, arg, nil
}

// int reads a CBOR integer of at most 32 bits' magnitude.
func (r *cborReader) int() (int64, error) {
	major, arg, err := r.head()
	if err != nil {
		return 0, err
	}
	if arg > 1<<32 || major != cborUint && major != cborNeg {
		return 0, fmt.Errorf("%w: COSE key holds an unexpected item where an integer belongs", ErrBadKey)
	}
	if major == cborNeg {
		return -1 - int64(arg), nil
	}
	return int64(arg), nil
}

// bytes reads a CBOR byte string.
func (r *cborReader) bytes() ([]byte, error) {
	major, n, err := r.head()
	if err != nil {
		return nil, err
	}
	if major != cborBytes {
		return nil, fmt.Errorf("%w: COSE key holds an unexpected item where a byte string belongs", ErrBadKey)
	}
	if n > uint64(len(r.b)-r.i) {
		return nil, fmt.Errorf("%w: COSE key is truncated", ErrBadKey)
	}
	v := r.b[r.i : r.i+int(n)]
	r.i += int(n)
	return v, nil
}
