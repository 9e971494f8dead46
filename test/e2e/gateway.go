// Package e2e drives the medprov binary over real HTTP: it builds
// cmd/medprov, starts "medprov serve" as a child process on a loopback
// port, and runs the scenario suite against it.
package e2e

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// RepoRoot returns the module root (the directory holding go.mod).
func RepoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	require.True(t, ok, "cannot locate the test source")
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// Binary builds cmd/medprov once per test process and returns its path.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "medprov-e2e-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "medprov")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/medprov")
		cmd.Dir = RepoRoot(t)
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/medprov: %w\n%s", err, out)
		}
	})
	require.NoError(t, buildErr)
	return binPath
}

// FreePort returns a loopback address with a port free right now.
func FreePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// Gateway is a "medprov serve" child process.
type Gateway struct {
	Addr       string
	DataDir    string
	AdminToken string
	Args       []string // extra serve flags
	Env        []string // extra environment
	LogPath    string
	cmd        *exec.Cmd
	exited     chan struct{}
}

// URL is the gateway's base URL.
func (g *Gateway) URL() string { return "http://" + g.Addr }

// Start starts the process and waits until /healthz answers (60s at most).
func (g *Gateway) Start(t testing.TB) {
	t.Helper()
	logf, err := os.OpenFile(g.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	require.NoError(t, err)
	args := append([]string{"serve", "--addr", g.Addr, "--data-dir", g.DataDir, "--log-level", "warn"}, g.Args...)
	cmd := exec.Command(Binary(t), args...)
	cmd.Env = append(os.Environ(), append([]string{"MEDPROV_ADMIN_TOKEN=" + g.AdminToken}, g.Env...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	require.NoError(t, cmd.Start(), "starting medprov serve")
	g.cmd = cmd
	g.exited = make(chan struct{})
	go func() {
		_ = cmd.Wait() //nolint:errcheck // the exit is observed through exited
		logf.Close()
		close(g.exited)
	}()
	deadline := time.Now().Add(60 * time.Second)
	for !g.healthy(t) {
		select {
		case <-g.exited:
			require.FailNow(t, "medprov serve exited during start", "log: %s", tail(g.LogPath))
		default:
		}
		if time.Now().After(deadline) {
			g.Kill()
			require.FailNow(t, "medprov serve did not answer within 60s", "log: %s", tail(g.LogPath))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// healthy reports whether GET /healthz answers 200.
func (g *Gateway) healthy(t testing.TB) bool {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, g.URL()+"/healthz", nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// Stop sends SIGTERM and waits for a clean exit (30s at most, then SIGKILL).
func (g *Gateway) Stop(t testing.TB) {
	t.Helper()
	if g.cmd == nil {
		return
	}
	if err := g.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Logf("SIGTERM: %v", err)
	}
	select {
	case <-g.exited:
	case <-time.After(30 * time.Second):
		g.Kill()
		assert.Fail(t, "medprov serve ignored SIGTERM for 30s")
	}
	g.cmd = nil
}

// Kill sends SIGKILL, as a crash would, and waits for the process to go.
func (g *Gateway) Kill() {
	if g.cmd == nil {
		return
	}
	_ = g.cmd.Process.Kill() //nolint:errcheck // already gone is fine
	<-g.exited
	g.cmd = nil
}

// Running reports whether the process is alive.
func (g *Gateway) Running() bool {
	if g.cmd == nil {
		return false
	}
	select {
	case <-g.exited:
		return false
	default:
		return true
	}
}

func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// NewGateway prepares (does not start) a gateway in a temp dir.
func NewGateway(t testing.TB, extraArgs ...string) *Gateway {
	t.Helper()
	dir := t.TempDir()
	g := &Gateway{Addr: FreePort(t), DataDir: filepath.Join(dir, "data"), AdminToken: "e2e-admin-token-0123456789abcdef",
		Args: extraArgs, LogPath: filepath.Join(dir, "gateway.log")}
	t.Cleanup(func() {
		if g.Running() {
			g.Stop(t)
		}
		if t.Failed() {
			t.Logf("gateway log (tail):\n%s", tail(g.LogPath))
		}
	})
	return g
}
