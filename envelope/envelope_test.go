package envelope_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/medprov/medprov/envelope"
	"github.com/medprov/medprov/internal/testkit"
	"github.com/medprov/medprov/wire"
)

func TestSignVerify(t *testing.T) {
	k := testkit.MustKey(t)
	other := testkit.MustKey(t)
	env := testkit.MustSign(t, k, []byte(`{"deviceId":"d","seq":1}`))
	tests := []struct {
		name string
		env  envelope.Envelope
		pub  *ecdsa.PublicKey
		want error
	}{
		{"the signer's key verifies", env, &k.PublicKey, nil},
		{"another key is refused", env, &other.PublicKey, envelope.ErrBadSignature},
		{"a changed payload is refused", envelope.Envelope{Payload: []byte(`{"deviceId":"d","seq":2}`), Signature: env.Signature}, &k.PublicKey, envelope.ErrBadSignature},
		{"a truncated signature is refused", envelope.Envelope{Payload: env.Payload, Signature: env.Signature[:10]}, &k.PublicKey, envelope.ErrBadSignature},
		{"a nil key is refused", env, nil, envelope.ErrBadSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.env.Verify(tt.pub)
			if tt.want == nil {
				require.NoError(t, err, "Verify")
				return
			}
			require.ErrorIs(t, err, tt.want, "Verify")
		})
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		in   string
		ok   bool
		rule error // the strict-decoding rule broken, if any
	}{
		{"a well-formed envelope parses", `{"payload":"e30=","signature":"AQID"}`, true, nil},
		{"members in either order parse", ` {"signature":"AQID", "payload":"e30="} `, true, nil},
		{"invalid JSON is malformed", `{"payload":`, false, wire.ErrSyntax},
		{"a missing signature is malformed", `{"payload":"e30="}`, false, nil},
		{"non-base64 payload is malformed", `{"payload":"***","signature":"AQID"}`, false, nil},
		{"an array is malformed", `[]`, false, wire.ErrNotObject},
		{"two payload members are refused", `{"payload":"e30=","signature":"AQID","payload":"W10="}`, false, wire.ErrDuplicateMember},
		{"two signature members are refused", `{"payload":"e30=","signature":"AQID","signature":"AQIE"}`, false, wire.ErrDuplicateMember},
		{"a capitalised Payload beside payload is refused", `{"payload":"e30=","signature":"AQID","Payload":"W10="}`, false, wire.ErrFoldedMember},
		{"a capitalised Payload alone is refused", `{"Payload":"e30=","signature":"AQID"}`, false, wire.ErrFoldedMember},
		{"an unknown member is refused", `{"payload":"e30=","signature":"AQID","webauthn":{}}`, false, wire.ErrUnknownMember},
		{"trailing data is refused", `{"payload":"e30=","signature":"AQID"}{}`, false, wire.ErrTrailingData},
		{"invalid UTF-8 is refused", "{\"payload\":\"e30=\",\"signature\":\"AQID\",\"x\xff\":1}", false, wire.ErrInvalidUTF8},
		{"a lone surrogate is refused", `{"payload":"e30=\ud800","signature":"AQID"}`, false, wire.ErrInvalidUTF8},
		{"null payload is refused", `{"payload":null,"signature":"AQID"}`, false, nil},
		{"a number for a signature is refused", `{"payload":"e30=","signature":12}`, false, nil},
		{"a base64 value spelled with escapes parses", `{"payload":"e30\u003d","signature":"\u0041QID"}`, true, nil},
		{"base64 with an escaped line break is refused", `{"payload":"e3\n0=","signature":"AQID"}`, false, nil},
		{"base64 with non-zero padding bits is refused", `{"payload":"e31=","signature":"AQID"}`, false, nil},
		{"unpadded base64 is refused", `{"payload":"e30","signature":"AQID"}`, false, nil},
		{"base64url is refused", `{"payload":"e30=","signature":"-_8="}`, false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, err := envelope.Parse([]byte(tt.in))
			if tt.ok {
				require.NoError(t, err, "Parse(%s)", tt.in)
				assert.Equal(t, []byte("{}"), env.Payload)
				assert.Equal(t, []byte{1, 2, 3}, env.Signature)
				return
			}
			require.ErrorIs(t, err, envelope.ErrMalformed, "Parse(%s)", tt.in)
			if tt.rule != nil {
				assert.ErrorIs(t, err, tt.rule, "Parse(%s)", tt.in)
			}
		})
	}
}

