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

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/medprov/medprov/client"
	"github.com/medprov/medprov/envelope"
	"github.com/medprov/medprov/internal/testkit"
	"github.com/medprov/medprov/wire"
)

var fixedTime = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// run runs the CLI with args and env and returns exit code and output.
func run(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Run(t.Context(), args, &out, &errb, func(k string) string { return env[k] })
	return code, out.String(), errb.String()
}

// assertMode asserts that the file at path has permission bits want.
func assertMode(t *testing.T, want os.FileMode, path string) {
	t.Helper()
	fi, err := os.Stat(path)
	require.NoError(t, err)
	got := fi.Mode().Perm()
	assert.Equal(t, want, got, "%s: mode %04o, want %04o", filepath.Base(path), got, want)
}

func TestKeygen(t *testing.T) {
	dir := t.TempDir()
	priv := filepath.Join(dir, "alice.pem")
	code, out, stderr := run(t, nil, "keygen", "--out", priv)
	require.Equal(t, ExitOK, code, "exit code; stderr %s", stderr)
	pubPath := filepath.Join(dir, "alice.pub.pem")
	assert.Contains(t, out, pubPath, "output does not name the public key file")

	t.Run("the private key is PKCS#8 PEM readable only by its owner", func(t *testing.T) {
		assertMode(t, 0o600, priv)
		b, err := os.ReadFile(priv)
		require.NoError(t, err)
		assert.True(t, bytes.HasPrefix(b, []byte("-----BEGIN PRIVATE KEY-----")), "not a PKCS#8 PEM: %.40s", b)
	})
	t.Run("the public key belongs to the private key", func(t *testing.T) {
		k, err := readPrivateKey(priv)
		require.NoError(t, err)
		pub, _, err := readPublicKey(pubPath)
		require.NoError(t, err)
		assert.True(t, pub.Equal(&k.PublicKey), "public key does not match the private key")
		assertMode(t, 0o644, pubPath)
	})
	t.Run("an existing key is not overwritten", func(t *testing.T) {
		before, err := os.ReadFile(priv)
		require.NoError(t, err)
		code, _, stderr := run(t, nil, "keygen", "--out", priv)
		assert.Equal(t, ExitFailure, code, "exit code; stderr %q", stderr)
		assert.Contains(t, stderr, "--force")
		after, err := os.ReadFile(priv)
		require.NoError(t, err)
		assert.Equal(t, before, after, "the key changed")
	})
	t.Run("force replaces the key and keeps the mode", func(t *testing.T) {
		before, err := os.ReadFile(priv)
		require.NoError(t, err)
		code, _, stderr := run(t, nil, "keygen", "--out", priv, "--force")
		require.Equal(t, ExitOK, code, "exit code; stderr %s", stderr)
		after, err := os.ReadFile(priv)
		require.NoError(t, err)
		assert.NotEqual(t, before, after, "key unchanged")
		assertMode(t, 0o600, priv)
	})
	t.Run("a key others can read is refused", func(t *testing.T) {
		require.NoError(t, os.Chmod(priv, 0o644))
		_, err := readPrivateKey(priv)
		assert.ErrorContains(t, err, "chmod 600", "want a refusal asking for chmod 600")
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
			assert.NotEmpty(t, strings.TrimSpace(c.Short), "no Short help")
			assert.GreaterOrEqual(t, len(strings.TrimSpace(c.Long)), len(c.Short), "Long help missing or shorter than Short")
			if c.Runnable() {
				c.Flags().VisitAll(func(f *pflag.Flag) {
					assert.NotEmpty(t, f.Usage, "flag --%s has no usage", f.Name)
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
			require.NoError(t, err)
			assert.Empty(t, rest, "arguments left over")
			assert.Equal(t, "medprov "+w, c.CommandPath())
		})
	}
	assert.GreaterOrEqual(t, n, len(want), "commands walked")
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
			assert.Equal(t, ExitUsage, code, "exit code; stderr %s", stderr)
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
	code, _, stderr := run(t, nil, "keygen", "--out", priv)
	require.Equal(t, ExitOK, code, "keygen: %s", stderr)
	return priv, publicKeyPath(priv)
}

func TestActorRegisterUsesTheAdminToken(t *testing.T) {
	dir := t.TempDir()
	_, pub := keyPair(t, dir, "pat")
	tokFile := filepath.Join(dir, "token")
	require.NoError(t, os.WriteFile(tokFile, []byte("from-file-token\n"), 0o600))
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
			require.Equal(t, ExitOK, code, "exit code; stderr %s", stderr)
			assert.Contains(t, out, "tx1", "output lacks the tx")
			require.NotEmpty(t, f.reqs, "requests sent")
			assert.Equal(t, "Bearer "+tt.wantToken, f.reqs[0].Header.Get("Authorization"))
		})
	}
	t.Run("no token is a usage error and sends nothing", func(t *testing.T) {
		f, url := startFake(t, http.StatusCreated, `{}`)
		code, _, _ := run(t, nil, "actor", "register", "--gateway", url, "--id", "p", "--role", "patient", "--pubkey", pub)
		assert.Equal(t, ExitUsage, code)
		assert.Empty(t, f.reqs, "requests sent")
	})
	t.Run("the gateway comes from MEDPROV_GATEWAY", func(t *testing.T) {
		f, url := startFake(t, http.StatusCreated, `{"id":"p"}`)
		code, _, stderr := run(t, map[string]string{EnvGateway: url, EnvAdminToken: "t"}, "actor", "register", "--id", "p", "--role", "patient", "--pubkey", pub)
		assert.Equal(t, ExitOK, code, "exit code; stderr %s", stderr)
		assert.Len(t, f.reqs, 1, "requests sent")
	})
	t.Run("a refusal exits one and shows the code", func(t *testing.T) {
		_, url := startFake(t, http.StatusConflict, `{"error":{"code":"conflict","message":"actor exists"}}`)
		code, _, stderr := run(t, map[string]string{EnvAdminToken: "t"}, "actor", "register", "--gateway", url, "--id", "p", "--role", "patient", "--pubkey", pub)
		assert.Equal(t, ExitFailure, code, "exit code; stderr %q", stderr)
		assert.Contains(t, stderr, "409 conflict: actor exists")
	})
}

