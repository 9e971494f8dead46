package testnet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// scriptTimeout bounds one kubo.sh invocation; a first build takes minutes.
const scriptTimeout = 15 * time.Minute

// Kubo is a kubo daemon started for one test.
type Kubo struct {
	// API is the daemon's RPC address, "127.0.0.1:PORT".
	API string

	script string
	env    []string
}

// StartKubo builds kubo if it is missing (scripts/kubo.sh build), starts an
// offline daemon with its repo in a temporary directory and its API and
// gateway on free loopback ports, and stops it when the test ends. A failed
// build or start fails the test. The repo's datastore is the script's
// default (pebbleds).
func StartKubo(t testing.TB) *Kubo {
	t.Helper()
	return StartKuboProfile(t, "")
}

// StartKuboProfile is StartKubo with the repo's datastore profile named
// ("pebbleds" or "flatfs"; "" for the script's default), for tests that
// reach into the repo's files.
func StartKuboProfile(t testing.TB, profile string) *Kubo {
	t.Helper()
	root, err := RepoRoot()
	require.NoError(t, err, "testnet")
	script := filepath.Join(root, "scripts", "kubo.sh")
	out, err := runScript(t, script, nil, "build")
	require.NoError(t, err, "testnet: building kubo failed (run %s build to see why)\n%s", script, out)
	dir := t.TempDir()
	k := &Kubo{script: script}
	var lastErr error
	for attempt := range 3 {
		ports, err := freePorts(2)
		require.NoError(t, err, "testnet")
		k.API = fmt.Sprintf("127.0.0.1:%d", ports[0])
		k.env = []string{
			"IPFS_PATH=" + filepath.Join(dir, fmt.Sprintf("repo-%d", attempt)),
			"MEDPROV_KUBO_API_PORT=" + strconv.Itoa(ports[0]),
			"MEDPROV_KUBO_GATEWAY_PORT=" + strconv.Itoa(ports[1]),
		}
		if profile != "" {
			k.env = append(k.env, "MEDPROV_KUBO_PROFILE="+profile)
		}
		out, err := runScript(t, script, k.env, "start")
		if err == nil {
			t.Cleanup(func() { k.Stop(t) })
			return k
		}
		// A port taken between freePorts and the daemon's bind is retried.
		lastErr = fmt.Errorf("%w\n%s", err, out)
		if _, stopErr := runScript(t, script, k.env, "stop"); stopErr != nil {
			t.Logf("testnet: stopping failed kubo: %v", stopErr)
		}
	}
	require.Failf(t, "testnet: starting kubo failed", "try %s start: %v", script, lastErr)
	return nil
}

// Stop stops the daemon and waits for it to exit. Stopping a stopped daemon
// does nothing.
func (k *Kubo) Stop(t testing.TB) {
	t.Helper()
	out, err := runScript(t, k.script, k.env, "stop")
	assert.NoError(t, err, "testnet: stopping kubo\n%s", out)
}

// Start restarts a stopped daemon on the same repo and ports.
func (k *Kubo) Start(t testing.TB) {
	t.Helper()
	out, err := runScript(t, k.script, k.env, "start")
	require.NoError(t, err, "testnet: restarting kubo\n%s", out)
}

// Freeze suspends the daemon (SIGSTOP) so that it accepts connections but
// answers nothing, as a hung daemon would; the test's cleanup resumes it
// before stopping it.
func (k *Kubo) Freeze(t testing.TB) {
	t.Helper()
	p := k.process(t)
	require.NoError(t, p.Signal(syscall.SIGSTOP), "testnet: freezing kubo")
	t.Cleanup(func() { k.Thaw(t) })
	// kill(2) returns before every thread has stopped; wait until they have,
	// or a request sent right away may still be answered.
	require.Eventually(t, func() bool { return allThreadsStopped(p.Pid) }, 10*time.Second, 5*time.Millisecond,
		"testnet: kubo (pid %d) did not stop after SIGSTOP", p.Pid)
}

// allThreadsStopped reports whether every thread of pid is in state T.
func allThreadsStopped(pid int) bool {
	stats, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
	if err != nil || len(stats) == 0 {
		return false
	}
	for _, path := range stats {
		b, err := os.ReadFile(path)
		if err != nil {
			return false
		}
		// The state follows the parenthesised command name.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 || i+2 >= len(b) || b[i+2] != 'T' {
			return false
		}
	}
	return true
}

// Thaw resumes a frozen daemon (SIGCONT); thawing a running one does nothing.
func (k *Kubo) Thaw(t testing.TB) {
	t.Helper()
	if err := k.process(t).Signal(syscall.SIGCONT); !errors.Is(err, os.ErrProcessDone) {
		assert.NoError(t, err, "testnet: thawing kubo")
	}
}

// Kill ends the daemon with SIGKILL, as a crash would, and waits until it
// is gone; Start starts it again on the same repo.
func (k *Kubo) Kill(t testing.TB) {
	t.Helper()
	p := k.process(t)
	require.NoError(t, p.Kill(), "testnet: killing kubo")
	require.Eventually(t, func() bool { return p.Signal(syscall.Signal(0)) != nil }, 10*time.Second, 10*time.Millisecond,
		"testnet: kubo (pid %d) still runs after SIGKILL", p.Pid)
}

// process finds the daemon that kubo.sh started, from its pid file.
func (k *Kubo) process(t testing.TB) *os.Process {
	t.Helper()
	var repo string
	for _, kv := range k.env {
		if v, ok := strings.CutPrefix(kv, "IPFS_PATH="); ok {
			repo = v
		}
	}
	b, err := os.ReadFile(filepath.Join(repo, "medprov-kubo.pid"))
	require.NoError(t, err, "testnet: kubo pid file")
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	require.NoError(t, err, "testnet: kubo pid file")
	p, err := os.FindProcess(pid)
	require.NoError(t, err, "testnet: kubo process")
	return p
}

// Binary returns the path of the kubo binary that StartKubo uses.
func (k *Kubo) Binary(t testing.TB) string {
	t.Helper()
	out, err := runScript(t, k.script, k.env, "path")
	require.NoError(t, err, "testnet: kubo path\n%s", out)
	return strings.TrimSpace(string(out))
}

// Env returns the environment (IPFS_PATH and ports) that points the kubo
// binary and scripts/kubo.sh at this daemon.
func (k *Kubo) Env() []string {
	return append([]string(nil), k.env...)
}

func runScript(t testing.TB, script string, env []string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), scriptTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", append([]string{script}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	return out.Bytes(), err
}

// RepoRoot walks up from the working directory to the directory holding the
// medprov go.mod.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.Contains(b, []byte("module github.com/medprov/medprov\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no medprov go.mod above the working directory")
		}
		dir = parent
	}
}

// freePorts asks the kernel for n distinct free loopback ports.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close() // only held to keep the ports distinct
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