func pemOf(t *testing.T, typ string, der []byte) []byte {
	t.Helper()
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func TestParsePublicKey(t *testing.T) {
	good := []byte(testkit.PublicPEM(t, testkit.MustKey(t)))
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	require.NoError(t, err)
	der384, err := x509.MarshalPKIXPublicKey(&p384.PublicKey)
	require.NoError(t, err)
	rk, err := rsa.GenerateKey(rand.Reader, 1024)
	require.NoError(t, err)
	derRSA, err := x509.MarshalPKIXPublicKey(&rk.PublicKey)
	require.NoError(t, err)
	tests := []struct {
		name string
		in   []byte
		ok   bool
	}{
		{"a P-256 PKIX key is accepted", good, true},
		{"a P-384 key is refused", pemOf(t, "PUBLIC KEY", der384), false},
		{"an RSA key is refused", pemOf(t, "PUBLIC KEY", derRSA), false},
		{"a private key block is refused", pemOf(t, "PRIVATE KEY", []byte{1, 2, 3}), false},
		{"garbage is refused", []byte("not a key"), false},
		{"an empty key is refused", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := envelope.ParsePublicKey(tt.in)
			if tt.ok {
				require.NoError(t, err, "ParsePublicKey")
				return
			}
			require.ErrorIs(t, err, envelope.ErrBadKey, "ParsePublicKey")
		})
	}
}

// TestOpenSSLInterop checks the wire contract device makers rely on: a
// signature made by `openssl dgst -sha256 -sign` verifies here, and one made
// here verifies with `openssl dgst -verify`; keys from `openssl genpkey` and
// `openssl ecparam -genkey` parse.
func TestOpenSSLInterop(t *testing.T) {
	_, err := exec.LookPath("openssl")
	require.NoError(t, err, "this test needs openssl on PATH")
	dir := t.TempDir()
	// run takes the subtest's t: require must stop the goroutine it runs on.
	run := func(t *testing.T, args ...string) {
		t.Helper()
		cmd := exec.CommandContext(t.Context(), "openssl", args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "openssl %v\n%s", args, out)
	}
	payload := []byte(`{"deviceId":"dev-1","seq":7,"type":"spo2","unit":"%","value":97}`)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "payload"), payload, 0o600))
	for _, gen := range [][]string{
		{"genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "key.pem"},
		{"ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "key.pem"},
	} {
		t.Run(gen[0], func(t *testing.T) {
			run(t, gen...)
			run(t, "pkey", "-in", "key.pem", "-pubout", "-out", "pub.pem")
			run(t, "dgst", "-sha256", "-sign", "key.pem", "-out", "sig", "payload")
			pubPEM, err := os.ReadFile(filepath.Join(dir, "pub.pem"))
			require.NoError(t, err)
			pub, err := envelope.ParsePublicKey(pubPEM)
			require.NoError(t, err)
			sig, err := os.ReadFile(filepath.Join(dir, "sig"))
			require.NoError(t, err)
			require.NoError(t, envelope.Envelope{Payload: payload, Signature: sig}.Verify(pub), "openssl's signature does not verify")
			keyPEM, err := os.ReadFile(filepath.Join(dir, "key.pem"))
			require.NoError(t, err)
			key, err := envelope.ParsePrivateKey(keyPEM)
			require.NoError(t, err)
			env := testkit.MustSign(t, key, payload)
			require.NoError(t, os.WriteFile(filepath.Join(dir, "oursig"), env.Signature, 0o600))
			run(t, "dgst", "-sha256", "-verify", "pub.pem", "-signature", "oursig", "payload")
			// The JSON form carries standard base64.
			b := testkit.MustJSON(t, env)
			back, err := envelope.Parse(b)
			if assert.NoError(t, err, "JSON round trip: Parse") {
				assert.NoError(t, back.Verify(pub), "JSON round trip: Verify")
			}
		})
	}
}

func BenchmarkVerify(b *testing.B) {
	k := testkit.MustKey(b)
	env := testkit.MustSign(b, k, make([]byte, 200))
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			// assert, not require: RunParallel's goroutines may not stop
			// the benchmark.
			if !assert.NoError(b, env.Verify(&k.PublicKey)) {
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "verifies/s")
}