func TestAccessRequestWritesAndVerifiesReadings(t *testing.T) {
	dir := t.TempDir()
	resKey, _ := keyPair(t, dir, "res")
	devPriv, devPub := keyPair(t, dir, "dev")
	dk, err := readPrivateKey(devPriv)
	require.NoError(t, err)
	p, err := client.NewReading("dev-1", 4, "heart_rate", "bpm", 71, fixedTime)
	require.NoError(t, err)
	env, err := client.SignReading(dk, p)
	require.NoError(t, err)
	sum := sha256.Sum256(env.Payload)
	grant := func(t *testing.T, hash string) string {
		t.Helper()
		return string(testkit.MustJSON(t, wire.AccessGrant{AccessID: "acc-1", Decision: "granted", Readings: []wire.ReleasedReading{
			{ReadingID: "dev-1:4", Payload: env.Payload, Signature: env.Signature, DataHash: hash, CID: "bafy"},
		}}))
	}
	args := func(url, out string) []string {
		return []string{"access", "request", "--gateway", url, "--researcher", "res-1", "--key", resKey, "--patient", "pat-1",
			"--purpose", "cardio.study", "--types", "heart_rate", "--out", out, "--device-pubkey", "dev-1=" + devPub}
	}

	t.Run("a genuine reading is written and verified", func(t *testing.T) {
		f, url := startFake(t, http.StatusOK, grant(t, hex.EncodeToString(sum[:])))
		out := filepath.Join(t.TempDir(), "released")
		code, stdout, stderr := run(t, nil, args(url, out)...)
		require.Equal(t, ExitOK, code, "exit code; stderr %s\nstdout %s", stderr, stdout)
		assert.Contains(t, stdout, "dev-1:4 VERIFIED")
		got, err := os.ReadFile(filepath.Join(out, "dev-1_4.json"))
		require.NoError(t, err, "payload file")
		assert.Equal(t, env.Payload, got, "payload file, want the signed bytes")
		sig, err := os.ReadFile(filepath.Join(out, "dev-1_4.sig"))
		require.NoError(t, err, "signature file")
		assert.NoError(t, envelope.VerifyDigest(&dk.PublicKey, sum[:], sig), "signature file does not verify")
		for _, name := range []string{"dev-1_4.json", "dev-1_4.sig", "access.json"} {
			assertMode(t, 0o600, filepath.Join(out, name))
		}
		require.NotEmpty(t, f.bodies, "requests sent")
		sent, err := envelope.Parse(f.bodies[0])
		require.NoError(t, err)
		var action map[string]any
		require.NoError(t, json.Unmarshal(sent.Payload, &action))
		assert.Equal(t, wire.ActionAccessRequest, action["action"], "signed action")
		assert.Equal(t, "res-1", action["actorId"], "signed actorId")
		assert.Equal(t, "pat-1", action["patientId"], "signed patientId")
	})
	t.Run("the device key is found in a key directory", func(t *testing.T) {
		_, url := startFake(t, http.StatusOK, grant(t, hex.EncodeToString(sum[:])))
		keyDir := t.TempDir()
		b, err := os.ReadFile(devPub)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(keyDir, "dev-1.pub.pem"), b, 0o644))
		a := args(url, t.TempDir())
		a = append(a[:len(a)-2], "--device-key-dir", keyDir)
		code, stdout, stderr := run(t, nil, a...)
		assert.Equal(t, ExitOK, code, "exit code; stderr %s", stderr)
		assert.Contains(t, stdout, "dev-1:4 VERIFIED")
	})
	t.Run("a reading whose hash differs from the ledger's fails", func(t *testing.T) {
		_, url := startFake(t, http.StatusOK, grant(t, strings.Repeat("0", 64)))
		code, stdout, _ := run(t, nil, args(url, t.TempDir())...)
		assert.Equal(t, ExitFailure, code, "exit code; output %s", stdout)
		assert.Contains(t, stdout, "dev-1:4 FAILED")
	})
	t.Run("a denial exits one with the recorded access id", func(t *testing.T) {
		_, url := startFake(t, http.StatusForbidden, `{"error":{"code":"forbidden","message":"access denied: consent_revoked"},"accessId":"acc-2"}`)
		code, _, stderr := run(t, nil, args(url, t.TempDir())...)
		assert.Equal(t, ExitFailure, code, "exit code; stderr %q", stderr)
		assert.Contains(t, stderr, "acc-2")
		assert.Contains(t, stderr, "consent_revoked")
	})
}

