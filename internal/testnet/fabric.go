package testnet

import (
	"bytes"
	"context"
	"encoding/hex"
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
	// fabricPortSpan is how many consecutive ports network.sh uses for a
	// Raft network; fabricBFTPortSpan for a BFT one (its fourth orderer
	// sits after the peers).
	fabricPortSpan    = 50
	fabricBFTPortSpan = 60
	// chaincodeCLITimeout bounds one peer CLI invoke (endorsement, ordering
	// and the wait for both peers' commit) or query.
	chaincodeCLITimeout = 2 * time.Minute
)

// Consensus types of a test network (FabricOptions.Consensus).
const (
	// ConsensusRaft is Raft ordering: 1 or 3 orderers, all of OrdererMSP.
	ConsensusRaft = "raft"
	// ConsensusBFT is SmartBFT ordering: 4 orderers, orderer0 and orderer1
	// of HospitalOrdererMSP, orderer2 and orderer3 of ResearchOrdererMSP;
	// a block needs 3 of their signatures, and one may fail.
	ConsensusBFT = "bft"
)

// FabricOptions shapes a test network.
type FabricOptions struct {
	// Consensus is ConsensusRaft ("" means raft) or ConsensusBFT.
	Consensus string
	// Orderers is the cluster size: 1 (default) or 3 for Raft; 4 for BFT
	// (0 means 4).
	Orderers int
}

// normalize fills in defaults and refuses what network.sh would refuse.
func (o FabricOptions) normalize() (FabricOptions, error) {
	switch o.Consensus {
	case "", ConsensusRaft:
		o.Consensus = ConsensusRaft
		if o.Orderers == 0 {
			o.Orderers = 1
		}
		if o.Orderers != 1 && o.Orderers != 3 {
			return o, fmt.Errorf("testnet: a Raft network has 1 or 3 orderers, not %d", o.Orderers)
		}
	case ConsensusBFT:
		if o.Orderers == 0 {
			o.Orderers = 4
		}
		if o.Orderers != 4 {
			return o, fmt.Errorf("testnet: a BFT network has 4 orderers, not %d", o.Orderers)
		}
	default:
		return o, fmt.Errorf("testnet: unknown consensus %q (want %q or %q)", o.Consensus, ConsensusRaft, ConsensusBFT)
	}
	return o, nil
}

// portSpan is how many consecutive ports the network uses.
func (o FabricOptions) portSpan() int {
	if o.Consensus == ConsensusBFT {
		return fabricBFTPortSpan
	}
	return fabricPortSpan
}

