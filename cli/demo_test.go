package cli

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The demo is the project's smoke test: every role, on the embedded
// gateway, with every outcome checked.
func TestDemoPassesOnTheEmbeddedGateway(t *testing.T) {
	code, out, stderr := run(t, nil, "demo", "--data-dir", t.TempDir())
	require.Equal(t, ExitOK, code, "exit code\nstderr: %s\nstdout:\n%s", stderr, out)
	for _, want := range []string{"decision granted", "verified locally", "HTTP 403", "denial recorded as access", "access.denied", "demo passed"} {
		assert.Contains(t, out, want)
	}
}

func TestDemoUsesAGivenGateway(t *testing.T) {
	t.Run("without an admin token it stops before any request", func(t *testing.T) {
		f, url := startFake(t, 200, `{}`)
		code, _, stderr := run(t, nil, "demo", "--gateway", url)
		assert.Equal(t, ExitUsage, code, "exit code; stderr %q", stderr)
		assert.Empty(t, f.reqs, "requests sent")
		assert.Contains(t, stderr, EnvAdminToken)
	})
	t.Run("an unexpected answer fails the step that got it", func(t *testing.T) {
		f, url := startFake(t, 201, `{"id":"someone-else","role":"patient","status":"active"}`)
		code, out, _ := run(t, map[string]string{EnvAdminToken: "tok"}, "demo", "--gateway", url)
		assert.Equal(t, ExitFailure, code, "exit code; output %s", out)
		assert.Contains(t, out, "DEMO FAILED at step 1")
		require.Len(t, f.reqs, 1, "requests sent")
		assert.Equal(t, "Bearer tok", f.reqs[0].Header.Get("Authorization"))
	})
}
