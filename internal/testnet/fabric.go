package testnet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	// fabricBuildTimeout bounds a cold build of the Fabric binaries.
	fabricBuildTimeout = 20 * time.Minute
	// fabricUpTimeout bounds one network.sh up (it also builds the chaincode).
	fabricUpTimeout = 10 * time.Minute
	// fabricPortSpan is how many consecutive ports network.sh uses.
	fabricPortSpan = 50
)

// FabricOptions shapes a test network.
type FabricOptions struct {
	// Orderers is the Raft cluster size, 1 (default) or 3.
	Orderers int
}

// FabricNetwork is a Fabric network (orderers, a peer per organisation,
// chaincode servers) run by scripts/network.sh in its own state directory
// on its own loopback ports.
type FabricNetwork struct {
	// Profile is the path of the connection profile (ledger/fabric.LoadProfile).
	Profile string
	// Dir is the network's state directory (logs are in Dir/logs).
	Dir string
	// BasePort is the first of the 50 ports the network uses.
	BasePort int

	script string
	tmp    string
	env    []string
}

// StartFabric starts a network for one test and returns the path of its
// connection profile; the network is stopped and removed when the test
// ends. The Fabric binaries are built first when missing. Failure to build
// or start fails the test.
func StartFabric(t testing.TB) string {
	t.Helper()
	return StartFabricNetwork(t, FabricOptions{}).Profile
}

// StartFabricNetwork is StartFabric with options, returning the network so a
// test can stop and restart its processes.
func StartFabricNetwork(t testing.TB, opts FabricOptions) *FabricNetwork {
	t.Helper()
	n, err := LaunchFabric(context.Background(), opts)
	require.NoError(t, err, "testnet: starting the Fabric network")
	t.Cleanup(func() { assert.NoError(t, n.Close(), "testnet: stopping the Fabric network") })
	return n
}

// LaunchFabric starts a network outside a test (for TestMain); the caller
// must Close it. It builds the Fabric binaries when missing.
func LaunchFabric(ctx context.Context, opts FabricOptions) (*FabricNetwork, error) {
	if opts.Orderers == 0 {
		opts.Orderers = 1
	}
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	if err := ensureFabricBinaries(ctx, root); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "medprov-fabric-")
	if err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	n := &FabricNetwork{
		Dir:    filepath.Join(tmp, "network"),
		script: filepath.Join(root, "scripts", "network.sh"),
		tmp:    tmp,
	}

	var lastErr error
	for range 3 {
		base, err := freePortRange(fabricPortSpan)
		if err != nil {
			lastErr = err
			continue
		}
		n.BasePort = base
		n.env = []string{
			"MEDPROV_NETWORK_DIR=" + n.Dir,
			"MEDPROV_NETWORK_BASE_PORT=" + strconv.Itoa(base),
			"MEDPROV_NETWORK_ORDERERS=" + strconv.Itoa(opts.Orderers),
		}
		out, err := n.run(ctx, fabricUpTimeout, "up")
		if err == nil {
			n.Profile = filepath.Join(n.Dir, "profile.json")
			if _, err = os.Stat(n.Profile); err == nil {
				return n, nil
			}
			err = fmt.Errorf("no connection profile after up: %w", err)
		}
		// A port taken between the probe and the bind is worth another try
		// on fresh ports; anything else fails the same way again, but the
		// retry is cheap next to a hidden flake.
		lastErr = fmt.Errorf("network.sh up (base port %d): %w\n%s%s", base, err, out, n.logTail())
		if _, downErr := n.run(ctx, time.Minute, "down"); downErr != nil {
			lastErr = errors.Join(lastErr, fmt.Errorf("network.sh down: %w", downErr))
		}
	}
	_ = os.RemoveAll(tmp) // best effort; the start error is the one to report
	return nil, fmt.Errorf("starting the Fabric network failed (try %s up): %w", n.script, lastErr)
}

// Stop stops one process of the network, keeping its state: "orderer0",
// "peer.hospital", "peer.research", "chaincode.hospital",
// "chaincode.research". Up starts it again.
func (n *FabricNetwork) Stop(ctx context.Context, component string) error {
	if out, err := n.run(ctx, time.Minute, "stop", component); err != nil {
		return fmt.Errorf("network.sh stop %s: %w\n%s", component, err, out)
	}
	return nil
}

// Up starts whatever process of the network is not running.
func (n *FabricNetwork) Up(ctx context.Context) error {
	if out, err := n.run(ctx, fabricUpTimeout, "up"); err != nil {
		return fmt.Errorf("network.sh up: %w\n%s%s", err, out, n.logTail())
	}
	return nil
}

// Close stops every process of the network and removes its state.
func (n *FabricNetwork) Close() error {
	out, err := n.run(context.Background(), 2*time.Minute, "down")
	if err != nil {
		return fmt.Errorf("network.sh down: %w\n%s", err, out)
	}
	if err := os.RemoveAll(n.tmp); err != nil {
		return fmt.Errorf("remove network state: %w", err)
	}
	return nil
}

func (n *FabricNetwork) run(ctx context.Context, timeout time.Duration, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", append([]string{n.script}, args...)...)
	cmd.Env = append(os.Environ(), n.env...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	return out.Bytes(), err
}

// logTail returns the end of every process log, for a failed start.
func (n *FabricNetwork) logTail() string {
	logs, err := filepath.Glob(filepath.Join(n.Dir, "logs", "*.log"))
	if err != nil || len(logs) == 0 {
		return ""
	}
	var b strings.Builder
	for _, path := range logs {
		data, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		lines = lines[max(0, len(lines)-15):]
		fmt.Fprintf(&b, "\n--- %s (last %d lines)\n%s", filepath.Base(path), len(lines), strings.Join(lines, "\n"))
	}
	return b.String()
}

// ensureFabricBinaries builds peer, orderer and the tools when missing.
func ensureFabricBinaries(ctx context.Context, root string) error {
	script := filepath.Join(root, "scripts", "fabric.sh")
	if exec.CommandContext(ctx, "bash", script, "check").Run() == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, fabricBuildTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", script)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("building the Fabric binaries failed (run %s to see why): %w\n%s", script, err, out.Bytes())
	}
	return nil
}

// freePortRange finds n consecutive loopback ports that are free now. It
// stays below the kernel's ephemeral range so outgoing connections do not
// take them before the network binds them.
func freePortRange(n int) (int, error) {
	const lo, hi = 10000, 32000
	for range 50 {
		base := lo + rand.IntN(hi-lo-n)
		if portsFree(base, n) {
			return base, nil
		}
	}
	return 0, fmt.Errorf("no %d consecutive free ports between %d and %d", n, lo, hi)
}

func portsFree(base, n int) bool {
	for p := base; p < base+n; p++ {
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			return false
		}
		_ = l.Close() // only probing
	}
	return true
}
