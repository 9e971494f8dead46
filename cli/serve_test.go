package cli

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// syncBuffer is a bytes.Buffer safe for the writer goroutine and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestServeKeepsTheAdminTokenOutOfItsOutput starts "medprov serve" with no
// admin token configured: it must generate one into a 0600 file in a 0700
// data dir and print where it is, never the token itself (stderr is the
// JSON log stream).
func TestServeKeepsTheAdminTokenOutOfItsOutput(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	dir := filepath.Join(t.TempDir(), "data")

	ctx, cancel := context.WithCancel(t.Context())
	var out, errb syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- Run(ctx, []string{"serve", "--addr", addr, "--data-dir", dir}, &out, &errb, func(string) string { return "" })
	}()
	require.Eventually(t, func() bool {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 60*time.Second, 50*time.Millisecond, "serve did not become healthy; stderr: %s", errb.String())
	cancel()
	assert.Equal(t, ExitOK, <-done)

	tokenPath := filepath.Join(dir, "admin.token")
	tok, err := os.ReadFile(tokenPath)
	require.NoError(t, err)
	token := strings.TrimSpace(string(tok))
	require.GreaterOrEqual(t, len(token), 16)
	assertMode(t, 0o600, tokenPath)
	assertMode(t, 0o700, dir)
	assert.Contains(t, errb.String(), tokenPath, "serve says where the token is")
	assert.NotContains(t, errb.String(), token, "the token never reaches the log stream")
	assert.NotContains(t, out.String(), token)
}

// TestServeFlagsReachTheNode checks that serve's tuning flags end up in the
// node's configuration (--max-lag was once parsed and then ignored).
func TestServeFlagsReachTheNode(t *testing.T) {
	a := &app{getenv: func(string) string { return "" }}
	o := &serveOptions{}
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	o.bind(fs)
	dir := t.TempDir()
	require.NoError(t, fs.Parse([]string{"--data-dir", dir, "--max-lag", "750ms", "--device-rate", "50",
		"--queue-max", "1234", "--batch-max", "77", "--batch-wait", "15ms", "--in-flight", "3"}))
	cfg, err := a.nodeConfig(o, "serve-test-admin-token-0123", nil)
	require.NoError(t, err)
	assert.Equal(t, 750*time.Millisecond, cfg.Limits.MaxLag)
	assert.Equal(t, 50.0, cfg.Limits.DeviceRate)
	assert.Equal(t, 1234, cfg.Queue.MaxPending)
	assert.Equal(t, 77, cfg.Batcher.MaxBatch)
	assert.Equal(t, 15*time.Millisecond, cfg.Batcher.MaxWait)
	assert.Equal(t, 3, cfg.Batcher.InFlight)
	assert.Equal(t, dir, cfg.DataDir)
}

// TestServeBatchingDefaults: without --batch-max and --in-flight, each
// ledger gets its own batching; given flags win on both.
func TestServeBatchingDefaults(t *testing.T) {
	tests := []struct {
		name            string
		args            []string
		batch, inFlight int
	}{
		{"embedded", []string{"--ledger", "embedded"}, 1000, 8},
		{"fabric", []string{"--ledger", "fabric"}, 500, 4},
		{"fabric with flags", []string{"--ledger", "fabric", "--batch-max", "900", "--in-flight", "6"}, 900, 6},
		{"embedded with flags", []string{"--batch-max", "10", "--in-flight", "2"}, 10, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := &serveOptions{}
			fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
			o.bind(fs)
			require.NoError(t, fs.Parse(tt.args))
			c := o.batcher()
			assert.Equal(t, tt.batch, c.MaxBatch, "readings per transaction")
			assert.Equal(t, tt.inFlight, c.InFlight, "transactions in flight")
		})
	}
}