func TestSignedGetCommandsSignTheRequest(t *testing.T) {
	dir := t.TempDir()
	regKey, regPub := keyPair(t, dir, "reg")
	pub, _, err := readPublicKey(regPub)
	require.NoError(t, err)
	f, url := startFake(t, http.StatusOK, `{"items":[{"id":"tx1","type":"access.denied","actorId":"res-1","txId":"tx1"}],"bookmark":"","count":1}`)
	code, out, stderr := run(t, nil, "audit", "events", "--gateway", url, "--actor", "reg-1", "--key", regKey, "--patient", "pat-1", "--type", "access.denied")
	require.Equal(t, ExitOK, code, "exit code; stderr %s", stderr)
	assert.Contains(t, out, "access.denied")
	require.NotEmpty(t, f.reqs, "requests sent")
	r := f.reqs[0]
	raw, err := base64.StdEncoding.DecodeString(r.Header.Get(wire.SignatureHeader))
	require.NoError(t, err)
	env, err := envelope.Parse(raw)
	require.NoError(t, err)
	require.NoError(t, env.Verify(pub), "signature")
	var a wire.HTTPGetAction
	require.NoError(t, json.Unmarshal(env.Payload, &a))
	assert.Equal(t, r.RequestURI, a.Path, "signed path")
	assert.Equal(t, "reg-1", a.ActorID, "signed actor")
	assert.Equal(t, "access.denied", r.URL.Query().Get("type"), "type filter sent")
}

func TestSimulateSendsSignedReadingsUntilTheDuration(t *testing.T) {
	dir := t.TempDir()
	devPriv, devPub := keyPair(t, dir, "dev")
	pub, _, err := readPublicKey(devPub)
	require.NoError(t, err)
	t.Run("accepted readings are counted and each is signed with a fresh seq", func(t *testing.T) {
		f, url := startFake(t, http.StatusAccepted, `{"readingId":"x","status":"queued"}`)
		code, out, stderr := run(t, nil, "device", "simulate", "--gateway", url, "--device", "dev-1="+devPriv,
			"--rate", "40", "--duration", "200ms", "--seq-start", "100", "--json")
		require.Equal(t, ExitOK, code, "exit code; stderr %s", stderr)
		var st simStats
		require.NoError(t, json.Unmarshal([]byte(out), &st), "output %q", out)
		assert.NotZero(t, st.Sent, "readings sent")
		assert.Equal(t, st.Sent, st.Accepted, "readings accepted, want every one sent")
		assert.Len(t, f.reqs, st.Sent, "requests, want one per reading sent")
		seen := map[float64]bool{}
		for _, b := range f.bodies {
			env, err := envelope.Parse(b)
			require.NoError(t, err)
			require.NoError(t, env.Verify(pub))
			var p map[string]any
			require.NoError(t, json.Unmarshal(env.Payload, &p))
			seq, ok := p["seq"].(float64)
			require.True(t, ok, "reading %v has no numeric seq", p)
			assert.False(t, seen[seq], "reading %v repeats a seq", p)
			assert.GreaterOrEqual(t, seq, 100.0, "reading %v is below --seq-start", p)
			assert.Equal(t, "dev-1", p["deviceId"], "reading %v is misaddressed", p)
			seen[seq] = true
		}
	})
	t.Run("refused readings make it exit one", func(t *testing.T) {
		_, url := startFake(t, http.StatusForbidden, `{"error":{"code":"forbidden","message":"device is revoked"}}`)
		code, out, _ := run(t, nil, "device", "simulate", "--gateway", url, "--device", "dev-1="+devPriv, "--rate", "20", "--duration", "100ms")
		assert.Equal(t, ExitFailure, code, "exit code; output %s", out)
		assert.Contains(t, out, "device is revoked")
	})
}
