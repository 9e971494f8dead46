package web_test

import (
	"encoding/base64"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp/kb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/medprov/medprov/client"
	"github.com/medprov/medprov/internal/browser"
	"github.com/medprov/medprov/ledger"
	"github.com/medprov/medprov/node"
	"github.com/medprov/medprov/seal"
	"github.com/medprov/medprov/web"
	"github.com/medprov/medprov/wire"
)

const adminToken = "web-test-admin-token-0123456789"

// portal is a node on the embedded backends served on 127.0.0.1 and
// reached as http://localhost:PORT, the relying party of its passkeys.
type portal struct {
	n     *node.Node
	url   string
	admin *client.Client
}

func newPortal(t *testing.T) *portal {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	url := "http://localhost:" + strings.TrimPrefix(ln.Addr().String(), "127.0.0.1:")
	dir := t.TempDir()
	mk, err := seal.LoadOrCreateMasterKey(filepath.Join(dir, "master.key"))
	require.NoError(t, err)
	n, err := node.Open(t.Context(), node.Config{DataDir: dir, MasterKey: mk, AdminToken: adminToken, PublicURL: url})
	require.NoError(t, err)
	srv := httptest.NewUnstartedServer(n.Handler())
	require.NoError(t, srv.Listener.Close())
	srv.Listener = ln
	srv.Start()
	t.Cleanup(func() {
		srv.Close()
		assert.NoError(t, n.Close())
	})
	admin, err := client.New(url, client.WithAdminToken(adminToken))
	require.NoError(t, err)
	_, err = admin.SetRelyingParty(t.Context(), "localhost", []string{url})
	require.NoError(t, err)
	return &portal{n: n, url: url, admin: admin}
}

// invite returns the enrolment link of a new invitation of id as role.
func (s *portal) invite(t *testing.T, id, role string) string {
	t.Helper()
	inv, err := s.admin.Invite(t.Context(), wire.InviteRequest{ID: id, Role: role})
	require.NoError(t, err)
	require.Equal(t, s.url+wire.EnrolPathPrefix+inv.Token, inv.URL)
	return inv.URL
}

// passkey reads the passkey with credential id credID from the ledger.
func (s *portal) passkey(t *testing.T, credID []byte) wire.Passkey {
	t.Helper()
	b, err := s.n.Ledger.Evaluate(t.Context(), ledger.Proposal{Function: wire.FnGetPasskey,
		Args: []string{base64.RawURLEncoding.EncodeToString(credID)}})
	require.NoError(t, err)
	var pk wire.Passkey
	require.NoError(t, json.Unmarshal(b, &pk))
	return pk
}

