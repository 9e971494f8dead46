package browser_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"image/color"
	"image/png"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/medprov/medprov/internal/browser"
)

// strictCSP is the policy the portal will serve: no inline script, no
// framing, everything from its own origin.
const strictCSP = "default-src 'self'; script-src 'self'; frame-ancestors 'none'"

func TestBrowser(t *testing.T) {
	began := time.Now()
	b := browser.Start(t)
	t.Logf("%s started in %s", b.Version(t), b.StartTime.Round(time.Millisecond))
	s := newSite(t)

	t.Run("a form is filled and sent with the keyboard alone", func(t *testing.T) {
		p := b.NewPage(t)
		p.Navigate(s.url + "/form")
		p.WaitVisible("#researcher")

		p.Keys(kb.Tab)
		assert.Equal(t, "researcher", p.Focused())
		p.Keys("researcher-7")
		p.Keys(kb.Tab)
		assert.Equal(t, "purpose", p.Focused())
		p.Keys(kb.ArrowDown) // care -> research
		p.Keys(kb.Tab)
		assert.Equal(t, "agree", p.Focused())
		p.Keys(" ")
		p.Keys(kb.Tab)
		assert.Equal(t, "grant", p.Focused())
		p.Keys(kb.Tab, chromedp.ModifierShift)
		assert.Equal(t, "agree", p.Focused(), "Shift+Tab goes back")
		p.Keys(kb.Tab + kb.Enter)

		p.WaitVisible("#granted")
		assert.Equal(t, "Granted to researcher-7 for research.", p.Text("#granted"))
		got := s.forms()
		require.Len(t, got, 1, "the server saw one POST")
		assert.Equal(t, url.Values{"researcher": {"researcher-7"}, "purpose": {"research"}, "agree": {"yes"}}, got[0])
		assert.Empty(t, p.Errors())
	})

	t.Run("a screenshot is a PNG of the whole page", func(t *testing.T) {
		p := b.NewPage(t)
		p.Navigate(s.url + "/tall")
		path := filepath.Join(t.TempDir(), "docs", "tall.png")

		w, h := p.Screenshot(path)

		assert.Equal(t, [2]int{browser.DefaultWidth, 2000}, [2]int{w, h}, "the page, beyond the viewport")
		f, err := os.Open(path)
		require.NoError(t, err)
		defer f.Close()
		img, err := png.Decode(f)
		require.NoError(t, err)
		assert.Equal(t, [2]int{w, h}, [2]int{img.Bounds().Dx(), img.Bounds().Dy()})
		wantBottom := color.RGBA{0x00, 0x55, 0xaa, 0xff}
		assert.Equal(t, wantBottom, color.RGBAModel.Convert(img.At(10, h-10)), "the part below the viewport is drawn")

		p.Navigate(s.url + "/form")
		w, h = p.Screenshot(path)
		assert.Equal(t, [2]int{browser.DefaultWidth, browser.DefaultHeight}, [2]int{w, h}, "a short page fills the viewport")
		p.SetViewport(390, 844)
		w, h = p.Screenshot(path)
		assert.Equal(t, [2]int{390, 844}, [2]int{w, h}, "as on a phone")
	})

	t.Run("a passkey is created and asserted with user verification", func(t *testing.T) {
		p := b.NewPage(t)
		auth := p.VirtualAuthenticator()
		p.Navigate(s.url + "/passkey")

		p.Click("#register")
		p.WaitVisible("#result-1")
		require.Equal(t, "ok", p.Attribute("#result-1", "data-state"), p.Text("#result-1"))
		creds := auth.Credentials()
		require.Len(t, creds, 1)
		assert.Equal(t, "localhost", creds[0].RpID)
		assert.True(t, creds[0].IsResidentCredential)
		assert.Equal(t, s.pk.credentialID(), creds[0].CredentialID, "the server registered the authenticator's credential")

		p.Click("#sign-in")
		p.WaitVisible("#result-2")
		require.Equal(t, "ok", p.Attribute("#result-2", "data-state"), p.Text("#result-2"))
		got := s.pk.verified()
		require.Len(t, got, 1, "the server verified one assertion")
		assert.NotZero(t, got[0].flags&flagUP, "user present")
		assert.NotZero(t, got[0].flags&flagUV, "user verified")
		assert.Equal(t, float64(got[0].signCount), auth.Credentials()[0].SignCount)
		assert.Empty(t, p.Errors())
	})

	t.Run("a passkey assertion that requires user verification fails without it", func(t *testing.T) {
		p := b.NewPage(t)
		auth := p.VirtualAuthenticator()
		p.Navigate(s.url + "/passkey")
		p.Click("#register")
		p.WaitVisible("#result-1")
		require.Equal(t, "ok", p.Attribute("#result-1", "data-state"), p.Text("#result-1"))
		before := len(s.pk.verified())

		auth.SetUserVerified(false)
		began := time.Now()
		p.Click("#sign-in")
		p.WaitVisible("#result-2")

		assert.Equal(t, "error", p.Attribute("#result-2", "data-state"))
		assert.Contains(t, p.Text("#result-2"), "NotAllowedError")
		assert.Len(t, s.pk.verified(), before, "nothing reached the server")
		t.Logf("the refused ceremony took %s", time.Since(began).Round(time.Millisecond))
	})

	t.Run("a tampered assertion reaches the server, which refuses it", func(t *testing.T) {
		p := b.NewPage(t)
		auth := p.VirtualAuthenticator()
		p.Navigate(s.url + "/passkey")
		p.Click("#register")
		p.WaitVisible("#result-1")
		require.Equal(t, "ok", p.Attribute("#result-1", "data-state"), p.Text("#result-1"))

		auth.SetTamper(browser.Tamper{ClearUV: true})
		p.Click("#sign-in")
		p.WaitVisible("#result-2")
		auth.SetTamper(browser.Tamper{BogusSignature: true})
		p.Click("#sign-in")
		p.WaitVisible("#result-3")
		auth.SetTamper(browser.Tamper{})
		p.Click("#sign-in")
		p.WaitVisible("#result-4")

		assert.Contains(t, p.Text("#result-2"), "400 user not verified")
		assert.Contains(t, p.Text("#result-3"), "400 bad signature")
		assert.Equal(t, "ok", p.Attribute("#result-4", "data-state"), p.Text("#result-4"))
	})

	t.Run("axe-core finds the serious violations of a bad page", func(t *testing.T) {
		axe := browser.LoadAxe(t, browser.AxePath())
		p := b.NewPage(t)
		p.Navigate(s.url + "/bad")

		var serious []string
		for _, v := range p.Axe(axe) {
			if v.IsSerious() {
				serious = append(serious, v.ID)
			}
		}

		assert.Subset(t, serious, []string{"image-alt", "label"})
	})

	t.Run("axe-core finds nothing on a good page served with a strict CSP", func(t *testing.T) {
		axe := browser.LoadAxe(t, browser.AxePath())
		p := b.NewPage(t)
		p.Navigate(s.url + "/good")

		assert.Empty(t, p.Axe(axe))
		p.RequireAccessible(axe)
		assert.Empty(t, p.Errors(), "injecting axe-core broke no CSP rule")
	})

	t.Run("an inline script is blocked by the CSP and the page's errors are recorded", func(t *testing.T) {
		p := b.NewPage(t)
		p.Navigate(s.url + "/inline")
		p.WaitVisible("#external-ran")

		csp := p.WaitConsole(func(m browser.ConsoleMessage) bool {
			return m.IsError() && strings.Contains(m.Text, "Content Security Policy")
		})
		exc := p.WaitConsole(func(m browser.ConsoleMessage) bool { return m.Type == "exception" })

		t.Logf("recorded: %s | %s", csp, exc)
		assert.Contains(t, csp.Text, "script-src 'self'")
		assert.Contains(t, exc.Text, "thrown by inline.js")
		assert.False(t, browser.Eval[bool](p, `document.body.dataset.inline === "ran"`), "the inline script did not run")
		assert.Len(t, p.Errors(), 2)
	})

	t.Logf("TestBrowser took %s", time.Since(began).Round(time.Millisecond))
}

