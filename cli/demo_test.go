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

func TestDemoUsesAGivenGateway(t *testing.T) {
	t.Run("without an admin token it stops before any request", func(t *testing.T) {
		f, url := startFake(t, 200, `{}`)
		code, _, stderr := run(t, nil, "demo", "--gateway", url)
		if code != ExitUsage || len(f.reqs) != 0 || !strings.Contains(stderr, EnvAdminToken) {
			t.Errorf("exit %d, %d requests, stderr %q", code, len(f.reqs), stderr)
		}
	})
	t.Run("an unexpected answer fails the step that got it", func(t *testing.T) {
		f, url := startFake(t, 201, `{"id":"someone-else","role":"patient","status":"active"}`)
		code, out, _ := run(t, map[string]string{EnvAdminToken: "tok"}, "demo", "--gateway", url)
		if code != ExitFailure || !strings.Contains(out, "DEMO FAILED at step 1") || len(f.reqs) != 1 {
			t.Errorf("exit %d, %d requests, output %s", code, len(f.reqs), out)
		}
		if got := f.reqs[0].Header.Get("Authorization"); got != "Bearer tok" {
			t.Errorf("Authorization = %q", got)
		}
	})
}
