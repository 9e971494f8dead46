package browser

import (
	"bytes"
	"context"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	jsonv2 "github.com/chromedp/cdproto/cdp/jsonv2"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
)

// Page is one browser tab, bound to the test that opened it: its actions
// fail that test when they cannot be done within the action timeout. Use a
// page from its test's goroutine only; open one page per subtest.
type Page struct {
	tb      testing.TB
	ctx     context.Context
	timeout time.Duration

	mu      sync.Mutex
	console []ConsoleMessage
	changed chan struct{} // closed and replaced when a message arrives
}

// NewPage opens a new tab, closed when the test ends. Its console is
// recorded from the moment it opens. Tabs of NewPage share one browser
// profile (cookies, storage); NewProfilePage opens a tab in a profile of
// its own.
func (b *Browser) NewPage(tb testing.TB) *Page {
	tb.Helper()
	return b.newPage(tb)
}

// NewProfilePage opens a new tab in a fresh, incognito-like browser
// context: its own cookies and storage, as a different person's browser
// would have. It is closed, and its context discarded, when the test ends.
func (b *Browser) NewProfilePage(tb testing.TB) *Page {
	tb.Helper()
	return b.newPage(tb, chromedp.WithNewBrowserContext())
}

func (b *Browser) newPage(tb testing.TB, opts ...chromedp.ContextOption) *Page {
	tb.Helper()
	p := &Page{tb: tb, timeout: b.timeout, changed: make(chan struct{})}
	ctx, cancel := chromedp.NewContext(b.ctx, append(opts, chromedp.WithListener(p.record))...)
	tb.Cleanup(cancel)
	p.ctx = ctx
	// The first action on a context binds the tab's life to the context it
	// is given, so it gets the page's own, not one with the action timeout.
	if err := chromedp.Do(ctx); err != nil {
		p.fail("opening a tab", err)
	}
	// Headless Chromium's viewport is the window less some room for the
	// browser's frame (1280x800 gives 1280x657); fix it to the asked size.
	p.SetViewport(b.width, b.height)
	return p
}

// Use binds the page to tb from now on: its actions fail tb. A story whose
// subtests share a person's tab opens the page in the parent test (so the
// tab lives as long as the story) and lets each subtest use it in turn.
func (p *Page) Use(tb testing.TB) { p.tb = tb }

// Context returns the tab's chromedp context, for actions this type does not
// offer: chromedp.Run(p.Context(), ...), chromedp.Call(p.Context(), ...).
func (p *Page) Context() context.Context { return p.ctx }

// Navigate opens url and waits for its load event. It returns the HTTP status
// of the document (0 when there was no HTTP response); an error status is a
// page like any other, not a failure.
func (p *Page) Navigate(url string) int {
	p.tb.Helper()
	resp := run(p, "navigating to "+url, chromedp.NavigateResponse(url))
	if resp == nil {
		return 0
	}
	return int(resp.Status)
}

// SetViewport sets the size of the page's viewport in CSS pixels (device
// scale factor 1), for example 390x844 to see the page as on a phone. Pages
// start with the browser's window size.
func (p *Page) SetViewport(width, height int) {
	p.tb.Helper()
	p.do("setting the viewport", chromedp.EmulateViewport(int64(width), int64(height)))
}

// Location returns the URL of the document shown.
func (p *Page) Location() string {
	p.tb.Helper()
	return run(p, "reading the location", chromedp.Location())
}

// WaitVisible waits until an element matching the CSS selector is visible.
func (p *Page) WaitVisible(sel string) {
	p.tb.Helper()
	p.do("waiting for "+sel+" to be visible", chromedp.WaitVisible(chromedp.CSS(sel)))
}

// WaitNotPresent waits until no element matches the CSS selector.
func (p *Page) WaitNotPresent(sel string) {
	p.tb.Helper()
	p.do("waiting for "+sel+" to go away", chromedp.WaitNotPresent(chromedp.CSS(sel)))
}

// Click clicks, with the mouse, the middle of the first visible element that
// matches the CSS selector.
func (p *Page) Click(sel string) {
	p.tb.Helper()
	p.do("clicking "+sel, chromedp.Click(chromedp.CSS(sel)))
}

// SendKeys focuses the first visible element that matches the CSS selector
// and types text into it as key events (see [Page.Keys] for special keys).
func (p *Page) SendKeys(sel, text string) {
	p.tb.Helper()
	p.do("typing into "+sel, chromedp.SendKeys(chromedp.CSS(sel), text))
}

