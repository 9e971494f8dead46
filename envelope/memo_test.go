package envelope_test

import (
	"crypto/ecdsa"
	"crypto/sha256"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/medprov/medprov/envelope"
	"github.com/medprov/medprov/internal/testkit"
)

func TestVerifyMemo(t *testing.T) {
	k := testkit.MustKey(t)
	other := testkit.MustKey(t)
	sign := func(msg string) ([]byte, []byte) {
		env := testkit.MustSign(t, k, []byte(msg))
		d := sha256.Sum256([]byte(msg))
		return d[:], env.Signature
	}
	m := envelope.NewVerifyMemo(2)
	d1, s1 := sign("one")
	d2, s2 := sign("two")
	d3, s3 := sign("three")
	tests := []struct {
		name   string
		digest []byte
		sig    []byte
		pub    *ecdsa.PublicKey
		want   error
	}{
		{"a good signature verifies", d1, s1, &k.PublicKey, nil},
		{"the same triple verifies again from the memo", d1, s1, &k.PublicKey, nil},
		{"a remembered signature under another key is still refused", d1, s1, &other.PublicKey, envelope.ErrBadSignature},
		{"a remembered signature over another digest is still refused", d2, s1, &k.PublicKey, envelope.ErrBadSignature},
		{"a bad signature is refused and not remembered", d1, s2, &k.PublicKey, envelope.ErrBadSignature},
		{"the bad signature is refused again", d1, s2, &k.PublicKey, envelope.ErrBadSignature},
		{"new triples evict the oldest", d2, s2, &k.PublicKey, nil},
		{"a third triple fits by eviction", d3, s3, &k.PublicKey, nil},
		{"an evicted triple verifies for real", d1, s1, &k.PublicKey, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := m.VerifyDigest(tt.pub, tt.digest, tt.sig)
			if tt.want == nil {
				require.NoError(t, err, "VerifyDigest")
				return
			}
			require.ErrorIs(t, err, tt.want, "VerifyDigest")
		})
	}
}
