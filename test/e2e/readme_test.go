package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/medprov/medprov/wire"
)

// quickstart returns the shell block between the quickstart markers of
// the README.
func quickstart(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(RepoRoot(t), "README.md"))
	require.NoError(t, err)
	s := string(b)
	_, after, ok := strings.Cut(s, "<!-- quickstart:begin -->")
	require.True(t, ok, "README has no quickstart:begin marker")
	block, _, ok := strings.Cut(after, "<!-- quickstart:end -->")
	require.True(t, ok, "README has no quickstart:end marker")
	block = strings.TrimSpace(block)
	block = strings.TrimPrefix(block, "```sh")
	block = strings.TrimSuffix(block, "```")
	return block
}

// TestReadmeQuickstart runs the README's openssl + curl quickstart as
// written against the gateway binary and checks the reading was recorded.
func TestReadmeQuickstart(t *testing.T) {
	for _, tool := range []string{"openssl", "curl", "base64"} {
		_, err := exec.LookPath(tool)
		require.NoError(t, err, "the quickstart needs %s on PATH", tool)
	}
	g := NewGateway(t)
	g.Start(t)
	work := t.TempDir()
	cmd := exec.CommandContext(t.Context(), "bash", "-euo", "pipefail", "-c", quickstart(t))
	cmd.Dir = work
	cmd.Env = append(os.Environ(),
		"PATH="+filepath.Dir(Binary(t))+string(os.PathListSeparator)+os.Getenv("PATH"),
		"MEDPROV_GATEWAY="+g.URL(), "MEDPROV_ADMIN_TOKEN="+g.AdminToken)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "quickstart failed:\n%s", out)
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	var ack struct {
		ReadingID string `json:"readingId"`
		Status    string `json:"status"`
		TxID      string `json:"txId"`
		Block     uint64 `json:"block"`
	}
	require.NoError(t, json.Unmarshal([]byte(lines[len(lines)-1]), &ack),
		"last line of the quickstart is not the gateway's JSON answer:\n%s", out)
	assert.Equal(t, "monitor-7:1", ack.ReadingID, "quickstart answer %+v", ack)
	assert.Equal(t, wire.StatusRecorded, ack.Status, "quickstart answer %+v", ack)
	assert.NotEmpty(t, ack.TxID, "quickstart answer %+v: no transaction", ack)
	assert.NotZero(t, ack.Block, "quickstart answer %+v: no block", ack)
}
