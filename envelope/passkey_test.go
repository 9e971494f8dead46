package envelope_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/medprov/medprov/envelope"
	"github.com/medprov/medprov/internal/testkit"
	"github.com/medprov/medprov/wire"
)

const (
	testRPID   = "portal.hospital.example"
	testOrigin = "https://portal.hospital.example"
)

var testRP = envelope.RelyingParty{ID: testRPID, Origins: []string{testOrigin, "https://eu.portal.hospital.example"}}

func TestParseSigned(t *testing.T) {
	b64u := base64.RawURLEncoding.EncodeToString
	webauthn := func(cred, ad, cdj, sig string) string {
		return `{"credentialId":"` + cred + `","authenticatorData":"` + ad + `","clientDataJSON":"` + cdj + `","signature":"` + sig + `"}`
	}
	good := webauthn(b64u([]byte("cred")), b64u([]byte("ad")), b64u([]byte(`{}`)), b64u([]byte{0x30, 0x01}))
	tests := []struct {
		name    string
		in      string
		passkey bool  // parses as a passkey envelope
		plain   bool  // parses as a plain envelope
		rule    error // the strict-decoding rule broken, if any
	}{
		{"a plain envelope parses as plain", `{"payload":"e30=","signature":"AQID"}`, false, true, nil},
		{"a passkey envelope parses as passkey", `{"payload":"e30=","webauthn":` + good + `}`, true, false, nil},
		{"members in either order parse", `{"webauthn":` + good + `,"payload":"e30="}`, true, false, nil},
		{"both signature and webauthn are refused", `{"payload":"e30=","signature":"AQID","webauthn":` + good + `}`, false, false, nil},
		{"neither signature nor webauthn is refused", `{"payload":"e30="}`, false, false, nil},
		{"a null webauthn is refused", `{"payload":"e30=","webauthn":null}`, false, false, nil},
		{"a webauthn array is refused", `{"payload":"e30=","webauthn":[]}`, false, false, wire.ErrNotObject},
		{"an empty payload is refused", `{"payload":"","webauthn":` + good + `}`, false, false, nil},
		{"a missing webauthn member is refused", `{"payload":"e30=","webauthn":{"credentialId":"Y3JlZA","authenticatorData":"YWQ","clientDataJSON":"e30"}}`, false, false, nil},
		{"an empty webauthn member is refused", `{"payload":"e30=","webauthn":` + webauthn("", "YWQ", "e30", "MAE") + `}`, false, false, nil},
		{"an unknown webauthn member is refused", `{"payload":"e30=","webauthn":{"credentialId":"Y3JlZA","authenticatorData":"YWQ","clientDataJSON":"e30","signature":"MAE","userHandle":"dQ"}}`, false, false, wire.ErrUnknownMember},
		{"a duplicate webauthn member is refused", `{"payload":"e30=","webauthn":{"credentialId":"Y3JlZA","authenticatorData":"YWQ","clientDataJSON":"e30","signature":"MAE","signature":"MAI"}}`, false, false, wire.ErrDuplicateMember},
		{"a case-folded webauthn member is refused", `{"payload":"e30=","webauthn":{"credentialID":"Y3JlZA","authenticatorData":"YWQ","clientDataJSON":"e30","signature":"MAE"}}`, false, false, wire.ErrFoldedMember},
		{"two webauthn members are refused", `{"payload":"e30=","webauthn":` + good + `,"webauthn":` + good + `}`, false, false, wire.ErrDuplicateMember},
		{"padded base64url is refused", `{"payload":"e30=","webauthn":` + webauthn("Y3JlZA==", "YWQ", "e30", "MAE") + `}`, false, false, nil},
		{"standard base64 in a webauthn member is refused", `{"payload":"e30=","webauthn":` + webauthn("+/8", "YWQ", "e30", "MAE") + `}`, false, false, nil},
		{"base64url with non-zero padding bits is refused", `{"payload":"e30=","webauthn":` + webauthn("Y3JlZB", "YWQ", "e30", "MAE") + `}`, false, false, nil},
		{"base64url with an escaped line break is refused", `{"payload":"e30=","webauthn":` + webauthn(`Y3J\nlZA`, "YWQ", "e30", "MAE") + `}`, false, false, nil},
		{"base64url spelled with escapes parses", `{"payload":"e30=","webauthn":` + webauthn(`Y3Jl\u005aA`, "YWQ", "e30", "MAE") + `}`, true, false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := envelope.ParseSigned([]byte(tt.in))
			if !tt.passkey && !tt.plain {
				require.ErrorIs(t, err, envelope.ErrMalformed)
				if tt.rule != nil {
					assert.ErrorIs(t, err, tt.rule)
				}
				return
			}
			require.NoError(t, err)
			assert.Equal(t, []byte("{}"), got.Payload)
			if tt.plain {
				assert.Nil(t, got.WebAuthn, "a plain envelope has no assertion")
				assert.Equal(t, []byte{1, 2, 3}, got.Signature)
				return
			}
			require.NotNil(t, got.WebAuthn)
			assert.Nil(t, got.Signature, "a passkey envelope has no plain signature")
			assert.Equal(t, envelope.Assertion{
				CredentialID: []byte("cred"), AuthenticatorData: []byte("ad"), ClientDataJSON: []byte("{}"), Signature: []byte{0x30, 0x01},
			}, *got.WebAuthn)
		})
	}
}

