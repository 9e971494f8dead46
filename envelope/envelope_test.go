package envelope_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/medprov/medprov/envelope"
)

func TestSignVerify(t *testing.T) {
	k, err := envelope.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	other, err := envelope.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	env, err := envelope.Sign(k, []byte(`{"deviceId":"d","seq":1}`))
	if err != nil {
		t.Fatal(err)
	}
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
			if err := tt.env.Verify(tt.pub); !errors.Is(err, tt.want) {
				t.Errorf("Verify = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"a well-formed envelope parses", `{"payload":"e30=","signature":"AQID"}`, true},
		{"invalid JSON is malformed", `{"payload":`, false},
		{"a missing signature is malformed", `{"payload":"e30="}`, false},
		{"non-base64 payload is malformed", `{"payload":"***","signature":"AQID"}`, false},
		{"an array is malformed", `[]`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := envelope.Parse([]byte(tt.in))
			if tt.ok != (err == nil) || (err != nil && !errors.Is(err, envelope.ErrMalformed)) {
				t.Errorf("Parse(%s) = %v", tt.in, err)
			}
		})
	}
}

func pemOf(t *testing.T, typ string, der []byte) []byte {
	t.Helper()
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func TestParsePublicKey(t *testing.T) {
	p256, err := envelope.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	good, err := envelope.MarshalPublicKey(&p256.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der384, err := x509.MarshalPKIXPublicKey(&p384.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	rk, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	derRSA, err := x509.MarshalPKIXPublicKey(&rk.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
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
			if tt.ok != (err == nil) || (err != nil && !errors.Is(err, envelope.ErrBadKey)) {
				t.Errorf("ParsePublicKey = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

// TestOpenSSLInterop checks the wire contract device makers rely on: a
// signature made by `openssl dgst -sha256 -sign` verifies here, and one made
// here verifies with `openssl dgst -verify`; keys from `openssl genpkey` and
// `openssl ecparam -genkey` parse.
func TestOpenSSLInterop(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Fatalf("this test needs openssl on PATH: %v", err)
	}
	dir := t.TempDir()
	run := func(args ...string) {
		t.Helper()
		cmd := exec.Command("openssl", args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("openssl %v: %v\n%s", args, err, out)
		}
	}
	payload := []byte(`{"deviceId":"dev-1","seq":7,"type":"spo2","unit":"%","value":97}`)
	if err := os.WriteFile(filepath.Join(dir, "payload"), payload, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, gen := range [][]string{
		{"genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "key.pem"},
		{"ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "key.pem"},
	} {
		t.Run(gen[0], func(t *testing.T) {
			run(gen...)
			run("pkey", "-in", "key.pem", "-pubout", "-out", "pub.pem")
			run("dgst", "-sha256", "-sign", "key.pem", "-out", "sig", "payload")
			pubPEM, err := os.ReadFile(filepath.Join(dir, "pub.pem"))
			if err != nil {
				t.Fatal(err)
			}
			pub, err := envelope.ParsePublicKey(pubPEM)
			if err != nil {
				t.Fatal(err)
			}
			sig, err := os.ReadFile(filepath.Join(dir, "sig"))
			if err != nil {
				t.Fatal(err)
			}
			if err := (envelope.Envelope{Payload: payload, Signature: sig}).Verify(pub); err != nil {
				t.Fatalf("openssl's signature does not verify: %v", err)
			}
			keyPEM, err := os.ReadFile(filepath.Join(dir, "key.pem"))
			if err != nil {
				t.Fatal(err)
			}
			key, err := envelope.ParsePrivateKey(keyPEM)
			if err != nil {
				t.Fatal(err)
			}
			env, err := envelope.Sign(key, payload)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "oursig"), env.Signature, 0o600); err != nil {
				t.Fatal(err)
			}
			run("dgst", "-sha256", "-verify", "pub.pem", "-signature", "oursig", "payload")
			// The JSON form carries standard base64.
			b, err := json.Marshal(env)
			if err != nil {
				t.Fatal(err)
			}
			back, err := envelope.Parse(b)
			if err != nil || back.Verify(pub) != nil {
				t.Errorf("JSON round trip: %v", err)
			}
		})
	}
}

func BenchmarkVerify(b *testing.B) {
	k, err := envelope.GenerateKey()
	if err != nil {
		b.Fatal(err)
	}
	env, err := envelope.Sign(k, make([]byte, 200))
	if err != nil {
		b.Fatal(err)
	}
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := env.Verify(&k.PublicKey); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "verifies/s")
}