func TestPortal(t *testing.T) {
	began := time.Now()
	s := newPortal(t)
	b := browser.Start(t)
	axe := browser.LoadAxe(t, browser.AxePath())
	t.Logf("%s started in %s", b.Version(t), b.StartTime.Round(time.Millisecond))

	t.Run("the landing page says what medprov is and is accessible", func(t *testing.T) {
		p := b.NewPage(t)
		assert.Equal(t, http.StatusOK, p.Navigate(s.url+"/"))
		p.WaitVisible("h1")
		assert.Contains(t, p.Text("main"), "passkey")
		assert.Contains(t, p.Text("main"), "invitation")
		p.RequireAccessible(axe)
		writeScreenshot(t, p, "portal-landing.png")
		assert.Empty(t, p.Errors(), "no script error, no CSP violation, no missing favicon")
	})

	t.Run("a patient enrols a passkey from the invitation link", func(t *testing.T) {
		link := s.invite(t, "patient-1", wire.RolePatient)
		p := b.NewPage(t)
		auth := p.VirtualAuthenticator()
		assert.Equal(t, http.StatusOK, p.Navigate(link))
		p.WaitVisible("#create-passkey")
		p.RequireAccessible(axe)
		stale := b.NewProfilePage(t) // the same link, opened on another device
		stale.VirtualAuthenticator()
		stale.Navigate(link)
		stale.WaitVisible("#create-passkey")
		writeScreenshot(t, p, "portal-enrol.png")
		p.SetViewport(390, 844)
		assert.LessOrEqual(t, browser.Eval[int](p, `document.documentElement.scrollWidth`), 390, "no sideways scrolling on a phone")
		p.SetViewport(browser.DefaultWidth, browser.DefaultHeight)

		p.Click("#create-passkey")
		p.WaitVisible("#status[data-done]")

		require.Equal(t, "ok", p.Attribute("#status", "data-state"), p.Text("#status"))
		assert.Equal(t, "patient-1", p.Text("#actor-id"))
		creds := auth.Credentials()
		require.Len(t, creds, 1)
		assert.Equal(t, "localhost", creds[0].RpID)
		pk := s.passkey(t, creds[0].CredentialID)
		assert.Equal(t, "patient-1", pk.ActorID, "the ledger holds the passkey for the patient")
		assert.Equal(t, "localhost", pk.RPID)
		p.RequireAccessible(axe)
		assert.Empty(t, p.Errors())

		t.Run("the used link says so when it is opened again", func(t *testing.T) {
			assert.Equal(t, http.StatusNotFound, p.Navigate(link))
			p.WaitVisible("#invite-invalid")
			assert.Contains(t, p.Text("#invite-invalid"), "already been used")
			assert.Zero(t, browser.Eval[int](p, `document.querySelectorAll("#create-passkey").length`))
			p.RequireAccessible(axe)
		})
		t.Run("a page opened before the link was used is refused with a clear message", func(t *testing.T) {
			stale.Click("#create-passkey")
			stale.WaitVisible("#status[data-done]")
			assert.Equal(t, "error", stale.Attribute("#status", "data-state"))
			assert.Contains(t, stale.Text("#status"), "not found, expired or already used")
		})
	})

	t.Run("a person enrols with the keyboard alone", func(t *testing.T) {
		link := s.invite(t, "researcher-1", wire.RoleResearcher)
		p := b.NewPage(t)
		auth := p.VirtualAuthenticator()
		p.Navigate(link)
		p.WaitVisible("#create-passkey")

		for range 5 {
			if p.Focused() == "create-passkey" {
				break
			}
			p.Keys(kb.Tab)
		}
		require.Equal(t, "create-passkey", p.Focused(), "the button is reached with Tab")
		p.Keys(kb.Enter)
		p.WaitVisible("#status[data-done]")

		require.Equal(t, "ok", p.Attribute("#status", "data-state"), p.Text("#status"))
		assert.Equal(t, "researcher-1", p.Text("#actor-id"))
		assert.Equal(t, "status", p.Focused(), "focus moves to the result")
		require.Len(t, auth.Credentials(), 1)
		assert.Equal(t, "researcher-1", s.passkey(t, auth.Credentials()[0].CredentialID).ActorID)
		assert.Empty(t, p.Errors())
	})

	t.Run("without user verification no passkey is enrolled and the page says why", func(t *testing.T) {
		link := s.invite(t, "patient-2", wire.RolePatient)
		p := b.NewPage(t)
		auth := p.VirtualAuthenticator()
		auth.SetUserVerified(false)
		p.Navigate(link)
		p.Click("#create-passkey")
		p.WaitVisible("#status[data-done]")

		assert.Equal(t, "error", p.Attribute("#status", "data-state"))
		assert.Contains(t, p.Text("#status"), "could not confirm it was you")
		assert.True(t, p.Attribute("#create-passkey", "disabled") == "", "the button stays usable to try again")

		t.Run("and with it, the same link works", func(t *testing.T) {
			auth.SetUserVerified(true)
			p.Click("#create-passkey")
			p.WaitVisible("#status[data-done]")
			require.Equal(t, "ok", p.Attribute("#status", "data-state"), p.Text("#status"))
			assert.Equal(t, "patient-2", p.Text("#actor-id"))
		})
	})
	t.Logf("the portal story took %s", time.Since(began).Round(time.Millisecond))
}

func TestPortalHeaders(t *testing.T) {
	s := newPortal(t)
	link := s.invite(t, "patient-1", wire.RolePatient)
	for _, tc := range []struct {
		name, path, contentType string
		status                  int
	}{
		{"the landing page is HTML", "/", "text/html; charset=utf-8", http.StatusOK},
		{"the enrolment page is HTML", strings.TrimPrefix(link, s.url), "text/html; charset=utf-8", http.StatusOK},
		{"the script is JavaScript", "/static/portal.js", "text/javascript; charset=utf-8", http.StatusOK},
		{"the style sheet is CSS", "/static/portal.css", "text/css; charset=utf-8", http.StatusOK},
		{"the favicon is the SVG icon", "/favicon.ico", "image/svg+xml", http.StatusOK},
		{"an unknown asset is not found", "/static/nope.js", "text/plain; charset=utf-8", http.StatusNotFound},
		{"a path out of the assets is not found", "/static/../web.go", "text/plain; charset=utf-8", http.StatusNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, s.url+tc.path, nil)
			require.NoError(t, err)
			res, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			require.NoError(t, res.Body.Close())
			assert.Equal(t, tc.status, res.StatusCode)
			assert.Equal(t, tc.contentType, res.Header.Get("Content-Type"))
			assert.Equal(t, web.ContentSecurityPolicy, res.Header.Get("Content-Security-Policy"))
			assert.Equal(t, "nosniff", res.Header.Get("X-Content-Type-Options"))
			assert.Equal(t, "no-referrer", res.Header.Get("Referrer-Policy"))
		})
	}
}

// writeScreenshot saves the page as docs/name at the repository's root,
// for the README.
func writeScreenshot(t *testing.T, p *browser.Page, name string) {
	t.Helper()
	dir := filepath.Join("..", "docs")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	p.Screenshot(filepath.Join(dir, name))
}