func TestStartFailsClearlyWithoutChromium(t *testing.T) {
	rec := &failRecorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		browser.Start(rec, browser.WithChromium(filepath.Join(t.TempDir(), "no-chromium")))
	}()
	<-done

	assert.True(t, rec.failed)
	assert.Contains(t, rec.msg, "scripts/chromium.sh")
}

// failRecorder is a testing.TB whose failures are recorded instead of failing
// the test.
type failRecorder struct {
	testing.TB
	failed bool
	msg    string
}

func (r *failRecorder) Helper() {}

func (r *failRecorder) Errorf(format string, args ...any) {
	r.msg += fmt.Sprintf(format, args...)
}

func (r *failRecorder) FailNow() {
	r.failed = true
	runtime.Goexit()
}

// site is the test web site: static pages, a form handler and a passkey
// relying party that checks what it receives as a real one would.
type site struct {
	url string // http://localhost:PORT
	pk  *relyingParty

	mu       sync.Mutex
	received []url.Values
}

func newSite(t *testing.T) *site {
	s := &site{pk: &relyingParty{}}
	mux := http.NewServeMux()
	page := func(path, csp, body string) {
		mux.HandleFunc("GET "+path, func(w http.ResponseWriter, r *http.Request) {
			if csp != "" {
				w.Header().Set("Content-Security-Policy", csp)
			}
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			fmt.Fprint(w, body)
		})
	}
	file := func(path, contentType, body string) {
		mux.HandleFunc("GET "+path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", contentType)
			fmt.Fprint(w, body)
		})
	}
	const js = "text/javascript; charset=utf-8"
	page("/form", strictCSP, formPage)
	mux.HandleFunc("POST /form", s.handleForm)
	page("/tall", strictCSP, tallPage)
	file("/tall.css", "text/css; charset=utf-8", tallCSS)
	file("/pixel.svg", "image/svg+xml", pixelSVG)
	// Chromium asks every site for one; a 404 would show as a console error.
	file("/favicon.ico", "image/svg+xml", pixelSVG)
	page("/passkey", strictCSP, passkeyPage)
	file("/passkey.js", js, passkeyJS)
	page("/bad", strictCSP, badPage)
	page("/good", strictCSP, goodPage)
	page("/inline", strictCSP, inlinePage)
	file("/inline.js", js, inlineJS)
	s.pk.routes(mux)

	// Listen on loopback, browse by name: WebAuthn refuses IP addresses as
	// RP IDs, and http://localhost is a secure context.
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	s.url = strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)
	s.pk.origin = s.url
	return s
}

