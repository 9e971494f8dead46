package cli

import (
	"strings"
	"testing"
)

// The demo is the project's smoke test: every role, on the embedded
// gateway, with every outcome checked.
func TestDemoPassesOnTheEmbeddedGateway(t *testing.T) {
	code, out, stderr := run(t, nil, "demo", "--data-dir", t.TempDir())
	if code != ExitOK {
		t.Fatalf("exit %d\nstderr: %s\nstdout:\n%s", code, stderr, out)
	}
	for _, want := range []string{"decision granted", "verified locally", "HTTP 403", "denial recorded as access", "access.denied", "demo passed"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
}