// FabricNetwork is a Fabric network (orderers, a peer per organisation,
// chaincode servers) run by scripts/network.sh in its own state directory
// on its own loopback ports.
type FabricNetwork struct {
	// Profile is the path of the connection profile (ledger/fabric.LoadProfile).
	Profile string
	// Dir is the network's state directory (logs are in Dir/logs).
	Dir string
	// BasePort is the first of the ports the network uses (50 for Raft,
	// 60 for BFT).
	BasePort int
	// Consensus is ConsensusRaft or ConsensusBFT.
	Consensus string
	// Orderers is the number of orderers, named "orderer0" onwards.
	Orderers int

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
	opts, err := opts.normalize()
	if err != nil {
		return nil, err
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
		Dir:       filepath.Join(tmp, "network"),
		Consensus: opts.Consensus,
		Orderers:  opts.Orderers,
		script:    filepath.Join(root, "scripts", "network.sh"),
		tmp:       tmp,
	}

	var lastErr error
	for range 3 {
		base, err := freePortRange(opts.portSpan())
		if err != nil {
			lastErr = err
			continue
		}
		n.BasePort = base
		n.env = []string{
			"MEDPROV_NETWORK_DIR=" + n.Dir,
			"MEDPROV_NETWORK_BASE_PORT=" + strconv.Itoa(base),
			"MEDPROV_NETWORK_ORDERERS=" + strconv.Itoa(opts.Orderers),
			"MEDPROV_NETWORK_CONSENSUS=" + opts.Consensus,
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

// Stop stops one process of the network, keeping its state: "orderer0"
// (to "orderer2" with 3 Raft orderers, "orderer3" with BFT),
// "peer.hospital", "peer.research", "chaincode.hospital",
// "chaincode.research". Up starts it again.
func (n *FabricNetwork) Stop(ctx context.Context, component string) error {
	if out, err := n.run(ctx, time.Minute, "stop", component); err != nil {
		return fmt.Errorf("network.sh stop %s: %w\n%s", component, err, out)
	}
	return nil
}

// OperationsURL returns the base URL of a node's operations service
// (/healthz, /metrics): "orderer0" onwards, "peer.hospital" or
// "peer.research". It follows network.sh's port layout: orderer i on
// block i of ten ports (BFT's orderer3 on block 5), the peers on blocks 3
// and 4, each operations service on the block's third port.
func (n *FabricNetwork) OperationsURL(component string) (string, error) {
	block := -1
	switch component {
	case "peer.hospital":
		block = 3
	case "peer.research":
		block = 4
	default:
		if i, err := strconv.Atoi(strings.TrimPrefix(component, "orderer")); err == nil &&
			strings.HasPrefix(component, "orderer") && i >= 0 && i < n.Orderers {
			block = i
			if i >= 3 {
				block = i + 2
			}
		}
	}
	if block < 0 {
		return "", fmt.Errorf("testnet: no node %q in a network of %d orderer(s)", component, n.Orderers)
	}
	return "http://127.0.0.1:" + strconv.Itoa(n.BasePort+10*block+2), nil
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

// Invoke submits a transaction of the medprov chaincode with Fabric's own
// peer CLI (network.sh invoke), bypassing any medprov gateway: as the
// HospitalMSP admin, endorsed by the peers of both organisations. It
// returns the transaction ID once both peers committed it as valid. A
// proposal the chaincode refuses, or a transaction the peers invalidate,
// is an error whose text holds the CLI's output, the chaincode's message
// (wire.ParseError finds its refusal) included.
func (n *FabricNetwork) Invoke(ctx context.Context, fn string, args ...string) (string, error) {
	out, err := n.chaincodeCLI(ctx, "invoke", fn, args)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(out)), nil
}

// Query evaluates a function of the medprov chaincode with Fabric's own
// peer CLI (network.sh query) as the HospitalMSP admin on its peer, and
// returns the function's result. Errors are as Invoke's.
func (n *FabricNetwork) Query(ctx context.Context, fn string, args ...string) ([]byte, error) {
	out, err := n.chaincodeCLI(ctx, "query", fn, args)
	if err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(out, []byte("\n")), nil // the CLI ends the result with a newline
}

// Block returns block number of the channel as the hospital peer stored
// it, a marshalled common.Block with the orderers' signatures, read with
// Fabric's peer CLI (network.sh block).
func (n *FabricNetwork) Block(ctx context.Context, number uint64) ([]byte, error) {
	out, err := n.chaincodeCLI(ctx, "block", strconv.FormatUint(number, 10), nil)
	if err != nil {
		return nil, err
	}
	raw, err := hex.DecodeString(strings.TrimSpace(string(out)))
	if err != nil {
		return nil, fmt.Errorf("network.sh block %d: %w", number, err)
	}
	return raw, nil
}

// chaincodeCLI runs network.sh invoke, query or block and returns its
// standard output; its standard error is in the error.
func (n *FabricNetwork) chaincodeCLI(ctx context.Context, command, fn string, args []string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, chaincodeCLITimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", append([]string{n.script, command, "--", fn}, args...)...)
	cmd.Env = append(os.Environ(), n.env...)
	cmd.WaitDelay = 5 * time.Second // a killed bash leaves the peer CLI holding the pipes
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("network.sh %s %s: %w\n%s", command, fn, err, stderr.Bytes())
	}
	return stdout.Bytes(), nil
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
