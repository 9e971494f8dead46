package cli

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/medprov/medprov/wire"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/medprov/medprov/client"
	"github.com/medprov/medprov/envelope"
)

var fixedTime = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// run runs the CLI with args and env and returns exit code and output.
func run(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Run(t.Context(), args, &out, &errb, func(k string) string { return env[k] })
	return code, out.String(), errb.String()
}

func TestKeygen(t *testing.T) {
	dir := t.TempDir()
	priv := filepath.Join(dir, "alice.pem")
	code, out, stderr := run(t, nil, "keygen", "--out", priv)
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	pubPath := filepath.Join(dir, "alice.pub.pem")
	if !strings.Contains(out, pubPath) {
		t.Errorf("output does not name the public key file: %s", out)
	}

	t.Run("the private key is PKCS#8 PEM readable only by its owner", func(t *testing.T) {
		fi, err := os.Stat(priv)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != 0o600 {
			t.Errorf("mode = %04o, want 0600", got)
		}
		b, err := os.ReadFile(priv)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(b, []byte("-----BEGIN PRIVATE KEY-----")) {
			t.Errorf("not a PKCS#8 PEM: %.40s", b)
		}
	})
	t.Run("the public key belongs to the private key", func(t *testing.T) {
		k, err := readPrivateKey(priv)
		if err != nil {
			t.Fatal(err)
		}
		pub, _, err := readPublicKey(pubPath)
		if err != nil {
			t.Fatal(err)
		}
		if !pub.Equal(&k.PublicKey) {
			t.Error("public key does not match the private key")
		}
		fi, err := os.Stat(pubPath)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != 0o644 {
			t.Errorf("public key mode = %04o, want 0644", got)
		}
	})
	t.Run("an existing key is not overwritten", func(t *testing.T) {
		before, err := os.ReadFile(priv)
		if err != nil {
			t.Fatal(err)
		}
		code, _, stderr := run(t, nil, "keygen", "--out", priv)
		if code != ExitFailure || !strings.Contains(stderr, "--force") {
			t.Errorf("exit %d, stderr %q; want failure naming --force", code, stderr)
		}
		after, err := os.ReadFile(priv)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(before, after) {
			t.Error("the key changed")
		}
	})
	t.Run("force replaces the key and keeps the mode", func(t *testing.T) {
		before, err := os.ReadFile(priv)
		if err != nil {
			t.Fatal(err)
		}
		if code, _, stderr := run(t, nil, "keygen", "--out", priv, "--force"); code != ExitOK {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		after, err := os.ReadFile(priv)
		if err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(priv)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Equal(before, after) || fi.Mode().Perm() != 0o600 {
			t.Errorf("key unchanged (%v) or mode %04o", bytes.Equal(before, after), fi.Mode().Perm())
		}
	})
	t.Run("a key others can read is refused", func(t *testing.T) {
		if err := os.Chmod(priv, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := readPrivateKey(priv); err == nil || !strings.Contains(err.Error(), "chmod 600") {
			t.Errorf("err = %v, want a refusal asking for chmod 600", err)
		}
	})
}

// walk calls f on cmd and every command below it.
func walk(cmd *cobra.Command, f func(*cobra.Command)) {
	f(cmd)
	for _, c := range cmd.Commands() {
		walk(c, f)
	}
}

func TestEveryCommandHasShortAndLongHelp(t *testing.T) {
	root := newRootCmd(&app{getenv: func(string) string { return "" }, out: io.Discard})
	var n int
	walk(root, func(c *cobra.Command) {
		if c.Name() == "help" || c.Name() == "completion" {
			return
		}
		n++
		t.Run(c.CommandPath()+" has help", func(t *testing.T) {
			if strings.TrimSpace(c.Short) == "" {
				t.Error("no Short help")
			}
			if len(strings.TrimSpace(c.Long)) < len(c.Short) {
				t.Error("Long help missing or shorter than Short")
			}
			if c.Runnable() {
				c.Flags().VisitAll(func(f *pflag.Flag) {
					if f.Usage == "" {
						t.Errorf("flag --%s has no usage", f.Name)
					}
				})
			}
		})
	})
	want := []string{"keygen", "actor register", "device register", "device revoke", "device simulate", "reading send",
		"consent grant", "consent revoke", "consent list", "access request", "access log",
		"audit events", "audit provenance", "audit verify", "demo", "serve"}
	for _, w := range want {
		t.Run("medprov "+w+" exists", func(t *testing.T) {
			c, rest, err := root.Find(strings.Fields(w))
			if err != nil || len(rest) != 0 || c.CommandPath() != "medprov "+w {
				t.Errorf("found %q (rest %v, err %v)", c.CommandPath(), rest, err)
			}
		})
	}
	if n < len(want) {
		t.Errorf("walked %d commands, want at least %d", n, len(want))
	}
}

func TestUsageErrorsExitTwo(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{"a missing required flag", []string{"keygen"}},
		{"an unknown flag", []string{"keygen", "--nope"}},
		{"an unknown command", []string{"frobnicate"}},
		{"a value that is not JSON", []string{"reading", "send", "--device", "d", "--key", "k", "--seq", "1", "--type", "t", "--unit", "u", "--value", "seventy"}},
		{"a time that is not RFC 3339", []string{"consent", "grant", "--patient", "p", "--key", "k", "--grantee", "r", "--purpose", "x", "--types", "a", "--not-before", "yesterday"}},
	}
	for _, tt := range tests {
		t.Run(tt.name+" is a usage error", func(t *testing.T) {
			code, _, stderr := run(t, nil, tt.args...)
			if code != ExitUsage {
				t.Errorf("exit %d, want %d; stderr %s", code, ExitUsage, stderr)
			}
		})
	}
}

// fakeGateway records requests and answers with a fixed status and body.
type fakeGateway struct {
	mu     sync.Mutex
	status int
	body   string
	reqs   []*http.Request
	bodies [][]byte
}

func (f *fakeGateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	f.reqs = append(f.reqs, r)
	f.bodies = append(f.bodies, b)
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(f.status)
	if _, err := io.WriteString(w, f.body); err != nil {
		panic(err)
	}
}

func startFake(t *testing.T, status int, body string) (*fakeGateway, string) {
	t.Helper()
	f := &fakeGateway{status: status, body: body}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv.URL
}

func keyPair(t *testing.T, dir, name string) (priv, pub string) {
	t.Helper()
	priv = filepath.Join(dir, name+".pem")
	if code, _, stderr := run(t, nil, "keygen", "--out", priv); code != ExitOK {
		t.Fatalf("keygen: %s", stderr)
	}
	return priv, publicKeyPath(priv)
}

func TestActorRegisterUsesTheAdminToken(t *testing.T) {
	dir := t.TempDir()
	_, pub := keyPair(t, dir, "pat")
	tokFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokFile, []byte("from-file-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		env       map[string]string
		extra     []string
		wantToken string
	}{
		{name: "the token comes from the environment", env: map[string]string{EnvAdminToken: "from-env-token"}, wantToken: "from-env-token"},
		{name: "the token file wins over the environment", env: map[string]string{EnvAdminToken: "from-env-token"}, extra: []string{"--admin-token-file", tokFile}, wantToken: "from-file-token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, url := startFake(t, http.StatusCreated, `{"id":"pat-1","role":"patient","status":"active","registeredTx":"tx1"}`)
			args := append([]string{"actor", "register", "--gateway", url, "--id", "pat-1", "--role", "patient", "--pubkey", pub}, tt.extra...)
			code, out, stderr := run(t, tt.env, args...)
			if code != ExitOK {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			if !strings.Contains(out, "tx1") {
				t.Errorf("output lacks the tx: %s", out)
			}
			if got := f.reqs[0].Header.Get("Authorization"); got != "Bearer "+tt.wantToken {
				t.Errorf("Authorization = %q", got)
			}
		})
	}
	t.Run("no token is a usage error and sends nothing", func(t *testing.T) {
		f, url := startFake(t, http.StatusCreated, `{}`)
		code, _, _ := run(t, nil, "actor", "register", "--gateway", url, "--id", "p", "--role", "patient", "--pubkey", pub)
		if code != ExitUsage || len(f.reqs) != 0 {
			t.Errorf("exit %d, %d requests", code, len(f.reqs))
		}
	})
	t.Run("the gateway comes from MEDPROV_GATEWAY", func(t *testing.T) {
		f, url := startFake(t, http.StatusCreated, `{"id":"p"}`)
		code, _, stderr := run(t, map[string]string{EnvGateway: url, EnvAdminToken: "t"}, "actor", "register", "--id", "p", "--role", "patient", "--pubkey", pub)
		if code != ExitOK || len(f.reqs) != 1 {
			t.Errorf("exit %d (%s), %d requests", code, stderr, len(f.reqs))
		}
	})
	t.Run("a refusal exits one and shows the code", func(t *testing.T) {
		_, url := startFake(t, http.StatusConflict, `{"error":{"code":"conflict","message":"actor exists"}}`)
		code, _, stderr := run(t, map[string]string{EnvAdminToken: "t"}, "actor", "register", "--gateway", url, "--id", "p", "--role", "patient", "--pubkey", pub)
		if code != ExitFailure || !strings.Contains(stderr, "409 conflict: actor exists") {
			t.Errorf("exit %d, stderr %q", code, stderr)
		}
	})
}

func TestAccessRequestWritesAndVerifiesReadings(t *testing.T) {
	dir := t.TempDir()
	resKey, _ := keyPair(t, dir, "res")
	devPriv, devPub := keyPair(t, dir, "dev")
	dk, err := readPrivateKey(devPriv)
	if err != nil {
		t.Fatal(err)
	}
	p, err := client.NewReading("dev-1", 4, "heart_rate", "bpm", 71, fixedTime)
	if err != nil {
		t.Fatal(err)
	}
	env, err := client.SignReading(dk, p)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(env.Payload)
	grant := func(hash string) string {
		b, err := json.Marshal(wire.AccessGrant{AccessID: "acc-1", Decision: "granted", Readings: []wire.ReleasedReading{
			{ReadingID: "dev-1:4", Payload: env.Payload, Signature: env.Signature, DataHash: hash, CID: "bafy"},
		}})
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	args := func(url, out string) []string {
		return []string{"access", "request", "--gateway", url, "--researcher", "res-1", "--key", resKey, "--patient", "pat-1",
			"--purpose", "cardio.study", "--types", "heart_rate", "--out", out, "--device-pubkey", "dev-1=" + devPub}
	}

	t.Run("a genuine reading is written and verified", func(t *testing.T) {
		f, url := startFake(t, http.StatusOK, grant(hex.EncodeToString(sum[:])))
		out := filepath.Join(t.TempDir(), "released")
		code, stdout, stderr := run(t, nil, args(url, out)...)
		if code != ExitOK {
			t.Fatalf("exit %d: %s\n%s", code, stderr, stdout)
		}
		if !strings.Contains(stdout, "dev-1:4 VERIFIED") {
			t.Errorf("output: %s", stdout)
		}
		got, err := os.ReadFile(filepath.Join(out, "dev-1_4.json"))
		if err != nil || !bytes.Equal(got, env.Payload) {
			t.Errorf("payload file = %s (%v), want the signed bytes", got, err)
		}
		sig, err := os.ReadFile(filepath.Join(out, "dev-1_4.sig"))
		if err != nil || envelope.VerifyDigest(&dk.PublicKey, sum[:], sig) != nil {
			t.Errorf("signature file does not verify (%v)", err)
		}
		for _, name := range []string{"dev-1_4.json", "dev-1_4.sig", "access.json"} {
			fi, err := os.Stat(filepath.Join(out, name))
			if err != nil || fi.Mode().Perm() != 0o600 {
				t.Errorf("%s: mode %v (%v), want 0600", name, fi.Mode().Perm(), err)
			}
		}
		var action map[string]any
		sent, err := envelope.Parse(f.bodies[0])
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(sent.Payload, &action); err != nil {
			t.Fatal(err)
		}
		if action["action"] != wire.ActionAccessRequest || action["actorId"] != "res-1" || action["patientId"] != "pat-1" {
			t.Errorf("signed action = %v", action)
		}
	})
	t.Run("the device key is found in a key directory", func(t *testing.T) {
		_, url := startFake(t, http.StatusOK, grant(hex.EncodeToString(sum[:])))
		keyDir := t.TempDir()
		b, err := os.ReadFile(devPub)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(keyDir, "dev-1.pub.pem"), b, 0o644); err != nil {
			t.Fatal(err)
		}
		a := args(url, t.TempDir())
		a = append(a[:len(a)-2], "--device-key-dir", keyDir)
		code, stdout, stderr := run(t, nil, a...)
		if code != ExitOK || !strings.Contains(stdout, "dev-1:4 VERIFIED") {
			t.Errorf("exit %d (%s), output %s", code, stderr, stdout)
		}
	})
	t.Run("a reading whose hash differs from the ledger's fails", func(t *testing.T) {
		_, url := startFake(t, http.StatusOK, grant(strings.Repeat("0", 64)))
		code, stdout, _ := run(t, nil, args(url, t.TempDir())...)
		if code != ExitFailure || !strings.Contains(stdout, "dev-1:4 FAILED") {
			t.Errorf("exit %d, output %s", code, stdout)
		}
	})
	t.Run("a denial exits one with the recorded access id", func(t *testing.T) {
		_, url := startFake(t, http.StatusForbidden, `{"error":{"code":"forbidden","message":"access denied: consent_revoked"},"accessId":"acc-2"}`)
		code, _, stderr := run(t, nil, args(url, t.TempDir())...)
		if code != ExitFailure || !strings.Contains(stderr, "acc-2") || !strings.Contains(stderr, "consent_revoked") {
			t.Errorf("exit %d, stderr %q", code, stderr)
		}
	})
}

func TestSignedGetCommandsSignTheRequest(t *testing.T) {
	dir := t.TempDir()
	regKey, regPub := keyPair(t, dir, "reg")
	pub, _, err := readPublicKey(regPub)
	if err != nil {
		t.Fatal(err)
	}
	f, url := startFake(t, http.StatusOK, `{"items":[{"id":"tx1","type":"access.denied","actorId":"res-1","txId":"tx1"}],"bookmark":"","count":1}`)
	code, out, stderr := run(t, nil, "audit", "events", "--gateway", url, "--actor", "reg-1", "--key", regKey, "--patient", "pat-1", "--type", "access.denied")
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(out, "access.denied") {
		t.Errorf("output: %s", out)
	}
	r := f.reqs[0]
	raw, err := base64.StdEncoding.DecodeString(r.Header.Get(wire.SignatureHeader))
	if err != nil {
		t.Fatal(err)
	}
	env, err := envelope.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	if err := env.Verify(pub); err != nil {
		t.Fatalf("signature: %v", err)
	}
	var a wire.HTTPGetAction
	if err := json.Unmarshal(env.Payload, &a); err != nil {
		t.Fatal(err)
	}
	if a.Path != r.RequestURI || a.ActorID != "reg-1" || r.URL.Query().Get("type") != "access.denied" {
		t.Errorf("signed %+v for %s", a, r.RequestURI)
	}
}

func TestSimulateSendsSignedReadingsUntilTheDuration(t *testing.T) {
	dir := t.TempDir()
	devPriv, devPub := keyPair(t, dir, "dev")
	pub, _, err := readPublicKey(devPub)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("accepted readings are counted and each is signed with a fresh seq", func(t *testing.T) {
		f, url := startFake(t, http.StatusAccepted, `{"readingId":"x","status":"queued"}`)
		code, out, stderr := run(t, nil, "device", "simulate", "--gateway", url, "--device", "dev-1="+devPriv,
			"--rate", "40", "--duration", "200ms", "--seq-start", "100", "--json")
		if code != ExitOK {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		var st simStats
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			t.Fatalf("output %q: %v", out, err)
		}
		if st.Sent == 0 || st.Sent != st.Accepted || st.Sent != len(f.reqs) {
			t.Errorf("sent %d, accepted %d, with %d requests", st.Sent, st.Accepted, len(f.reqs))
		}
		seen := map[float64]bool{}
		for _, b := range f.bodies {
			env, err := envelope.Parse(b)
			if err != nil {
				t.Fatal(err)
			}
			if err := env.Verify(pub); err != nil {
				t.Fatal(err)
			}
			var p map[string]any
			if err := json.Unmarshal(env.Payload, &p); err != nil {
				t.Fatal(err)
			}
			seq := p["seq"].(float64)
			if seen[seq] || seq < 100 || p["deviceId"] != "dev-1" {
				t.Errorf("reading %v repeats a seq or is misaddressed", p)
			}
			seen[seq] = true
		}
	})
	t.Run("refused readings make it exit one", func(t *testing.T) {
		_, url := startFake(t, http.StatusForbidden, `{"error":{"code":"forbidden","message":"device is revoked"}}`)
		code, out, _ := run(t, nil, "device", "simulate", "--gateway", url, "--device", "dev-1="+devPriv, "--rate", "20", "--duration", "100ms")
		if code != ExitFailure || !strings.Contains(out, "device is revoked") {
			t.Errorf("exit %d, output %s", code, out)
		}
	})
}
