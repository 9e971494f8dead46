package wire_test

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/medprov/medprov/wire"
)

func TestPasskeyGrammar(t *testing.T) {
	id16 := base64.RawURLEncoding.EncodeToString([]byte("0123456789abcdef"))
	tests := []struct {
		name string
		got  bool
		want bool
	}{
		{"base64url of 16 bytes is a credential id", wire.ValidCredentialID(id16), true},
		{"base64url of 1023 bytes is a credential id", wire.ValidCredentialID(base64.RawURLEncoding.EncodeToString(make([]byte, 1023))), true},
		{"base64url of 15 bytes is too short", wire.ValidCredentialID(base64.RawURLEncoding.EncodeToString(make([]byte, 15))), false},
		{"base64url of 1024 bytes is too long", wire.ValidCredentialID(base64.RawURLEncoding.EncodeToString(make([]byte, 1024))), false},
		{"a padded credential id is refused", wire.ValidCredentialID(base64.URLEncoding.EncodeToString(make([]byte, 16))), false},
		{"a standard-alphabet credential id is refused", wire.ValidCredentialID(base64.RawStdEncoding.EncodeToString([]byte("\xfb\xff0123456789abcdef"))), false},
		{"a credential id with non-zero padding bits is refused", wire.ValidCredentialID(id16[:len(id16)-1] + "x"), false},
		{"a credential id with a line break is refused", wire.ValidCredentialID(id16[:4] + "\n" + id16[4:]), false},

		{"localhost is an rpId", wire.ValidRPID("localhost"), true},
		{"a DNS name is an rpId", wire.ValidRPID("portal.hospital-a.example"), true},
		{"an upper-case rpId is refused", wire.ValidRPID("Portal.example"), false},
		{"an rpId with a trailing dot is refused", wire.ValidRPID("portal.example."), false},
		{"an IPv4 address is not an rpId", wire.ValidRPID("127.0.0.1"), false},
		{"a label starting with a dash is refused", wire.ValidRPID("-portal.example"), false},
		{"a label of 64 bytes is refused", wire.ValidRPID(strings.Repeat("a", 64) + ".example"), false},
		{"an rpId with a port is refused", wire.ValidRPID("portal.example:443"), false},

		{"an https origin of the rpId is valid", wire.ValidOrigin("https://portal.example", "portal.example"), true},
		{"an https origin of a subdomain is valid", wire.ValidOrigin("https://eu.portal.example:8443", "portal.example"), true},
		{"an http origin on localhost is valid", wire.ValidOrigin("http://localhost:8080", "localhost"), true},
		{"an http origin elsewhere is refused", wire.ValidOrigin("http://portal.example", "portal.example"), false},
		{"an origin of another site is refused", wire.ValidOrigin("https://evil.example", "portal.example"), false},
		{"an origin merely ending in the rpId is refused", wire.ValidOrigin("https://evilportal.example", "portal.example"), false},
		{"an origin with a path is refused", wire.ValidOrigin("https://portal.example/", "portal.example"), false},
		{"an origin with the default port is refused", wire.ValidOrigin("https://portal.example:443", "portal.example"), false},
		{"an origin with a zero-padded port is refused", wire.ValidOrigin("https://portal.example:08443", "portal.example"), false},
		{"an origin with port 0 is refused", wire.ValidOrigin("https://portal.example:0", "portal.example"), false},
		{"an origin with user info is refused", wire.ValidOrigin("https://me@portal.example", "portal.example"), false},
		{"an upper-case origin is refused", wire.ValidOrigin("HTTPS://portal.example", "portal.example"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.got)
		})
	}
}

func TestPasskeyInputDecodesStrictly(t *testing.T) {
	var in wire.PasskeyInput
	require.NoError(t, wire.DecodeStrict([]byte(`{"actorId":"pat-1","credentialId":"AAAA","publicKey":"k","signCount":7}`), &in))
	assert.Equal(t, wire.PasskeyInput{ActorID: "pat-1", PasskeyCredential: wire.PasskeyCredential{CredentialID: "AAAA", PublicKey: "k", SignCount: 7}}, in)

	err := wire.DecodeStrict([]byte(`{"actorId":"pat-1","credentialId":"AAAA","publicKey":"k","signCount":-1}`), &in)
	assert.Error(t, err, "a negative counter is refused")
	err = wire.DecodeStrict([]byte(`{"actorId":"pat-1","credentialId":"AAAA","credentialId":"BBBB","publicKey":"k"}`), &in)
	assert.ErrorIs(t, err, wire.ErrDuplicateMember)
}