// Keys types keys as key events into whatever has the focus, as a person
// using only the keyboard does. Special keys are the constants of
// github.com/chromedp/chromedp/kb, such as kb.Tab, kb.Enter and kb.Escape;
// "\t" is Tab and "\n" is Enter. Modifiers are held for every key:
// p.Keys(kb.Tab, chromedp.ModifierShift) moves the focus back.
func (p *Page) Keys(keys string, modifiers ...chromedp.Modifier) {
	p.tb.Helper()
	p.do("typing keys", chromedp.KeyEvent(keys, chromedp.KeyModifiers(modifiers...)))
}

// Focused returns the id of the element that has the focus ("" when it has
// no id, or when the focus is on the document itself).
func (p *Page) Focused() string {
	p.tb.Helper()
	return Eval[string](p, `(document.activeElement && document.activeElement !== document.body) ? document.activeElement.id : ""`)
}

// Text returns the rendered text (innerText) of the first element matching
// the CSS selector, waiting for one to be in the document.
func (p *Page) Text(sel string) string {
	p.tb.Helper()
	return run(p, "reading the text of "+sel, chromedp.Text(chromedp.CSS(sel)))
}

// Attribute returns the value of an attribute of the first element matching
// the CSS selector ("" when the element lacks it), waiting for one to be in
// the document.
func (p *Page) Attribute(sel, name string) string {
	p.tb.Helper()
	return run(p, "reading "+name+" of "+sel, chromedp.AttributeValue(chromedp.CSS(sel), name)).Value
}

// Value returns the value of the first form field matching the CSS selector.
func (p *Page) Value(sel string) string {
	p.tb.Helper()
	return run(p, "reading the value of "+sel, chromedp.Value(chromedp.CSS(sel)))
}

// Eval evaluates the JavaScript expression in the page, waits for the promise
// it returns if any, and decodes its JSON value into T. An exception thrown,
// or a promise rejected, fails the test. Evaluation through DevTools is not
// subject to the page's Content-Security-Policy.
func Eval[T any](p *Page, expr string) T {
	p.tb.Helper()
	return run(p, "evaluating script", chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
}

// Screenshot saves a PNG of the whole page, beyond the viewport, at path
// (its directory is created), and returns the image's size in pixels: the
// document's scroll size, at least the viewport's.
func (p *Page) Screenshot(path string) (width, height int) {
	p.tb.Helper()
	buf := run(p, "taking a screenshot", fullScreenshot)
	cfg, err := png.DecodeConfig(bytes.NewReader(buf))
	require.NoError(p.tb, err, "the screenshot is not a PNG")
	require.NoError(p.tb, os.MkdirAll(filepath.Dir(path), 0o755))
	require.NoError(p.tb, os.WriteFile(path, buf, 0o644))
	return cfg.Width, cfg.Height
}

// fullScreenshot captures the whole document, clipped to its content size.
// (chromedp.FullScreenshot sets no clip, and Chromium then captures only the
// viewport.)
var fullScreenshot chromedp.Action[[]byte] = func(ctx context.Context, t *chromedp.Target) ([]byte, error) {
	m, err := cdp.Call(ctx, t, page.GetLayoutMetrics, cdp.Empty{})
	if err != nil {
		return nil, err
	}
	w := math.Max(math.Ceil(m.CSSContentSize.Width), float64(m.CSSLayoutViewport.ClientWidth))
	h := math.Max(math.Ceil(m.CSSContentSize.Height), float64(m.CSSLayoutViewport.ClientHeight))
	r, err := cdp.Call(ctx, t, page.CaptureScreenshot, page.CaptureScreenshotParams{
		Format:                page.CaptureScreenshotFormatPng,
		Clip:                  &page.Viewport{Width: w, Height: h, Scale: 1},
		CaptureBeyondViewport: new(true),
		FromSurface:           new(true),
	})
	return r.Data, err
}

// ConsoleMessage is one line of the page's console: a console API call, an
// uncaught exception or unhandled rejection, or an entry of the browser log
// (network failures, Content-Security-Policy violations...).
type ConsoleMessage struct {
	// Type is "log", "info", "warning", "error", "debug"... for console calls
	// and log entries, or "exception" for an uncaught exception.
	Type string
	// Source is the browser log's source, such as "security" (which CSP
	// violations have), "network" or "javascript"; "console" for a console
	// API call and "exception" for an exception.
	Source string
	Text   string
	URL    string
	Line   int64 // 1-based; 0 when unknown
}

// IsError reports whether the message is an error or an exception.
func (m ConsoleMessage) IsError() bool {
	return m.Type == "error" || m.Type == "exception" || m.Type == "assert"
}

// String renders the message as one line for test output.
func (m ConsoleMessage) String() string {
	var b strings.Builder
	b.WriteString(m.Type)
	if m.Source != "" && m.Source != "console" && m.Source != "exception" {
		b.WriteString("/" + m.Source)
	}
	b.WriteString(": " + m.Text)
	if m.URL != "" {
		b.WriteString(" (" + m.URL)
		if m.Line > 0 {
			b.WriteString(":" + strconv.FormatInt(m.Line, 10))
		}
		b.WriteString(")")
	}
	return b.String()
}

// Console returns the messages recorded so far, in the order the browser
// sent them. Every message sent before an action of this page returned is in
// it.
func (p *Page) Console() []ConsoleMessage {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.console)
}

