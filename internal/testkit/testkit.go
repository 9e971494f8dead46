// Package testkit holds the helpers medprov's tests share: random bytes,
// keys, JSON and envelope construction. It is imported only by tests (by
// the envelope package's external tests only, which would otherwise form a
// cycle).
// Every helper fails the test through testify's require on error, so a
// test never proceeds on a value it could not build.
package testkit

import (
	"crypto/ecdsa"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/medprov/medprov/envelope"
)

// RandomBytes returns n bytes from crypto/rand.
func RandomBytes(tb testing.TB, n int) []byte {
	tb.Helper()
	b := make([]byte, n)
	_, err := rand.Read(b)
	require.NoError(tb, err)
	return b
}

// Nonce returns 16 random bytes in hex: a nonce every medprov payload accepts.
func Nonce(tb testing.TB) string {
	tb.Helper()
	return hex.EncodeToString(RandomBytes(tb, 16))
}

// MustJSON marshals v.
func MustJSON(tb testing.TB, v any) []byte {
	tb.Helper()
	b, err := json.Marshal(v)
	require.NoError(tb, err)
	return b
}

// MustKey returns a new ECDSA P-256 key.
func MustKey(tb testing.TB) *ecdsa.PrivateKey {
	tb.Helper()
	k, err := envelope.GenerateKey()
	require.NoError(tb, err)
	return k
}

// PublicPEM returns k's public key as a PEM "PUBLIC KEY" (PKIX) string.
func PublicPEM(tb testing.TB, k *ecdsa.PrivateKey) string {
	tb.Helper()
	b, err := envelope.MarshalPublicKey(&k.PublicKey)
	require.NoError(tb, err)
	return string(b)
}

// MustSign returns the envelope of payload signed by k.
func MustSign(tb testing.TB, k *ecdsa.PrivateKey, payload []byte) envelope.Envelope {
	tb.Helper()
	env, err := envelope.Sign(k, payload)
	require.NoError(tb, err)
	return env
}
