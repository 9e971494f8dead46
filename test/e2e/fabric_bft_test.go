package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hyperledger/fabric-protos-go-apiv2/common"
	"github.com/hyperledger/fabric-protos-go-apiv2/msp"
	ordererpb "github.com/hyperledger/fabric-protos-go-apiv2/orderer"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/medprov/medprov/client"
	"github.com/medprov/medprov/internal/testnet"
	"github.com/medprov/medprov/test/scenario"
	"github.com/medprov/medprov/wire"
)

// bftQuorum is SmartBFT's quorum for the 4 orderers of a BFT network:
// ceil((n+f+1)/2) with f = 1.
const bftQuorum = 3

// TestScenarioFabricBFT runs on one SmartBFT network (4 orderers, two run
// by each side): it checks that the channel's block validation policy is
// a quorum of 3 consenters that neither side reaches alone, runs the same
// scenario suite as TestScenarioFabricKubo, then stops orderers one at a
// time under load, and finally checks that every block the peer committed
// carries valid signatures of at least 3 distinct orderers.
func TestScenarioFabricBFT(t *testing.T) {
	n := testnet.StartFabricNetwork(t, testnet.FabricOptions{Consensus: testnet.ConsensusBFT})
	require.Equal(t, 4, n.Orderers, "orderers of a BFT network")
	k := testnet.StartKubo(t)
	g := NewGateway(t, "--ledger", "fabric", "--fabric-profile", n.Profile, "--blobs", "kubo", "--kubo-api", k.API)

	consenters := bftConsenters(t, n)
	t.Run("block validation needs 3 of 4 orderers, so neither side alone", func(t *testing.T) {
		checkBFTBlockValidation(t, n, consenters)
	})

	g.Start(t)
	scenario.Run(t, scenario.Env{
		BaseURL:    g.URL(),
		AdminToken: g.AdminToken,
		Restart: func(t *testing.T) {
			g.Stop(t)
			g.Start(t)
		},
	})

	t.Run("offline audit bundles verify against the BFT quorum", func(t *testing.T) {
		auditStory(t, g.URL(), g.AdminToken, "bft-")
	})
	t.Run("orderers stopped one at a time under load lose nothing", func(t *testing.T) {
		bftOrdererFailures(t, g, n)
	})
	t.Run("restarted orderers catch up with the peer", func(t *testing.T) {
		waitSameHeight(t, n, time.Minute)
	})
	t.Run("every block carries a quorum of orderer signatures", func(t *testing.T) {
		checkBlockSignatures(t, n, consenters)
	})
}

// consenter is one entry of the channel's consenter mapping.
type consenter struct {
	mspID    string
	identity []byte // PEM certificate, as the mapping holds it
	key      *ecdsa.PublicKey
}

// bftConfig decodes the channel configuration of the network's genesis
// block (the block every orderer and peer joined).
func bftConfig(t *testing.T, n *testnet.FabricNetwork) *common.Config {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(n.Dir, "config", "medprov.block"))
	require.NoError(t, err, "genesis block")
	var block common.Block
	require.NoError(t, proto.Unmarshal(raw, &block), "genesis block")
	require.Len(t, block.GetData().GetData(), 1, "genesis block transactions")
	var env common.Envelope
	require.NoError(t, proto.Unmarshal(block.GetData().GetData()[0], &env), "genesis envelope")
	var payload common.Payload
	require.NoError(t, proto.Unmarshal(env.GetPayload(), &payload), "genesis payload")
	var cfg common.ConfigEnvelope
	require.NoError(t, proto.Unmarshal(payload.GetData(), &cfg), "genesis config")
	require.NotNil(t, cfg.GetConfig().GetChannelGroup().GetGroups()["Orderer"], "orderer group")
	return cfg.GetConfig()
}

// bftConsenters reads the consenter mapping (ID to MSP and certificate)
// from the genesis block.
func bftConsenters(t *testing.T, n *testnet.FabricNetwork) map[uint32]consenter {
	t.Helper()
	orderer := bftConfig(t, n).GetChannelGroup().GetGroups()["Orderer"]
	var ct ordererpb.ConsensusType
	require.NoError(t, proto.Unmarshal(orderer.GetValues()["ConsensusType"].GetValue(), &ct))
	require.Equal(t, "BFT", ct.GetType(), "consensus type")
	var mapping common.Orderers
	require.NoError(t, proto.Unmarshal(orderer.GetValues()["Orderers"].GetValue(), &mapping), "consenter mapping")
	out := map[uint32]consenter{}
	for _, c := range mapping.GetConsenterMapping() {
		b, _ := pem.Decode(c.GetIdentity())
		require.NotNil(t, b, "consenter %d identity is not PEM", c.GetId())
		cert, err := x509.ParseCertificate(b.Bytes)
		require.NoError(t, err, "consenter %d identity", c.GetId())
		key, ok := cert.PublicKey.(*ecdsa.PublicKey)
		require.True(t, ok, "consenter %d key is not ECDSA", c.GetId())
		out[c.GetId()] = consenter{mspID: c.GetMspId(), identity: c.GetIdentity(), key: key}
	}
	require.Len(t, out, 4, "consenters")
	return out
}