func (s *site) handleForm(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	s.received = append(s.received, r.PostForm)
	s.mu.Unlock()
	w.Header().Set("Content-Security-Policy", strictCSP)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	fmt.Fprintf(w, `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Granted</title></head>
<body><main><p id="granted">Granted to %s for %s.</p></main></body></html>`,
		html.EscapeString(r.PostForm.Get("researcher")), html.EscapeString(r.PostForm.Get("purpose")))
}

func (s *site) forms() []url.Values {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]url.Values(nil), s.received...)
}

// Flags of WebAuthn authenticator data.
const (
	flagUP = 0x01
	flagUV = 0x04
)

// relyingParty is a minimal WebAuthn relying party for ES256 passkeys: it
// checks the client data (type, challenge, origin), the RP ID hash, the UP
// and UV flags and the signature, which is what the harness must prove the
// browser produces.
type relyingParty struct {
	origin string

	mu        sync.Mutex
	challenge []byte
	credID    []byte
	pub       *ecdsa.PublicKey
	asserted  []assertion
}

type assertion struct {
	flags     byte
	signCount uint32
}

func (rp *relyingParty) routes(mux *http.ServeMux) {
	mux.HandleFunc("POST /register/begin", rp.begin)
	mux.HandleFunc("POST /login/begin", rp.begin)
	mux.HandleFunc("POST /register/finish", rp.finishRegistration)
	mux.HandleFunc("POST /login/finish", rp.finishLogin)
}

func (rp *relyingParty) credentialID() []byte {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	return rp.credID
}

func (rp *relyingParty) verified() []assertion {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	return append([]assertion(nil), rp.asserted...)
}

var b64 = base64.RawURLEncoding

func (rp *relyingParty) begin(w http.ResponseWriter, r *http.Request) {
	challenge := make([]byte, 32)
	userID := make([]byte, 16)
	rand.Read(challenge)
	rand.Read(userID)
	rp.mu.Lock()
	rp.challenge = challenge
	rp.mu.Unlock()
	writeJSON(w, map[string]string{"challenge": b64.EncodeToString(challenge), "userId": b64.EncodeToString(userID)})
}

