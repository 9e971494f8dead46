package browser

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// Axe is the source of axe-core, the accessibility rules engine, read once
// and injected into the pages to scan.
type Axe struct {
	path string
	src  string
}

// LoadAxe reads axe.min.js from path, the file scripts/axe.sh prints. It
// fails the test if the file is missing or is not axe-core.
func LoadAxe(tb testing.TB, path string) *Axe {
	tb.Helper()
	src, err := os.ReadFile(path)
	require.NoError(tb, err, "reading axe-core: run scripts/axe.sh, which installs it and prints its path")
	require.True(tb, strings.Contains(string(src[:min(len(src), 4096)]), "axe"),
		"%s does not look like axe-core's axe.min.js", path)
	return &Axe{path: path, src: string(src)}
}

// AxeViolation is one axe-core rule that some elements of the page break.
type AxeViolation struct {
	ID      string    `json:"id"`     // the rule, such as "image-alt" or "label"
	Impact  string    `json:"impact"` // "minor", "moderate", "serious" or "critical"
	Help    string    `json:"help"`   // what the rule asks, in one line
	HelpURL string    `json:"helpUrl"`
	Nodes   []AxeNode `json:"nodes"`
}

// AxeNode is one element that breaks a rule.
type AxeNode struct {
	// Target is the element's CSS selector path; a step into a shadow root
	// or a frame is joined with " >>> ".
	Target         []string `json:"target"`
	HTML           string   `json:"html"`
	FailureSummary string   `json:"failureSummary"`
}

// IsSerious reports whether the violation's impact is serious or critical.
func (v AxeViolation) IsSerious() bool {
	return v.Impact == "serious" || v.Impact == "critical"
}

// String renders the violation with its elements, one per line.
func (v AxeViolation) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s (%s): %s", v.ID, v.Impact, v.Help)
	for _, n := range v.Nodes {
		fmt.Fprintf(&b, "\n    %s  %s", strings.Join(n.Target, ", "), n.HTML)
	}
	return b.String()
}

// axeRun runs axe-core on the document with its default rules (WCAG 2.x A
// and AA plus best practices) and returns the violations in a flat shape.
const axeRun = `axe.run(document, {resultTypes: ["violations"]}).then(r => r.violations.map(v => ({
	id: v.id, impact: v.impact || "", help: v.help, helpUrl: v.helpUrl,
	nodes: v.nodes.map(n => ({
		target: n.target.map(t => Array.isArray(t) ? t.join(" >>> ") : String(t)),
		html: n.html, failureSummary: n.failureSummary || "",
	})),
})))`

// Axe scans the page as it is now with axe-core and returns every violation,
// of any impact. axe-core is injected through DevTools (Runtime.evaluate),
// which the page's Content-Security-Policy does not restrict, so a page with
// a strict policy is scanned as it is served.
func (p *Page) Axe(axe *Axe) []AxeViolation {
	p.tb.Helper()
	if !Eval[bool](p, `typeof window.axe === "object" && typeof window.axe.run === "function"`) {
		// The trailing expression keeps the (large) result of the script
		// itself from being sent back.
		Eval[bool](p, axe.src+"\n;true")
	}
	return Eval[[]AxeViolation](p, axeRun)
}

// RequireAccessible scans the page with axe-core and fails the test if any
// violation is serious or critical, listing each rule and the elements that
// break it. Minor and moderate violations are logged.
func (p *Page) RequireAccessible(axe *Axe) {
	p.tb.Helper()
	var serious, other []string
	for _, v := range p.Axe(axe) {
		if v.IsSerious() {
			serious = append(serious, v.String())
		} else {
			other = append(other, v.String())
		}
	}
	if len(other) > 0 {
		p.tb.Logf("axe: %d minor or moderate violations on %s:\n  %s", len(other), p.Location(), strings.Join(other, "\n  "))
	}
	if len(serious) > 0 {
		require.FailNow(p.tb, "serious accessibility violations",
			"axe-core found %d serious or critical violations on %s:\n  %s",
			len(serious), p.Location(), strings.Join(serious, "\n  "))
	}
}

// AxePath returns where scripts/axe.sh installs axe.min.js, so that every
// package's tests find it the same way: $MEDPROV_AXE_JS when set, else
// $MEDPROV_CACHE/npm/node_modules/axe-core/axe.min.js, with MEDPROV_CACHE
// defaulting to $HOME/.cache/medprov as in the scripts. (Test support reads
// the environment the test command sets, as net/http/httptest reads its flag.)
func AxePath() string {
	if p := os.Getenv("MEDPROV_AXE_JS"); p != "" {
		return p
	}
	cache := os.Getenv("MEDPROV_CACHE")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return ""
		}
		cache = filepath.Join(home, ".cache", "medprov")
	}
	return filepath.Join(cache, "npm", "node_modules", "axe-core", "axe.min.js")
}