func TestSignedRoundTrip(t *testing.T) {
	a := testkit.NewAuthenticator(t, testRPID, testOrigin)
	tests := []struct {
		name string
		in   envelope.Signed
	}{
		{"a plain envelope", envelope.Signed{Payload: []byte(`{"a":1}`), Signature: []byte{1, 2, 3}}},
		{"a passkey envelope", a.Assert(t, []byte(`{"a":1}`))},
	}
	for _, tt := range tests {
		t.Run(tt.name+" marshals to what ParseSigned reads back", func(t *testing.T) {
			b, err := json.Marshal(tt.in)
			require.NoError(t, err)
			got, err := envelope.ParseSigned(b)
			require.NoError(t, err)
			assert.Equal(t, tt.in, got)
		})
	}
	t.Run("a plain envelope marshals as Parse reads it", func(t *testing.T) {
		b, err := json.Marshal(envelope.Signed{Payload: []byte(`{}`), Signature: []byte{1}})
		require.NoError(t, err)
		assert.JSONEq(t, `{"payload":"e30=","signature":"AQ=="}`, string(b))
	})
}

func TestParseClientData(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want envelope.ClientData
		ok   bool
	}{
		{"a browser's client data parses", `{"type":"webauthn.get","challenge":"abc","origin":"https://p.example","crossOrigin":false}`,
			envelope.ClientData{Type: "webauthn.get", Challenge: "abc", Origin: "https://p.example"}, true},
		{"unknown members are ignored", `{"type":"webauthn.get","challenge":"abc","origin":"https://p.example","other_keys_can_be_added_here":"do not compare clientDataJSON against a template","tokenBinding":{"status":"supported"}}`,
			envelope.ClientData{Type: "webauthn.get", Challenge: "abc", Origin: "https://p.example"}, true},
		{"crossOrigin true is read", `{"type":"webauthn.get","challenge":"abc","origin":"https://p.example","crossOrigin":true}`,
			envelope.ClientData{Type: "webauthn.get", Challenge: "abc", Origin: "https://p.example", CrossOrigin: true}, true},
		{"a duplicate type is refused", `{"type":"webauthn.get","challenge":"abc","origin":"https://p.example","type":"webauthn.create"}`, envelope.ClientData{}, false},
		{"an escaped duplicate origin is refused", `{"type":"webauthn.get","challenge":"abc","origin":"https://p.example","\u006frigin":"https://evil.example"}`, envelope.ClientData{}, false},
		{"a duplicate inside a nested member is refused", `{"type":"webauthn.get","challenge":"abc","origin":"https://p.example","tokenBinding":{"status":"a","status":"b"}}`, envelope.ClientData{}, false},
		{"a case-folded Origin is not the origin", `{"type":"webauthn.get","challenge":"abc","Origin":"https://p.example"}`, envelope.ClientData{}, false},
		{"a missing challenge is refused", `{"type":"webauthn.get","origin":"https://p.example"}`, envelope.ClientData{}, false},
		{"a numeric type is refused", `{"type":1,"challenge":"abc","origin":"https://p.example"}`, envelope.ClientData{}, false},
		{"a string crossOrigin is refused", `{"type":"webauthn.get","challenge":"abc","origin":"https://p.example","crossOrigin":"false"}`, envelope.ClientData{}, false},
		{"trailing data is refused", `{"type":"webauthn.get","challenge":"abc","origin":"https://p.example"}{}`, envelope.ClientData{}, false},
		{"invalid UTF-8 is refused", "{\"type\":\"webauthn.get\",\"challenge\":\"abc\",\"origin\":\"https://p.example\xff\"}", envelope.ClientData{}, false},
		{"null is refused", `null`, envelope.ClientData{}, false},
		{"an array is refused", `[]`, envelope.ClientData{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := envelope.ParseClientData([]byte(tt.in))
			if !tt.ok {
				require.ErrorIs(t, err, envelope.ErrMalformed)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestParseAuthenticatorData(t *testing.T) {
	base := func(flags byte, extra ...byte) []byte {
		b := append(make([]byte, 32), flags, 0, 0, 1, 2)
		return append(b, extra...)
	}
	tests := []struct {
		name string
		in   []byte
		ok   bool
	}{
		{"37 bytes parse", base(0x05), true},
		{"extension data after the ED flag parses", base(0x85, 0xa0), true},
		{"36 bytes are refused", base(0x05)[:36], false},
		{"trailing bytes without the ED flag are refused", base(0x05, 0x00), false},
		{"the ED flag without extension data is refused", base(0x85), false},
		{"attested credential data in an assertion is refused", base(0x45, 0x00), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := envelope.ParseAuthenticatorData(tt.in)
			if !tt.ok {
				require.ErrorIs(t, err, envelope.ErrMalformed)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.in[32], got.Flags)
			assert.Equal(t, uint32(258), got.SignCount)
		})
	}
}

func TestVerifyAssertion(t *testing.T) {
	a := testkit.NewAuthenticator(t, testRPID, testOrigin)
	payload := []byte(`{"action":"consent.grant"}`)
	other := testkit.MustKey(t)
	tests := []struct {
		name    string
		payload []byte // verified payload; the signed one if nil
		edit    func(*testkit.AssertionParts)
		want    error
	}{
		{"a valid assertion verifies", nil, nil, nil},
		{"an assertion from a second allowed origin verifies", nil, func(p *testkit.AssertionParts) { p.Origin = "https://eu.portal.hospital.example" }, nil},
		{"a counter of zero verifies (the caller checks counters)", nil, func(p *testkit.AssertionParts) { p.SignCount = 0 }, nil},
		{"another payload fails the challenge", []byte(`{"action":"consent.revoke"}`), nil, envelope.ErrChallenge},
		{"a registration's client data type is refused", nil, func(p *testkit.AssertionParts) { p.Type = "webauthn.create" }, envelope.ErrClientDataType},
		{"an origin not listed is refused", nil, func(p *testkit.AssertionParts) { p.Origin = "https://evil.example" }, envelope.ErrOrigin},
		{"an origin with a trailing slash is refused", nil, func(p *testkit.AssertionParts) { p.Origin = testOrigin + "/" }, envelope.ErrOrigin},
		{"a cross-origin frame is refused", nil, func(p *testkit.AssertionParts) {
			p.ClientDataJSON = []byte(`{"type":"webauthn.get","challenge":"` + envelope.Challenge(payload) + `","origin":"` + testOrigin + `","crossOrigin":true}`)
		}, envelope.ErrCrossOrigin},
		{"another relying party is refused", nil, func(p *testkit.AssertionParts) { p.RPID = "evil.example" }, envelope.ErrRPID},
		{"a cleared UP flag is refused", nil, func(p *testkit.AssertionParts) { p.Flags = envelope.FlagUserVerified }, envelope.ErrUserPresence},
		{"a cleared UV flag is refused", nil, func(p *testkit.AssertionParts) { p.Flags = envelope.FlagUserPresent }, envelope.ErrUserVerification},
		{"another key's signature is refused", nil, func(p *testkit.AssertionParts) { p.Key = other }, envelope.ErrBadSignature},
		{"a duplicate challenge in client data is malformed", nil, func(p *testkit.AssertionParts) {
			p.ClientDataJSON = []byte(`{"type":"webauthn.get","challenge":"x","origin":"` + testOrigin + `","challenge":"` + envelope.Challenge(payload) + `"}`)
		}, envelope.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var edits []func(*testkit.AssertionParts)
			if tt.edit != nil {
				edits = append(edits, tt.edit)
			}
			s := a.Assert(t, payload, edits...)
			verified := tt.payload
			if verified == nil {
				verified = payload
			}
			ad, err := envelope.VerifyAssertion(&a.Key.PublicKey, testRP, verified, *s.WebAuthn)
			if tt.want != nil {
				require.ErrorIs(t, err, tt.want)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, binary.BigEndian.Uint32(s.WebAuthn.AuthenticatorData[33:]), ad.SignCount, "the counter the authenticator reported")
			assert.Equal(t, byte(envelope.FlagUserPresent|envelope.FlagUserVerified), ad.Flags)
		})
	}
	t.Run("a tampered authenticator data byte breaks the signature", func(t *testing.T) {
		s := a.Assert(t, payload)
		s.WebAuthn.AuthenticatorData[36]++ // the counter's last byte
		_, err := envelope.VerifyAssertion(&a.Key.PublicKey, testRP, payload, *s.WebAuthn)
		require.ErrorIs(t, err, envelope.ErrBadSignature)
	})
}

func TestParseCOSEKey(t *testing.T) {
	// The EC2 example of the WebAuthn specification (§6.5.1.1).
	specX := "65eda5a12577c2bae829437fe338701a10aaa375e1bb5b5de108de439c08551d"
	specY := "1e52ed75701163f7f9e40ddf9f341b3dc9ba860af7e0ca7ca7e9eecd0084d19c"
	spec := "a5010203262001215820" + specX + "225820" + specY
	unhex := func(s string) []byte {
		b, err := hex.DecodeString(s)
		require.NoError(t, err)
		return b
	}
	a := testkit.NewAuthenticator(t, testRPID, testOrigin)
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	require.NoError(t, err)
	p384X, p384Y := p384.X.FillBytes(make([]byte, 48)), p384.Y.FillBytes(make([]byte, 48))

	t.Run("the specification's example parses to its point", func(t *testing.T) {
		pub, err := envelope.ParseCOSEKey(unhex(spec))
		require.NoError(t, err)
		b, err := pub.Bytes()
		require.NoError(t, err)
		assert.Equal(t, "04"+specX+specY, hex.EncodeToString(b))
	})
	t.Run("a software authenticator's key parses to its public key", func(t *testing.T) {
		pub, err := envelope.ParseCOSEKey(a.COSEKey(t))
		require.NoError(t, err)
		assert.True(t, pub.Equal(&a.Key.PublicKey))
		pemKey, err := envelope.MarshalPublicKey(pub)
		require.NoError(t, err)
		assert.Equal(t, testkit.PublicPEM(t, a.Key), string(pemKey), "the PEM the ledger stores")
	})
	t.Run("a registration's attestation object carries the key", func(t *testing.T) {
		_, att := a.Register(t, []byte("challenge"))
		cose := a.COSEKey(t)
		require.True(t, strings.HasSuffix(string(att), string(cose)))
		pub, err := envelope.ParseCOSEKey(att[len(att)-len(cose):])
		require.NoError(t, err)
		assert.True(t, pub.Equal(&a.Key.PublicKey))
	})

	refused := []struct {
		name string
		hex  string
	}{
		{"a key without y is refused", "a4010203262001215820" + specX},
		{"an RSA key is refused", "a40103033901002041012143010001"},
		{"an EdDSA key is refused", "a4010103272006215820" + specX},
		{"ES384 is refused", "a501020338222002215830" + hex.EncodeToString(p384X) + "225830" + hex.EncodeToString(p384Y)},
		{"a P-256 key labelled ES384 is refused", "a5010203382220012158" + "20" + specX + "225820" + specY},
		{"a duplicate label is refused", "a5010203262001215820" + specX + "215820" + specX},
		{"an extra parameter (kid) is refused", "a5010203260241aa215820" + specX + "225820" + specY},
		{"more than five parameters are refused", "a6010203262001215820" + specX + "225820" + specY + "0241aa"},
		{"data after the key is refused", spec + "00"},
		{"a truncated key is refused", spec[:len(spec)-2]},
		{"a short coordinate is refused", "a501020326200121581f" + specX[2:] + "225820" + specY},
		{"a point off the curve is refused", "a5010203262001215820" + specX + "225820" + strings.Repeat("11", 32)},
		{"a non-shortest integer is refused", "a501180203262001215820" + specX + "225820" + specY},
		{"a non-shortest length is refused", "a50102032620012159002" + "0" + specX + "225820" + specY},
		{"an indefinite-length map is refused", "bf010203262001215820" + specX + "225820" + specY + "ff"},
		{"a text string coordinate is refused", "a5010203262001217820" + strings.Repeat("61", 32) + "225820" + specY},
		{"an empty input is refused", ""},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			_, err := envelope.ParseCOSEKey(unhex(tt.hex))
			require.ErrorIs(t, err, envelope.ErrBadKey)
		})
	}
}