func (rp *relyingParty) finishRegistration(w http.ResponseWriter, r *http.Request) {
	var req struct {
		ID, PublicKey, ClientDataJSON string
		Algorithm                     int
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	if _, err := rp.checkClientData(req.ClientDataJSON, "webauthn.create"); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	id, err1 := b64.DecodeString(req.ID)
	der, err2 := b64.DecodeString(req.PublicKey)
	key, err3 := x509.ParsePKIXPublicKey(der)
	pub, ok := key.(*ecdsa.PublicKey)
	if err1 != nil || err2 != nil || err3 != nil || !ok || req.Algorithm != -7 {
		http.Error(w, "not an ES256 credential", http.StatusBadRequest)
		return
	}
	rp.mu.Lock()
	rp.credID, rp.pub = id, pub
	rp.mu.Unlock()
	writeJSON(w, map[string]string{"registered": req.ID})
}

func (rp *relyingParty) finishLogin(w http.ResponseWriter, r *http.Request) {
	var req struct{ ID, ClientDataJSON, AuthenticatorData, Signature, UserHandle string }
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	clientData, err := rp.checkClientData(req.ClientDataJSON, "webauthn.get")
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	authData, err1 := b64.DecodeString(req.AuthenticatorData)
	sig, err2 := b64.DecodeString(req.Signature)
	if err1 != nil || err2 != nil || len(authData) < 37 {
		http.Error(w, "malformed assertion", http.StatusBadRequest)
		return
	}
	rpIDHash := sha256.Sum256([]byte("localhost"))
	flags := authData[32]
	switch {
	case !bytes.Equal(authData[:32], rpIDHash[:]):
		http.Error(w, "wrong RP ID", http.StatusBadRequest)
		return
	case flags&flagUP == 0:
		http.Error(w, "user not present", http.StatusBadRequest)
		return
	case flags&flagUV == 0:
		http.Error(w, "user not verified", http.StatusBadRequest)
		return
	}
	rp.mu.Lock()
	defer rp.mu.Unlock()
	clientHash := sha256.Sum256(clientData)
	digest := sha256.Sum256(append(append([]byte(nil), authData...), clientHash[:]...))
	if rp.pub == nil || !ecdsa.VerifyASN1(rp.pub, digest[:], sig) {
		http.Error(w, "bad signature", http.StatusBadRequest)
		return
	}
	a := assertion{flags: flags, signCount: binary.BigEndian.Uint32(authData[33:37])}
	rp.asserted = append(rp.asserted, a)
	writeJSON(w, map[string]any{"flags": a.flags, "signCount": a.signCount})
}

// checkClientData checks the type, challenge and origin of a ceremony's
// client data, and returns the client data.
func (rp *relyingParty) checkClientData(b64JSON, typ string) ([]byte, error) {
	raw, err := b64.DecodeString(b64JSON)
	if err != nil {
		return nil, errors.New("client data is not base64url")
	}
	var cd struct{ Type, Challenge, Origin string }
	if err := json.Unmarshal(raw, &cd); err != nil {
		return nil, errors.New("client data is not JSON")
	}
	rp.mu.Lock()
	want := b64.EncodeToString(rp.challenge)
	rp.mu.Unlock()
	switch {
	case cd.Type != typ:
		return nil, fmt.Errorf("client data type %q, want %q", cd.Type, typ)
	case cd.Challenge != want:
		return nil, errors.New("wrong challenge")
	case cd.Origin != rp.origin:
		return nil, fmt.Errorf("origin %q, want %q", cd.Origin, rp.origin)
	}
	return raw, nil
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(v); err != nil {
		http.Error(w, "encoding", http.StatusInternalServerError)
	}
}

const formPage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Grant consent</title></head>
<body><main>
<h1>Grant consent</h1>
<form method="post" action="/form">
  <p><label for="researcher">Researcher</label> <input id="researcher" name="researcher" required></p>
  <p><label for="purpose">Purpose</label>
    <select id="purpose" name="purpose"><option>care</option><option>research</option></select></p>
  <p><input type="checkbox" id="agree" name="agree" value="yes"> <label for="agree">I agree</label></p>
  <p><button id="grant" type="submit">Grant</button></p>
</form>
</main></body></html>`

const tallPage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Tall</title>
<link rel="stylesheet" href="/tall.css"></head>
<body><div id="top"></div><div id="bottom"></div></body></html>`

const tallCSS = `body { margin: 0 }
#top { height: 1000px; background: #fff }
#bottom { height: 1000px; background: #05a }
`

const passkeyPage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Passkey</title>
<script src="/passkey.js" defer></script></head>
<body><main>
<h1>Passkey</h1>
<button id="register" type="button">Create a passkey</button>
<button id="sign-in" type="button">Sign in</button>
<div id="results" aria-live="polite"></div>
</main></body></html>`

// passkeyJS is plain page JavaScript, as the portal will have it: the
// ceremonies run on a click and post what the authenticator returned.
const passkeyJS = `"use strict";
const b64u = (buf) => btoa(String.fromCharCode(...new Uint8Array(buf)))
  .replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
const unb64u = (s) => Uint8Array.from(atob(s.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0));

async function post(path, body) {
  const r = await fetch(path, {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
  if (!r.ok) throw new Error(path + ": " + r.status + " " + (await r.text()).trim());
  return r.json();
}

let credentialId = null;

async function register() {
  const o = await post("/register/begin", {});
  const cred = await navigator.credentials.create({publicKey: {
    rp: {id: location.hostname, name: "medprov harness"},
    user: {id: unb64u(o.userId), name: "patient-1", displayName: "Patient One"},
    challenge: unb64u(o.challenge),
    pubKeyCredParams: [{type: "public-key", alg: -7}],
    authenticatorSelection: {residentKey: "required", userVerification: "required"},
    timeout: 10000,
  }});
  credentialId = cred.rawId;
  return post("/register/finish", {
    id: b64u(cred.rawId),
    publicKey: b64u(cred.response.getPublicKey()),
    algorithm: cred.response.getPublicKeyAlgorithm(),
    clientDataJSON: b64u(cred.response.clientDataJSON),
  });
}

async function signIn() {
  const o = await post("/login/begin", {});
  const a = await navigator.credentials.get({publicKey: {
    challenge: unb64u(o.challenge),
    rpId: location.hostname,
    allowCredentials: [{type: "public-key", id: credentialId}],
    userVerification: "required",
    timeout: 10000,
  }});
  return post("/login/finish", {
    id: b64u(a.rawId),
    clientDataJSON: b64u(a.response.clientDataJSON),
    authenticatorData: b64u(a.response.authenticatorData),
    signature: b64u(a.response.signature),
    userHandle: a.response.userHandle ? b64u(a.response.userHandle) : "",
  });
}

let attempts = 0;
function report(name, promise) {
  const n = ++attempts;
  const show = (state, text) => {
    const out = document.createElement("p");
    out.id = "result-" + n;
    out.dataset.state = state;
    out.textContent = name + " " + state + ": " + text;
    document.getElementById("results").append(out);
  };
  promise.then((r) => show("ok", JSON.stringify(r)), (e) => show("error", e.name + ": " + e.message));
}

document.getElementById("register").addEventListener("click", () => report("register", register()));
document.getElementById("sign-in").addEventListener("click", () => report("sign-in", signIn()));
`

const badPage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Bad</title></head>
<body><main>
<h1>Bad</h1>
<img src="/pixel.svg">
<input id="nameless" type="text">
</main></body></html>`

const pixelSVG = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16"><rect width="16" height="16" fill="#05a"/></svg>`

const goodPage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Good</title></head>
<body><main>
<h1>Good</h1>
<img src="/pixel.svg" alt="A blue square">
<p><label for="name">Name</label> <input id="name" type="text"></p>
</main></body></html>`

const inlinePage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Inline</title>
<script>document.body.dataset.inline = "ran";</script>
<script src="/inline.js" defer></script></head>
<body><main><h1>Inline</h1></main></body></html>`

// inlineJS shows that an external script runs under the CSP, then throws.
const inlineJS = `"use strict";
const p = document.createElement("p");
p.id = "external-ran";
p.textContent = "The external script ran.";
document.querySelector("main").append(p);
throw new Error("thrown by inline.js");
`
