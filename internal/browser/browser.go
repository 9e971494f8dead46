// Package browser drives a real, headless Chromium from Go tests: the
// system's Debian chromium (/usr/bin/chromium, installed by
// scripts/chromium.sh), started through chromedp with a fresh profile per
// test, never a browser download.
//
// It is test support, shared by every package whose tests need a browser.
// A [Browser] gives [Page]s (tabs) whose actions fail the test through
// testify's require when they cannot be done, so a test reads as the story a
// person acts out. A page also:
//
//   - records the console, uncaught exceptions and browser-log entries (a
//     Content-Security-Policy violation is one) for assertions ([Page.Console],
//     [Page.Errors], [Page.WaitConsole]);
//   - adds a DevTools virtual authenticator for passkey ceremonies
//     ([Page.VirtualAuthenticator]);
//   - runs axe-core in the page for accessibility checks ([Page.Axe],
//     [Page.RequireAccessible]).
//
// WebAuthn needs a domain as RP ID and a secure context: serve on 127.0.0.1
// and open http://localhost:PORT, never http://127.0.0.1:PORT.
//
// Example (example_test.go) is a whole test written with it; browser_test.go
// tests the harness itself against a local site with a strict CSP.
package browser

import (
	"context"
	"os"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
)

// DefaultChromium is the browser that Start runs unless told otherwise: the
// Debian package's, which scripts/chromium.sh installs.
const DefaultChromium = "/usr/bin/chromium"

// Default settings of Start.
const (
	DefaultWidth         = 1280
	DefaultHeight        = 800
	DefaultActionTimeout = 15 * time.Second
)

// Browser is one running Chromium process with its own empty profile. Its
// pages may be used from parallel tests, one page per test.
type Browser struct {
	ctx     context.Context // the browser's first tab; its children are new tabs
	timeout time.Duration
	width   int
	height  int

	// StartTime is how long the browser took to start and open its first tab.
	StartTime time.Duration
}

// Option changes how Start runs the browser.
type Option func(*config)

type config struct {
	chromium string
	width    int
	height   int
	timeout  time.Duration
	output   bool
}

// WithChromium runs the browser at path instead of DefaultChromium.
func WithChromium(path string) Option {
	return func(c *config) { c.chromium = path }
}

// WithWindowSize sets the size of the window and of every new page's
// viewport, in CSS pixels (the device scale factor is 1).
func WithWindowSize(width, height int) Option {
	return func(c *config) { c.width, c.height = width, height }
}

// WithActionTimeout bounds each action of a page (a navigation, a wait, a
// click...); an action still running then fails the test. A wait for
// something that never comes thus fails in seconds, not at the test timeout.
func WithActionTimeout(d time.Duration) Option {
	return func(c *config) { c.timeout = d }
}

// WithBrowserOutput copies the browser's own stdout and stderr to the test
// log, for debugging a crash or a refused flag.
func WithBrowserOutput() Option {
	return func(c *config) { c.output = true }
}

// Start runs a headless Chromium for the test and stops it, and removes its
// profile, when the test and its subtests end. It fails the test at once if
// the browser is missing (scripts/chromium.sh installs it) or does not start.
func Start(tb testing.TB, opts ...Option) *Browser {
	tb.Helper()
	cfg := config{
		chromium: DefaultChromium,
		width:    DefaultWidth,
		height:   DefaultHeight,
		timeout:  DefaultActionTimeout,
	}
	for _, o := range opts {
		o(&cfg)
	}
	if fi, err := os.Stat(cfg.chromium); err != nil || fi.IsDir() {
		require.FailNow(tb, "chromium is missing",
			"no browser at %s: run scripts/chromium.sh (apt-get install chromium) first", cfg.chromium)
	}

	// A fresh profile under the test's TempDir, registered before the
	// browser's cleanup so that it is removed after the browser has exited.
	profile := tb.TempDir()
	allocOpts := append(chromedp.DefaultExecAllocatorOptions[:], // headless, no first run, no sync, no background networking
		chromedp.ExecPath(cfg.chromium),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(cfg.width, cfg.height),
		chromedp.NoSandbox, // the sandbox cannot start as root, which tests and CI run as
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-domain-reliability", true),
		chromedp.Flag("no-pings", true),
	)
	if cfg.output {
		allocOpts = append(allocOpts, chromedp.CombinedOutput(testWriter{tb}))
	}

	// The browser outlives any one action: its life is the test's, ended by
	// the cleanup below rather than by t.Context(), which ends before
	// cleanups run and would kill the browser without a graceful close.
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), allocOpts...)
	ctx, cancelCtx := chromedp.NewContext(allocCtx)
	tb.Cleanup(func() {
		// Closes the browser gracefully, then waits for its process to exit.
		if err := chromedp.Cancel(ctx); err != nil {
			tb.Logf("browser: closing chromium: %v", err)
		}
		cancelCtx()
		cancelAlloc()
	})

	began := time.Now()
	require.NoError(tb, chromedp.Do(ctx), "starting %s (WithBrowserOutput shows its output)", cfg.chromium)
	return &Browser{
		ctx:       ctx,
		timeout:   cfg.timeout,
		width:     cfg.width,
		height:    cfg.height,
		StartTime: time.Since(began),
	}
}

// Version returns the browser's product and version, such as
// "Chrome/156.0.8078.114".
func (b *Browser) Version(tb testing.TB) string {
	tb.Helper()
	v, err := chromedp.CallBrowser(b.ctx, cdpbrowser.GetVersion, cdp.Empty{})
	require.NoError(tb, err, "Browser.getVersion")
	return v.Product
}

// testWriter forwards the browser's output to the test log.
type testWriter struct{ tb testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.tb.Logf("chromium: %s", p)
	return len(p), nil
}
