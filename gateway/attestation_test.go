package gateway

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/medprov/medprov/envelope"
	"github.com/medprov/medprov/internal/testkit"
	"github.com/medprov/medprov/wire"
)

// cborText and cborBytes encode a CBOR text or byte string (short forms).
func cborText(s string) []byte  { return cborHead(3, len(s), []byte(s)) }
func cborBytes(b []byte) []byte { return cborHead(2, len(b), b) }

func cborHead(major byte, n int, body []byte) []byte {
	var out []byte
	switch {
	case n < 24:
		out = []byte{major<<5 | byte(n)}
	case n < 256:
		out = []byte{major<<5 | 24, byte(n)}
	default:
		out = binary.BigEndian.AppendUint16([]byte{major<<5 | 25}, uint16(n))
	}
	return append(out, body...)
}

// attestationWith re-encodes the "none" attestation object of a software
// registration with format fmtName and statement stmt (CBOR map bytes).
func attestationWith(t *testing.T, noneAtt []byte, fmtName string, stmt []byte) []byte {
	t.Helper()
	att, err := parseAttestationObject(noneAtt)
	require.NoError(t, err)
	out := []byte{0xa3}
	out = append(out, cborText("fmt")...)
	out = append(out, cborText(fmtName)...)
	out = append(out, cborText("attStmt")...)
	out = append(out, stmt...)
	out = append(out, cborText("authData")...)
	return append(out, cborBytes(att.authData)...)
}

// selfStatement is a packed self-attestation statement {alg: -7, sig}
// signed by key over authData || SHA-256(clientDataJSON).
func selfStatement(t *testing.T, key *ecdsa.PrivateKey, noneAtt, clientDataJSON []byte, extra ...byte) []byte {
	t.Helper()
	att, err := parseAttestationObject(noneAtt)
	require.NoError(t, err)
	sig, err := ecdsa.SignASN1(rand.Reader, key, envelope.AssertionDigest(att.authData, clientDataJSON))
	require.NoError(t, err)
	n := byte(2)
	if len(extra) > 0 {
		n = 3
	}
	out := []byte{0xa0 | n}
	out = append(out, cborText("alg")...)
	out = append(out, 0x26) // -7
	out = append(out, cborText("sig")...)
	out = append(out, cborBytes(sig)...)
	return append(out, extra...)
}

func TestVerifyRegistration(t *testing.T) {
	rp := envelope.RelyingParty{ID: "localhost", Origins: []string{"http://localhost:8080"}}
	challenge := testkit.RandomBytes(t, 32)
	auth := testkit.NewAuthenticator(t, rp.ID, rp.Origins[0])
	cdj, none := auth.Register(t, challenge)
	reg := func(att []byte) registration {
		return registration{CredentialID: auth.CredentialID, ClientDataJSON: cdj, AttestationObject: att}
	}
	x5c := append(cborText("x5c"), 0x81) // x5c: [h'00']
	x5c = append(x5c, cborBytes([]byte{0})...)
	tests := []struct {
		name string
		att  []byte
		want wire.Code // "" accepted
	}{
		{`a "none" attestation is accepted`, none, ""},
		{"a packed self attestation is accepted", attestationWith(t, none, "packed", selfStatement(t, auth.Key, none, cdj)), ""},
		{"a packed self attestation signed by another key is unauthenticated",
			attestationWith(t, none, "packed", selfStatement(t, testkit.MustKey(t), none, cdj)), wire.CodeUnauthenticated},
		{"a packed attestation with a certificate is invalid",
			attestationWith(t, none, "packed", selfStatement(t, auth.Key, none, cdj, x5c...)), wire.CodeInvalid},
		{`a "none" attestation with a statement is invalid`,
			attestationWith(t, none, "none", selfStatement(t, auth.Key, none, cdj)), wire.CodeInvalid},
		{"another attestation format is invalid", attestationWith(t, none, "tpm", []byte{0xa0}), wire.CodeInvalid},
		{"a truncated attestation object is invalid", none[:len(none)-1], wire.CodeInvalid},
		{"an attestation object with trailing bytes is invalid", append(bytes.Clone(none), 0), wire.CodeInvalid},
		{"an attestation object that is not a map is invalid", []byte{0x80}, wire.CodeInvalid},
		{"an indefinite-length map is invalid", []byte{0xbf, 0xff}, wire.CodeInvalid},
		{"a tagged item is invalid", []byte{0xc0, 0x00}, wire.CodeInvalid},
		{"a map claiming more entries than bytes is invalid", []byte{0xbb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, wire.CodeInvalid},
		{"deep nesting is invalid", bytes.Repeat([]byte{0x81}, 64), wire.CodeInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := verifyRegistration(rp, challenge, reg(tt.att))
			if tt.want == "" {
				require.NoError(t, err)
				assert.Equal(t, base64.RawURLEncoding.EncodeToString(auth.CredentialID), got.CredentialID)
				assert.Equal(t, testkit.PublicPEM(t, auth.Key), got.PublicKey)
				return
			}
			var ae *apiError
			require.True(t, errors.As(err, &ae), "error %v is not an API error", err)
			assert.Equal(t, tt.want, ae.Code, "%s", ae.Message)
		})
	}
}

func FuzzParseAttestationObject(f *testing.F) {
	f.Add([]byte{0xa3, 0x63, 'f', 'm', 't', 0x64, 'n', 'o', 'n', 'e'})
	f.Add([]byte{0x9f, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		att, err := parseAttestationObject(b)
		if err != nil {
			return
		}
		if ad, err := parseAttestedAuthData(att.authData); err == nil {
			assert.NotEmpty(t, ad.coseKey, "authData accepted without a credential key")
		}
	})
}