// checkBFTBlockValidation checks /Channel/Orderer/BlockValidation: a
// signature policy needing 3 of the 4 consenters' own identities, two of
// each orderer org, so the two orderers of one side cannot make a block
// valid without one of the other side.
func checkBFTBlockValidation(t *testing.T, n *testnet.FabricNetwork, consenters map[uint32]consenter) {
	orderer := bftConfig(t, n).GetChannelGroup().GetGroups()["Orderer"]
	policy := orderer.GetPolicies()["BlockValidation"].GetPolicy()
	require.NotNil(t, policy, "BlockValidation policy")
	require.Equal(t, int32(common.Policy_SIGNATURE), policy.GetType(), "BlockValidation is a signature policy, not ImplicitMeta ANY")
	var env common.SignaturePolicyEnvelope
	require.NoError(t, proto.Unmarshal(policy.GetValue(), &env))
	rule := env.GetRule().GetNOutOf()
	require.NotNil(t, rule, "BlockValidation rule is n-out-of")
	assert.Equal(t, int32(bftQuorum), rule.GetN(), "signatures a block needs")
	assert.Len(t, rule.GetRules(), 4, "signers the rule counts")

	perSide := map[string]int{}
	for i, p := range env.GetIdentities() {
		require.Equal(t, msp.MSPPrincipal_IDENTITY, p.GetPrincipalClassification(), "principal %d names one identity, not a role", i)
		var id msp.SerializedIdentity
		require.NoError(t, proto.Unmarshal(p.GetPrincipal(), &id), "principal %d", i)
		found := false
		for _, c := range consenters {
			found = found || (c.mspID == id.GetMspid() && string(c.identity) == string(id.GetIdBytes()))
		}
		assert.True(t, found, "principal %d (%s) is a consenter's identity", i, id.GetMspid())
		perSide[id.GetMspid()]++
	}
	assert.Equal(t, map[string]int{"HospitalOrdererMSP": 2, "ResearchOrdererMSP": 2}, perSide, "consenters per orderer org")
	for side, c := range perSide {
		assert.Less(t, c, int(rule.GetN()), "%s alone reaches the quorum", side)
	}
}

// bftOrdererFailures stops orderer0 (the first leader, hospital side:
// a view change) and then orderer3 (research side), one at a time, while
// two devices keep sending readings. While each is down, a reading
// acknowledged after the stop must reach the ledger (ordered by the other
// three); afterwards every acknowledged reading is on the ledger exactly
// once.
func bftOrdererFailures(t *testing.T, g *Gateway, n *testnet.FabricNetwork) {
	ctx := t.Context()
	g.Stop(t)
	g.Args = append(g.Args, "--device-rate", "-1")
	g.Start(t)

	senders := newSenders(t, g, "bft-")

	loadCtx, stopLoad := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, s := range senders {
		wg.Go(func() { s.run(loadCtx, t) })
	}
	defer func() { stopLoad(); wg.Wait() }() // on a failed require too
	for _, component := range []string{"orderer0", "orderer3"} {
		time.Sleep(2 * time.Second)
		t.Logf("stopping %s under load", component)
		require.NoError(t, n.Stop(ctx, component), "stopping %s", component)
		stopped := time.Now()
		id := senders[0].ackedAfter(t, senders[0].count(), time.Minute)
		waitOnLedger(t, n, id, 2*time.Minute)
		t.Logf("%s down: reading %s, acknowledged after the stop, committed by the other three orderers %s after the stop",
			component, id, time.Since(stopped).Round(time.Second))
		require.NoError(t, n.Up(ctx), "restarting %s", component)
	}
	time.Sleep(3 * time.Second)
	stopLoad()
	wg.Wait()

	total, onChain := drainedExactlyOnce(t, g, n, senders)
	t.Logf("%d readings acknowledged across two orderer stops; %d readings on chain in all; pushback answers: %d/%d",
		total, onChain, senders[0].pushback, senders[1].pushback)
}

// count returns how many readings the gateway has acknowledged so far.
func (s *sender) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.acked)
}

// ackedAfter waits until the gateway has acknowledged more than n
// readings and returns the ID of reading n+1.
func (s *sender) ackedAfter(t *testing.T, n int, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		s.mu.Lock()
		if len(s.acked) > n {
			id := s.acked[n]
			s.mu.Unlock()
			return id
		}
		s.mu.Unlock()
		require.False(t, time.Now().After(deadline), "%s: no reading acknowledged in %s", s.dev, timeout)
		time.Sleep(100 * time.Millisecond)
	}
}

