package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// quickstart returns the shell block between the quickstart markers of
// the README.
func quickstart(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(RepoRoot(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	_, after, ok := strings.Cut(s, "<!-- quickstart:begin -->")
	if !ok {
		t.Fatal("README has no quickstart:begin marker")
	}
	block, _, ok := strings.Cut(after, "<!-- quickstart:end -->")
	if !ok {
		t.Fatal("README has no quickstart:end marker")
	}
	block = strings.TrimSpace(block)
	block = strings.TrimPrefix(block, "```sh")
	block = strings.TrimSuffix(block, "```")
	return block
}

// TestReadmeQuickstart runs the README's openssl + curl quickstart as
// written against the gateway binary and checks the reading was recorded.
func TestReadmeQuickstart(t *testing.T) {
	for _, tool := range []string{"openssl", "curl", "base64"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the quickstart needs %s on PATH: %v", tool, err)
		}
	}
	g := NewGateway(t)
	g.Start(t)
	work := t.TempDir()
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", quickstart(t))
	cmd.Dir = work
	cmd.Env = append(os.Environ(),
		"PATH="+filepath.Dir(Binary(t))+string(os.PathListSeparator)+os.Getenv("PATH"),
		"MEDPROV_GATEWAY="+g.URL(), "MEDPROV_ADMIN_TOKEN="+g.AdminToken)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("quickstart failed: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	var ack struct {
		ReadingID string `json:"readingId"`
		Status    string `json:"status"`
		TxID      string `json:"txId"`
		Block     uint64 `json:"block"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &ack); err != nil {
		t.Fatalf("last line of the quickstart is not the gateway's JSON answer: %v\n%s", err, out)
	}
	if ack.ReadingID != "monitor-7:1" || ack.Status != "recorded" || ack.TxID == "" || ack.Block == 0 {
		t.Errorf("quickstart answer = %+v, want monitor-7:1 recorded in a block", ack)
	}
}