// Errors returns the recorded messages that are errors or exceptions.
func (p *Page) Errors() []ConsoleMessage {
	var errs []ConsoleMessage
	for _, m := range p.Console() {
		if m.IsError() {
			errs = append(errs, m)
		}
	}
	return errs
}

// WaitConsole waits, up to the action timeout, for a recorded message for
// which match is true (including one recorded before the call), and returns
// it. It fails the test if none comes.
func (p *Page) WaitConsole(match func(ConsoleMessage) bool) ConsoleMessage {
	p.tb.Helper()
	timer := time.NewTimer(p.timeout)
	defer timer.Stop()
	for seen := 0; ; {
		p.mu.Lock()
		msgs, changed := p.console[seen:], p.changed
		seen = len(p.console)
		p.mu.Unlock()
		for _, m := range msgs {
			if match(m) {
				return m
			}
		}
		select {
		case <-changed:
		case <-timer.C:
			require.FailNow(p.tb, "no matching console message",
				"waited %s; the console has:\n%s", p.timeout, joinLines(p.Console()))
		}
	}
}

// record is the tab's event listener. It runs in the loop that reads the
// tab's messages, so an event sent before a command's reply is recorded
// before that command returns; it must return fast.
func (p *Page) record(ev any) {
	var m ConsoleMessage
	switch ev := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		m = ConsoleMessage{Type: string(ev.Type), Source: "console", Text: argsText(ev.Args)}
		if st := ev.StackTrace; st != nil && len(st.CallFrames) > 0 {
			m.URL, m.Line = st.CallFrames[0].URL, st.CallFrames[0].LineNumber+1
		}
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		m = ConsoleMessage{Type: "exception", Source: "exception", Text: d.Text, URL: d.URL, Line: d.LineNumber + 1}
		if d.Exception != nil && d.Exception.Description != "" {
			m.Text += " " + d.Exception.Description
		}
	case *log.EventEntryAdded:
		e := ev.Entry
		m = ConsoleMessage{Type: string(e.Level), Source: string(e.Source), Text: e.Text, URL: e.URL}
		if e.LineNumber > 0 {
			m.Line = e.LineNumber + 1
		}
		if e.Level == log.EntryLevelVerbose {
			m.Type = "debug"
		}
	default:
		return
	}
	p.mu.Lock()
	p.console = append(p.console, m)
	close(p.changed)
	p.changed = make(chan struct{})
	p.mu.Unlock()
}

// argsText renders console arguments as the DevTools console does, roughly:
// strings as they are, other values by their description.
func argsText(args []*runtime.RemoteObject) string {
	parts := make([]string, 0, len(args))
	for _, a := range args {
		var s string
		switch {
		case a.Type == runtime.RemoteObjectTypeString && jsonv2.Unmarshal(a.Value, &s) == nil:
		case a.Description != "":
			s = a.Description
		case len(a.Value) > 0:
			s = string(a.Value)
		case a.UnserializableValue != "":
			s = string(a.UnserializableValue)
		default:
			s = string(a.Type)
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, " ")
}

// do runs actions within the action timeout and fails the test if one fails.
func (p *Page) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	p.tb.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, p.timeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		p.fail(what, err)
	}
}

// run runs one action within the action timeout and returns its value; it
// fails the test if the action fails.
func run[T any](p *Page, what string, a chromedp.Action[T]) T {
	p.tb.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, p.timeout)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		p.fail(what, err)
	}
	return v
}

// call sends one DevTools command to the tab within the action timeout and
// returns its result; it fails the test if the command fails.
func call[P, R any](p *Page, cmd cdp.Command[P, R], params P) R {
	p.tb.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, p.timeout)
	defer cancel()
	r, err := chromedp.Call(ctx, cmd, params)
	if err != nil {
		p.fail(cmd.Method, err)
	}
	return r
}

// fail ends the test with the error and, since a page's own errors usually
// explain a failed action, its console errors.
func (p *Page) fail(what string, err error) {
	p.tb.Helper()
	msg := what + ": " + err.Error()
	if errs := p.Errors(); len(errs) > 0 {
		msg += "\nthe page's console errors:\n" + joinLines(errs)
	}
	require.FailNow(p.tb, msg)
}

func joinLines(msgs []ConsoleMessage) string {
	if len(msgs) == 0 {
		return "  (nothing)"
	}
	var b strings.Builder
	for _, m := range msgs {
		b.WriteString("  " + m.String() + "\n")
	}
	return b.String()
}