// waitOnLedger waits until the hospital peer has reading id, asking the
// chaincode through Fabric's peer CLI (no orderer involved).
func waitOnLedger(t *testing.T, n *testnet.FabricNetwork, id string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		_, err := n.Query(t.Context(), wire.FnGetReading, id)
		if err == nil {
			return
		}
		require.False(t, time.Now().After(deadline), "reading %s not on the ledger after %s: %v", id, timeout, err)
		time.Sleep(time.Second)
	}
}

// waitSameHeight waits until every orderer and both peers report the same
// channel height on their operations service.
func waitSameHeight(t *testing.T, n *testnet.FabricNetwork, timeout time.Duration) {
	nodes := []string{"peer.hospital", "peer.research"}
	for i := range n.Orderers {
		nodes = append(nodes, "orderer"+strconv.Itoa(i))
	}
	deadline := time.Now().Add(timeout)
	for {
		heights := map[string]float64{}
		var errs []error
		for _, node := range nodes {
			h, err := channelHeight(t, n, node)
			errs = append(errs, err)
			heights[node] = h
		}
		err := errors.Join(errs...)
		same := err == nil
		for _, h := range heights {
			same = same && h == heights["peer.hospital"] && h > 0
		}
		if same {
			t.Logf("all nodes at height %.0f", heights["peer.hospital"])
			return
		}
		require.False(t, time.Now().After(deadline), "heights differ after %s: %v (%v)", timeout, heights, err)
		time.Sleep(time.Second)
	}
}

// channelHeight reads ledger_blockchain_height of the medprov channel from
// node's operations service.
func channelHeight(t *testing.T, n *testnet.FabricNetwork, node string) (float64, error) {
	t.Helper()
	base, err := n.OperationsURL(node)
	require.NoError(t, err)
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, base+"/metrics", nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	m, err := client.ParseMetrics(resp.Body)
	if err != nil {
		return 0, err
	}
	h, ok := m[`ledger_blockchain_height{channel="medprov"}`]
	if !ok {
		return 0, errors.New(node + " reports no ledger_blockchain_height for medprov")
	}
	return h, nil
}

// checkBlockSignatures reads every block the hospital peer committed and
// checks that each block after the genesis block carries valid ECDSA
// signatures of at least bftQuorum distinct consenters, from both sides.
// A SmartBFT orderer names itself by its consenter ID in an
// IdentifierHeader; it signs the signature metadata's value, that header
// and the block header's ASN.1 encoding.
func checkBlockSignatures(t *testing.T, n *testnet.FabricNetwork, consenters map[uint32]consenter) {
	height, err := channelHeight(t, n, "peer.hospital")
	require.NoError(t, err)
	require.Greater(t, height, float64(10), "blocks on the hospital peer")
	for num := uint64(1); num < uint64(height); num++ {
		raw, err := n.Block(t.Context(), num)
		require.NoError(t, err, "block %d", num)
		var b common.Block
		require.NoError(t, proto.Unmarshal(raw, &b), "block %d", num)
		require.Equal(t, num, b.GetHeader().GetNumber(), "block number")
		require.GreaterOrEqual(t, len(b.GetMetadata().GetMetadata()), int(common.BlockMetadataIndex_SIGNATURES)+1, "block %d metadata", num)
		var md common.Metadata
		require.NoError(t, proto.Unmarshal(b.GetMetadata().GetMetadata()[common.BlockMetadataIndex_SIGNATURES], &md), "block %d signatures", num)
		header, err := asn1.Marshal(struct {
			Number       *big.Int
			PreviousHash []byte
			DataHash     []byte
		}{new(big.Int).SetUint64(num), b.GetHeader().GetPreviousHash(), b.GetHeader().GetDataHash()})
		require.NoError(t, err)
		signers := map[uint32]bool{}
		sides := map[string]bool{}
		for _, sig := range md.GetSignatures() {
			var ih common.IdentifierHeader
			require.NoError(t, proto.Unmarshal(sig.GetIdentifierHeader(), &ih), "block %d identifier header", num)
			c, ok := consenters[ih.GetIdentifier()]
			if !assert.True(t, ok, "block %d signed by unknown consenter %d", num, ih.GetIdentifier()) {
				continue
			}
			signed := append(append(append([]byte{}, md.GetValue()...), sig.GetIdentifierHeader()...), header...)
			digest := sha256.Sum256(signed)
			if assert.True(t, ecdsa.VerifyASN1(c.key, digest[:], sig.GetSignature()), "block %d: consenter %d's signature", num, ih.GetIdentifier()) {
				signers[ih.GetIdentifier()] = true
				sides[c.mspID] = true
			}
		}
		assert.GreaterOrEqual(t, len(signers), bftQuorum, "block %d: distinct consenters with a valid signature", num)
		assert.Len(t, sides, 2, "block %d: orderer orgs among its signers", num)
	}
	t.Logf("blocks 1..%.0f each signed by at least %d of the 4 orderers", height-1, bftQuorum)
}
