package browser_test

import (
	"testing"

	"github.com/chromedp/chromedp/kb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/medprov/medprov/internal/browser"
)

// testGrant is how a portal test reads with the harness: a person enrols a
// passkey, grants consent with the keyboard alone, and the page is clean and
// accessible. A package's test runs it as
//
//	func TestGrant(t *testing.T) { testGrant(t, portal.URL) }
//
// with the portal served on 127.0.0.1 and portalURL its http://localhost:PORT.
func testGrant(t *testing.T, portalURL string) {
	b := browser.Start(t)
	p := b.NewPage(t)
	passkey := p.VirtualAuthenticator()

	p.Navigate(portalURL + "/enrol")
	p.Click("#create-passkey")
	p.WaitVisible("#enrolled")
	require.Len(t, passkey.Credentials(), 1)

	p.Navigate(portalURL + "/consents")
	p.Keys(kb.Tab + "researcher-7" + kb.Tab + kb.Enter)
	p.WaitVisible("#granted")

	assert.Empty(t, p.Errors(), "no script error, no CSP violation")
	p.RequireAccessible(browser.LoadAxe(t, browser.AxePath()))
	p.Screenshot("docs/portal-patient.png")
}

// Example shows a portal test written with the harness: testGrant above.
// It is compiled, not run, since it needs a portal.
func Example() {
	_ = testGrant
}
