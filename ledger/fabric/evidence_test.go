package fabric_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"log"
	"math/big"
	"testing"
	"time"

	"github.com/hyperledger/fabric-protos-go-apiv2/common"
	"github.com/hyperledger/fabric-protos-go-apiv2/ledger/rwset"
	"github.com/hyperledger/fabric-protos-go-apiv2/ledger/rwset/kvrwset"
	"github.com/hyperledger/fabric-protos-go-apiv2/msp"
	"github.com/hyperledger/fabric-protos-go-apiv2/peer"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/medprov/medprov/evidence"
	"github.com/medprov/medprov/internal/testnet"
	"github.com/medprov/medprov/ledger"
	"github.com/medprov/medprov/ledger/fabric"
	"github.com/medprov/medprov/wire"
)

// signer is a test identity: a P-256 key and a self-signed certificate.
type signer struct {
	mspID   string
	key     *ecdsa.PrivateKey
	certPEM []byte
}

func newSigner(t *testing.T, mspID string) signer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err, "generate key")
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: mspID + " test signer"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err, "create certificate")
	return signer{mspID: mspID, key: key, certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

func (s signer) serialized(t *testing.T) []byte {
	t.Helper()
	return mustMarshal(t, &msp.SerializedIdentity{Mspid: s.mspID, IdBytes: s.certPEM})
}

func (s signer) identity() evidence.Identity {
	return evidence.Identity{MSPID: s.mspID, CertPEM: s.certPEM}
}

func (s signer) sign(t *testing.T, msg []byte) []byte {
	t.Helper()
	digest := sha256.Sum256(msg)
	sig, err := ecdsa.SignASN1(rand.Reader, s.key, digest[:])
	require.NoError(t, err, "sign")
	return sig
}

func mustMarshal(t testing.TB, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	require.NoError(t, err, "marshal %T", m)
	return b
}

// verifies reports whether sig is a valid ECDSA signature of its signer's
// certificate over SHA-256 of sig.Signed.
func verifies(t *testing.T, sig evidence.Signature) bool {
	t.Helper()
	block, _ := pem.Decode(sig.Signer.CertPEM)
	require.NotNil(t, block, "signer certificate is PEM")
	cert, err := x509.ParseCertificate(block.Bytes)
	require.NoError(t, err, "parse signer certificate")
	pub, ok := cert.PublicKey.(*ecdsa.PublicKey)
	require.True(t, ok, "signer key is ECDSA")
	digest := sha256.Sum256(sig.Signed)
	return ecdsa.VerifyASN1(pub, digest[:], sig.Signature)
}

// headerDER is the block header encoding, built independently of the
// package: SEQUENCE { INTEGER number, OCTET STRING prev, OCTET STRING data }.
func headerDER(t *testing.T, number uint64, prev, data []byte) []byte {
	t.Helper()
	der, err := asn1.Marshal(struct {
		Number   *big.Int
		Previous []byte
		Data     []byte
	}{new(big.Int).SetUint64(number), prev, data})
	require.NoError(t, err, "header DER")
	return der
}

type nsWrites struct {
	namespace string
	writes    []*kvrwset.KVWrite
}

type txSpec struct {
	id        string
	chaincode string
	args      []string // function first
	creator   signer
	endorsers []signer
	writes    []nsWrites
	time      time.Time
}

// envelope builds a signed endorser transaction as a Fabric client and
// peers would.
func envelope(t *testing.T, spec txSpec) []byte {
	t.Helper()
	shdr := mustMarshal(t, &common.SignatureHeader{Creator: spec.creator.serialized(t), Nonce: []byte("nonce-" + spec.id)})
	var args [][]byte
	for _, a := range spec.args {
		args = append(args, []byte(a))
	}
	cis := &peer.ChaincodeInvocationSpec{ChaincodeSpec: &peer.ChaincodeSpec{
		ChaincodeId: &peer.ChaincodeID{Name: spec.chaincode},
		Input:       &peer.ChaincodeInput{Args: args},
	}}
	rws := &rwset.TxReadWriteSet{DataModel: rwset.TxReadWriteSet_KV}
	for _, ns := range spec.writes {
		rws.NsRwset = append(rws.NsRwset, &rwset.NsReadWriteSet{
			Namespace: ns.namespace,
			Rwset:     mustMarshal(t, &kvrwset.KVRWSet{Writes: ns.writes}),
		})
	}
	prp := mustMarshal(t, &peer.ProposalResponsePayload{
		ProposalHash: bytes.Repeat([]byte{7}, 32),
		Extension: mustMarshal(t, &peer.ChaincodeAction{
			Results:     mustMarshal(t, rws),
			ChaincodeId: &peer.ChaincodeID{Name: spec.chaincode},
			Response:    &peer.Response{Status: 200},
		}),
	})
	var endorsements []*peer.Endorsement
	for _, e := range spec.endorsers {
		id := e.serialized(t)
		endorsements = append(endorsements, &peer.Endorsement{Endorser: id, Signature: e.sign(t, append(bytes.Clone(prp), id...))})
	}
	tx := &peer.Transaction{Actions: []*peer.TransactionAction{{
		Header: shdr,
		Payload: mustMarshal(t, &peer.ChaincodeActionPayload{
			ChaincodeProposalPayload: mustMarshal(t, &peer.ChaincodeProposalPayload{Input: mustMarshal(t, cis)}),
			Action:                   &peer.ChaincodeEndorsedAction{ProposalResponsePayload: prp, Endorsements: endorsements},
		}),
	}}}
	payload := mustMarshal(t, &common.Payload{
		Header: &common.Header{
			ChannelHeader: mustMarshal(t, &common.ChannelHeader{
				Type:      int32(common.HeaderType_ENDORSER_TRANSACTION),
				ChannelId: "medprov",
				TxId:      spec.id,
				Timestamp: timestamppb.New(spec.time),
			}),
			SignatureHeader: shdr,
		},
		Data: mustMarshal(t, tx),
	})
	return mustMarshal(t, &common.Envelope{Payload: payload, Signature: spec.creator.sign(t, payload)})
}

// blockSigner signs a block as one orderer: Raft names the orderer in a
// SignatureHeader, SmartBFT by consenter ID in an IdentifierHeader.
type blockSigner struct {
	signer
	consenterID uint32
	bft         bool
}

type blockSpec struct {
	number  uint64
	prev    []byte
	data    [][]byte
	filter  []byte
	signers []blockSigner
}

// makeBlock assembles and signs a block as an orderer would.
func makeBlock(t *testing.T, spec blockSpec) []byte {
	t.Helper()
	dataHash := sha256.Sum256(bytes.Join(spec.data, nil))
	header := &common.BlockHeader{Number: spec.number, PreviousHash: spec.prev, DataHash: dataHash[:]}
	der := headerDER(t, spec.number, spec.prev, dataHash[:])
	value := mustMarshal(t, &common.OrdererBlockMetadata{
		LastConfig:        &common.LastConfig{Index: 0},
		ConsenterMetadata: mustMarshal(t, &common.Metadata{}),
	})
	sigs := &common.Metadata{Value: value}
	for _, s := range spec.signers {
		ms := &common.MetadataSignature{}
		var signerHeader []byte
		if s.bft {
			ms.IdentifierHeader = mustMarshal(t, &common.IdentifierHeader{Identifier: s.consenterID, Nonce: []byte("n")})
			signerHeader = ms.IdentifierHeader
		} else {
			ms.SignatureHeader = mustMarshal(t, &common.SignatureHeader{Creator: s.serialized(t), Nonce: []byte("n")})
			signerHeader = ms.SignatureHeader
		}
		ms.Signature = s.sign(t, bytes.Join([][]byte{value, signerHeader, der}, nil))
		sigs.Signatures = append(sigs.Signatures, ms)
	}
	md := make([][]byte, len(common.BlockMetadataIndex_name))
	md[common.BlockMetadataIndex_SIGNATURES] = mustMarshal(t, sigs)
	md[common.BlockMetadataIndex_TRANSACTIONS_FILTER] = spec.filter
	return mustMarshal(t, &common.Block{
		Header:   header,
		Data:     &common.BlockData{Data: spec.data},
		Metadata: &common.BlockMetadata{Metadata: md},
	})
}

// fixture is a small channel: two peer orgs with one peer each, a client,
// an orderer.
type fixture struct {
	hospitalPeer, researchPeer, client, orderer signer
}

func newFixture(t *testing.T) fixture {
	return fixture{
		hospitalPeer: newSigner(t, "HospitalMSP"),
		researchPeer: newSigner(t, "ResearchMSP"),
		client:       newSigner(t, "HospitalMSP"),
		orderer:      newSigner(t, "OrdererMSP"),
	}
}

func (f fixture) registerActor(t *testing.T, txID string) []byte {
	return envelope(t, txSpec{
		id:        txID,
		chaincode: "medprov",
		args:      []string{"RegisterActor", `{"id":"patient-1"}`},
		creator:   f.client,
		endorsers: []signer{f.hospitalPeer, f.researchPeer},
		writes: []nsWrites{
			{"medprov", []*kvrwset.KVWrite{
				{Key: "\x00actor\x00patient-1\x00", Value: []byte(`{"id":"patient-1"}`)},
				{Key: "\x00nonce\x00old\x00", IsDelete: true},
			}},
			{"othercc", []*kvrwset.KVWrite{{Key: "elsewhere", Value: []byte("x")}}},
		},
		time: time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC),
	})
}

func TestParseBlockHeader(t *testing.T) {
	f := newFixture(t)
	data := [][]byte{f.registerActor(t, "tx1")}
	cases := []struct {
		name   string
		number uint64
		prev   []byte
		data   []byte
		want   string // DER, hex
	}{
		{"a one-byte number", 1, []byte{1, 2}, []byte{3}, "300a020101040201020401" + "03"},
		{"a number with the high bit set takes a leading zero", 128, []byte{1, 2}, []byte{3}, "300b02020080040201020401" + "03"},
		{"the genesis block has an empty previous hash", 0, nil, []byte{3}, "3008020100040004" + "0103"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			raw := mustMarshal(t, &common.Block{
				Header: &common.BlockHeader{Number: c.number, PreviousHash: c.prev, DataHash: c.data},
				Data:   &common.BlockData{Data: data},
			})
			got, err := fabric.ParseBlock(raw)
			require.NoError(t, err, "ParseBlock")
			der, err := hex.DecodeString(c.want)
			require.NoError(t, err)
			want := sha256.Sum256(der)
			assert.Equal(t, want[:], got.Header.Hash, "header hash")
			assert.Equal(t, want[:], fabric.BlockFormat{}.HeaderHash(got.Header), "BlockFormat.HeaderHash")
			assert.Equal(t, c.number, got.Header.Number, "number")
			assert.Equal(t, c.prev, got.Header.PreviousHash, "previous hash")
			assert.Equal(t, c.data, got.Header.DataHash, "data hash")
		})
	}
}

func TestParseBlockEndorserTransactions(t *testing.T) {
	f := newFixture(t)
	tx1 := f.registerActor(t, "tx1")
	qualified := envelope(t, txSpec{
		id: "tx2", chaincode: "medprov", args: []string{"medprov.Contract:GetActor", "patient-1"},
		creator: f.client, endorsers: []signer{f.hospitalPeer}, time: time.Unix(0, 0),
	})
	prev := bytes.Repeat([]byte{9}, 32)
	raw := makeBlock(t, blockSpec{
		number: 7, prev: prev, data: [][]byte{tx1, qualified},
		filter:  []byte{byte(peer.TxValidationCode_VALID), byte(peer.TxValidationCode_MVCC_READ_CONFLICT)},
		signers: []blockSigner{{signer: f.orderer}},
	})
	got, err := fabric.ParseBlock(raw)
	require.NoError(t, err, "ParseBlock")

	t.Run("the data hash is recomputed from the data", func(t *testing.T) {
		want := sha256.Sum256(append(bytes.Clone(tx1), qualified...))
		assert.Equal(t, want[:], got.ComputedDataHash, "computed data hash")
		assert.Equal(t, got.Header.DataHash, got.ComputedDataHash, "header data hash")
		assert.Equal(t, prev, got.Header.PreviousHash, "previous hash")
	})

	t.Run("the orderer's signature verifies over metadata, signature header and header", func(t *testing.T) {
		require.Len(t, got.Orderers, 1, "orderer signatures")
		o := got.Orderers[0]
		assert.Equal(t, f.orderer.identity(), o.Signer, "orderer signer")
		assert.True(t, verifies(t, o), "orderer signature")
		assert.True(t, bytes.HasSuffix(o.Signed, headerDER(t, 7, prev, got.Header.DataHash)), "signed bytes end with the header")
	})

	require.Len(t, got.Txs, 2, "transactions")
	tx := got.Txs[0]

	t.Run("the creator's signature verifies over the envelope payload", func(t *testing.T) {
		assert.Equal(t, "tx1", tx.ID, "tx id")
		assert.Equal(t, 0, tx.Index, "index")
		assert.Equal(t, time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC), tx.Timestamp, "timestamp")
		assert.Equal(t, f.client.identity(), tx.Creator.Signer, "creator")
		assert.True(t, verifies(t, tx.Creator), "creator signature")
	})

	t.Run("each endorsement verifies over the response followed by the endorser", func(t *testing.T) {
		require.Len(t, tx.Endorsements, 2, "endorsements")
		require.Len(t, tx.EndorserIDs, 2, "endorser ids")
		for i, e := range tx.Endorsements {
			assert.True(t, verifies(t, e), "endorsement %d", i)
			assert.Equal(t, append(bytes.Clone(tx.Response), tx.EndorserIDs[i]...), e.Signed, "endorsement %d signed bytes", i)
		}
		assert.Equal(t, f.hospitalPeer.identity(), tx.Endorsements[0].Signer, "first endorser")
		assert.Equal(t, f.researchPeer.identity(), tx.Endorsements[1].Signer, "second endorser")
	})

	t.Run("a signature by another key does not verify", func(t *testing.T) {
		forged := tx.Creator
		forged.Signer = f.researchPeer.identity()
		assert.False(t, verifies(t, forged), "creator signature checked with another certificate")
	})

	t.Run("the invocation and the chaincode's own writes are read from the endorsed response", func(t *testing.T) {
		assert.Equal(t, "medprov", tx.Chaincode, "chaincode")
		assert.Equal(t, "RegisterActor", tx.Function, "function")
		assert.Equal(t, []string{`{"id":"patient-1"}`}, tx.Args, "args")
		assert.Equal(t, []evidence.Write{
			{Key: "\x00actor\x00patient-1\x00", Value: []byte(`{"id":"patient-1"}`)},
			{Key: "\x00nonce\x00old\x00", Delete: true},
		}, tx.Writes, "writes")
		assert.True(t, tx.FlaggedValid, "flagged valid")
	})

	t.Run("a contract-qualified function is reported by its name", func(t *testing.T) {
		q := got.Txs[1]
		assert.Equal(t, "GetActor", q.Function, "function")
		assert.Equal(t, []string{"patient-1"}, q.Args, "args")
		assert.Equal(t, 1, q.Index, "index")
		assert.Empty(t, q.Writes, "writes")
		assert.False(t, q.FlaggedValid, "an MVCC conflict is not flagged valid")
	})

	t.Run("without a transaction filter nothing is flagged valid", func(t *testing.T) {
		b, err := fabric.ParseBlock(makeBlock(t, blockSpec{number: 7, prev: prev, data: [][]byte{tx1}}))
		require.NoError(t, err, "ParseBlock")
		require.Len(t, b.Txs, 1, "transactions")
		assert.False(t, b.Txs[0].FlaggedValid, "flagged valid")
	})
}

func TestParseBlockSkipsWhatIsNotAnEndorserTransaction(t *testing.T) {
	f := newFixture(t)
	payload := mustMarshal(t, &common.Payload{
		Header: &common.Header{ChannelHeader: mustMarshal(t, &common.ChannelHeader{Type: int32(common.HeaderType_MESSAGE)})},
		Data:   []byte("hello"),
	})
	message := mustMarshal(t, &common.Envelope{Payload: payload, Signature: f.client.sign(t, payload)})
	garbled := mustMarshal(t, &common.Envelope{Payload: []byte{0xff}, Signature: []byte{1}})

	got, err := fabric.ParseBlock(makeBlock(t, blockSpec{
		number: 3, data: [][]byte{message, f.registerActor(t, "tx1"), garbled},
		filter: []byte{0, 0, byte(peer.TxValidationCode_BAD_PAYLOAD)},
	}))
	require.NoError(t, err, "ParseBlock")
	require.Len(t, got.Txs, 1, "only the endorser transaction is evidence")
	assert.Equal(t, 1, got.Txs[0].Index, "index of the endorser transaction")
	assert.Equal(t, got.Header.DataHash, got.ComputedDataHash, "the data hash covers every entry")
}

func TestParseBlockSmartBFTSignatures(t *testing.T) {
	f := newFixture(t)
	consenters := map[uint32]evidence.Identity{}
	var signers []blockSigner
	for id := uint32(1); id <= 3; id++ {
		s := newSigner(t, "OrdererMSP")
		consenters[id] = s.identity()
		signers = append(signers, blockSigner{signer: s, consenterID: id, bft: true})
	}
	signers = append(signers, blockSigner{signer: newSigner(t, "OrdererMSP"), consenterID: 99, bft: true})
	raw := makeBlock(t, blockSpec{number: 4, prev: []byte{1}, data: [][]byte{f.registerActor(t, "tx1")}, signers: signers})

	t.Run("without the consenter mapping the signers are unknown", func(t *testing.T) {
		got, err := fabric.ParseBlock(raw)
		require.NoError(t, err, "ParseBlock")
		require.Len(t, got.Orderers, 4, "orderer signatures")
		for i, o := range got.Orderers {
			assert.Equal(t, evidence.Identity{}, o.Signer, "signer %d", i)
		}
	})

	t.Run("with the consenter mapping each known consenter's signature verifies", func(t *testing.T) {
		got, err := fabric.ParseBlockWithConsenters(raw, consenters)
		require.NoError(t, err, "ParseBlockWithConsenters")
		require.Len(t, got.Orderers, 4, "orderer signatures")
		for i, o := range got.Orderers[:3] {
			assert.Equal(t, consenters[uint32(i+1)], o.Signer, "signer %d", i)
			assert.True(t, verifies(t, o), "signature of consenter %d", i+1)
		}
		assert.Equal(t, evidence.Identity{}, got.Orderers[3].Signer, "a consenter outside the mapping stays unknown")
	})
}

// Policy builders, as configtxgen encodes policies.
func signedBy(i int32) *common.SignaturePolicy {
	return &common.SignaturePolicy{Type: &common.SignaturePolicy_SignedBy{SignedBy: i}}
}

func nOutOf(n int32, rules ...*common.SignaturePolicy) *common.SignaturePolicy {
	return &common.SignaturePolicy{Type: &common.SignaturePolicy_NOutOf_{NOutOf: &common.SignaturePolicy_NOutOf{N: n, Rules: rules}}}
}

func role(t *testing.T, mspID string, r msp.MSPRole_MSPRoleType) *msp.MSPPrincipal {
	return &msp.MSPPrincipal{
		PrincipalClassification: msp.MSPPrincipal_ROLE,
		Principal:               mustMarshal(t, &msp.MSPRole{MspIdentifier: mspID, Role: r}),
	}
}

func signaturePolicy(t *testing.T, rule *common.SignaturePolicy, ids ...*msp.MSPPrincipal) *common.ConfigPolicy {
	return &common.ConfigPolicy{Policy: &common.Policy{
		Type:  int32(common.Policy_SIGNATURE),
		Value: mustMarshal(t, &common.SignaturePolicyEnvelope{Rule: rule, Identities: ids}),
	}}
}

func implicitMeta(t *testing.T, rule common.ImplicitMetaPolicy_Rule, sub string) *common.ConfigPolicy {
	return &common.ConfigPolicy{Policy: &common.Policy{
		Type:  int32(common.Policy_IMPLICIT_META),
		Value: mustMarshal(t, &common.ImplicitMetaPolicy{Rule: rule, SubPolicy: sub}),
	}}
}

// orgGroup is an organisation's config group with a Writers policy
// OR('MSPID.member') and an Endorsement policy OR('MSPID.peer').
func orgGroup(t *testing.T, ca signer) *common.ConfigGroup {
	return &common.ConfigGroup{
		Values: map[string]*common.ConfigValue{"MSP": {Value: mustMarshal(t, &msp.MSPConfig{
			Type: 0,
			Config: mustMarshal(t, &msp.FabricMSPConfig{
				Name:          ca.mspID,
				RootCerts:     [][]byte{ca.certPEM},
				FabricNodeOus: &msp.FabricNodeOUs{Enable: true},
			}),
		})}},
		Policies: map[string]*common.ConfigPolicy{
			"Writers":     signaturePolicy(t, nOutOf(1, signedBy(0)), role(t, ca.mspID, msp.MSPRole_MEMBER)),
			"Endorsement": signaturePolicy(t, nOutOf(1, signedBy(0)), role(t, ca.mspID, msp.MSPRole_PEER)),
		},
	}
}

// configBlock builds a config block whose orderer group has the given
// orgs, BlockValidation policy and (for SmartBFT) consenter mapping.
func configBlock(t *testing.T, peerCAs, ordererCAs []signer, blockValidation *common.ConfigPolicy, consenters []*common.Consenter) []byte {
	t.Helper()
	application := &common.ConfigGroup{Groups: map[string]*common.ConfigGroup{}}
	for _, ca := range peerCAs {
		application.Groups[ca.mspID] = orgGroup(t, ca)
	}
	orderer := &common.ConfigGroup{
		Groups:   map[string]*common.ConfigGroup{},
		Values:   map[string]*common.ConfigValue{},
		Policies: map[string]*common.ConfigPolicy{"BlockValidation": blockValidation},
	}
	for _, ca := range ordererCAs {
		orderer.Groups[ca.mspID] = orgGroup(t, ca)
	}
	if consenters != nil {
		orderer.Values["Orderers"] = &common.ConfigValue{Value: mustMarshal(t, &common.Orderers{ConsenterMapping: consenters})}
	}
	payload := mustMarshal(t, &common.Payload{
		Header: &common.Header{ChannelHeader: mustMarshal(t, &common.ChannelHeader{Type: int32(common.HeaderType_CONFIG), ChannelId: "medprov"})},
		Data: mustMarshal(t, &common.ConfigEnvelope{Config: &common.Config{ChannelGroup: &common.ConfigGroup{
			Groups: map[string]*common.ConfigGroup{"Application": application, "Orderer": orderer},
		}}}),
	})
	env := mustMarshal(t, &common.Envelope{Payload: payload, Signature: []byte{1}})
	return makeBlock(t, blockSpec{number: 0, data: [][]byte{env}})
}

func TestParseBlockConfig(t *testing.T) {
	hospital, research := newSigner(t, "HospitalMSP"), newSigner(t, "ResearchMSP")
	ordererA, ordererB := newSigner(t, "OrdererAMSP"), newSigner(t, "OrdererBMSP")

	t.Run("a Raft config block names every org and resolves ANY Writers to the orderer org's rule", func(t *testing.T) {
		raw := configBlock(t, []signer{research, hospital}, []signer{ordererA}, implicitMeta(t, common.ImplicitMetaPolicy_ANY, "Writers"), nil)
		got, err := fabric.ParseBlock(raw)
		require.NoError(t, err, "ParseBlock")
		require.NotNil(t, got.Config, "config")
		assert.Empty(t, got.Txs, "transactions")
		assert.Equal(t, []evidence.Org{
			{MSPID: "HospitalMSP", RootCerts: [][]byte{hospital.certPEM}, NodeOUs: true},
			{MSPID: "ResearchMSP", RootCerts: [][]byte{research.certPEM}, NodeOUs: true},
			{MSPID: "OrdererAMSP", RootCerts: [][]byte{ordererA.certPEM}, NodeOUs: true, Orderer: true},
		}, got.Config.Orgs, "orgs")
		assert.Empty(t, got.Config.Orderers, "Raft consenters are TLS endpoints, not signers")
		assert.Equal(t, evidence.Policy{Kind: evidence.PolicySignature, Rule: "OR('OrdererAMSP.member')"}, got.Config.BlockValidation, "block validation")

		consenters, err := fabric.ConfigConsenters(raw)
		require.NoError(t, err, "ConfigConsenters")
		assert.Empty(t, consenters, "consenters")
	})

	t.Run("a SmartBFT config block has a quorum of its consenters", func(t *testing.T) {
		var mapping []*common.Consenter
		var principals []*msp.MSPPrincipal
		var rules []*common.SignaturePolicy
		var want []evidence.Identity
		for i := range 4 {
			s := newSigner(t, "OrdererAMSP")
			mapping = append(mapping, &common.Consenter{Id: uint32(i + 1), MspId: s.mspID, Identity: s.certPEM, Host: "127.0.0.1", Port: 7050})
			principals = append(principals, &msp.MSPPrincipal{PrincipalClassification: msp.MSPPrincipal_IDENTITY, Principal: s.serialized(t)})
			rules = append(rules, signedBy(int32(i)))
			want = append(want, s.identity())
		}
		// n=4 tolerates f=1; Fabric's quorum is ceil((n+f+1)/2) = 3.
		raw := configBlock(t, []signer{hospital}, []signer{ordererA}, signaturePolicy(t, nOutOf(3, rules...), principals...), mapping)
		got, err := fabric.ParseBlock(raw)
		require.NoError(t, err, "ParseBlock")
		assert.Equal(t, want, got.Config.Orderers, "orderers")
		assert.Equal(t, evidence.Policy{Kind: evidence.PolicyQuorum, Quorum: 3, Members: want}, got.Config.BlockValidation, "block validation")

		consenters, err := fabric.ConfigConsenters(raw)
		require.NoError(t, err, "ConfigConsenters")
		assert.Len(t, consenters, 4, "consenters")
		assert.Equal(t, want[2], consenters[3], "consenter 3")
	})

	rules := []struct {
		name   string
		policy *common.ConfigPolicy
		want   string
	}{
		{"MAJORITY over two orderer orgs needs both", implicitMeta(t, common.ImplicitMetaPolicy_MAJORITY, "Writers"),
			"AND(OR('OrdererAMSP.member'),OR('OrdererBMSP.member'))"},
		{"ANY over two orderer orgs needs one", implicitMeta(t, common.ImplicitMetaPolicy_ANY, "Writers"),
			"OR(OR('OrdererAMSP.member'),OR('OrdererBMSP.member'))"},
		{"a single principal is an OR of it", signaturePolicy(t, signedBy(0), role(t, "OrdererAMSP", msp.MSPRole_ORDERER)),
			"OR('OrdererAMSP.orderer')"},
		{"two of three roles is OutOf", signaturePolicy(t, nOutOf(2, signedBy(0), signedBy(1), signedBy(2)),
			role(t, "OrdererAMSP", msp.MSPRole_ADMIN), role(t, "OrdererBMSP", msp.MSPRole_CLIENT), role(t, "OrdererAMSP", msp.MSPRole_PEER)),
			"OutOf(2,'OrdererAMSP.admin','OrdererBMSP.client','OrdererAMSP.peer')"},
		{"nested gates keep their structure", signaturePolicy(t, nOutOf(2, signedBy(0), nOutOf(1, signedBy(1), signedBy(0))),
			role(t, "OrdererAMSP", msp.MSPRole_MEMBER), role(t, "OrdererBMSP", msp.MSPRole_MEMBER)),
			"AND('OrdererAMSP.member',OR('OrdererBMSP.member','OrdererAMSP.member'))"},
	}
	for _, c := range rules {
		t.Run("block validation: "+c.name, func(t *testing.T) {
			got, err := fabric.ParseBlock(configBlock(t, []signer{hospital}, []signer{ordererA, ordererB}, c.policy, nil))
			require.NoError(t, err, "ParseBlock")
			assert.Equal(t, evidence.Policy{Kind: evidence.PolicySignature, Rule: c.want}, got.Config.BlockValidation, "block validation")
			_, err = evidence.Satisfied(got.Config.BlockValidation, nil, nil)
			assert.NoError(t, err, "package evidence parses the rule")
		})
	}

	t.Run("a policy over principals the rule language lacks is refused", func(t *testing.T) {
		ou := &msp.MSPPrincipal{PrincipalClassification: msp.MSPPrincipal_ORGANIZATION_UNIT, Principal: []byte("x")}
		_, err := fabric.ParseBlock(configBlock(t, []signer{hospital}, []signer{ordererA}, signaturePolicy(t, nOutOf(1, signedBy(0)), ou), nil))
		assert.ErrorContains(t, err, "ORGANIZATION_UNIT", "ParseBlock")
	})
}

func TestParseBlockRefusesMalformedBlocks(t *testing.T) {
	f := newFixture(t)
	good := f.registerActor(t, "tx1")
	// The same envelope with its fields in reverse order decodes, but is not
	// the encoding its re-encoding (and so its signature) stands for.
	var env common.Envelope
	require.NoError(t, proto.Unmarshal(good, &env))
	reordered := protowire.AppendTag(nil, 2, protowire.BytesType)
	reordered = protowire.AppendBytes(reordered, env.GetSignature())
	reordered = protowire.AppendTag(reordered, 1, protowire.BytesType)
	reordered = protowire.AppendBytes(reordered, env.GetPayload())
	cases := []struct {
		name string
		raw  []byte
	}{
		{"bytes that are not a block", []byte{0xff, 0xff}},
		{"a block without a header", mustMarshal(t, &common.Block{Data: &common.BlockData{Data: [][]byte{good}}})},
		{"a block without data", mustMarshal(t, &common.Block{Header: &common.BlockHeader{Number: 1}})},
		{"a data entry that is not an envelope", makeBlock(t, blockSpec{number: 1, data: [][]byte{{0xff}}})},
		{"an envelope without a signature", makeBlock(t, blockSpec{number: 1, data: [][]byte{mustMarshal(t, &common.Envelope{Payload: []byte{1}})}})},
		{"an envelope not canonically encoded", makeBlock(t, blockSpec{number: 1, data: [][]byte{reordered}})},
		{"undecodable signature metadata", mustMarshal(t, &common.Block{
			Header:   &common.BlockHeader{Number: 1},
			Data:     &common.BlockData{Data: [][]byte{good}},
			Metadata: &common.BlockMetadata{Metadata: [][]byte{{0xff}}},
		})},
		{"an undecodable transaction flagged valid", makeBlock(t, blockSpec{
			number: 1,
			data:   [][]byte{mustMarshal(t, &common.Envelope{Payload: []byte{0xff}, Signature: []byte{1}})},
			filter: []byte{byte(peer.TxValidationCode_VALID)},
		})},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := fabric.ParseBlock(c.raw)
			require.ErrorIs(t, err, fabric.ErrMalformedBlock, "ParseBlock")
		})
	}
	t.Run("a block that is not a config block has no consenters", func(t *testing.T) {
		_, err := fabric.ConfigConsenters(makeBlock(t, blockSpec{number: 1, data: [][]byte{good}}))
		require.ErrorIs(t, err, fabric.ErrMalformedBlock, "ConfigConsenters")
	})
}

// Export the trust root and one block's evidence for a regulator, who
// checks them offline with package evidence.
func ExampleTransactor_Trust() {
	ctx := context.Background()
	profile, err := fabric.LoadProfile(".cache/network/profile.json")
	if err != nil {
		log.Fatal(err)
	}
	cfg, err := profile.Config("hospital")
	if err != nil {
		log.Fatal(err)
	}
	tr, err := fabric.New(ctx, cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer tr.Close()

	trust, err := tr.Trust(ctx)
	if err != nil {
		log.Fatal(err)
	}
	height, err := tr.BlockHeight(ctx)
	if err != nil {
		log.Fatal(err)
	}
	newest, err := tr.EvidenceBlock(ctx, height-1) // SmartBFT signers resolved
	if err != nil {
		log.Fatal(err)
	}
	out, err := json.Marshal(struct {
		Trust *evidence.Trust `json:"trust"`
		Block *evidence.Block `json:"block"`
	}{trust, newest})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s\n", out)
}

// TestEvidenceOnNetwork reads blocks and the trust root of a real Raft
// network and checks them as a regulator would, with nothing but the
// evidence.
func TestEvidenceOnNetwork(t *testing.T) {
	profile := testnet.StartFabric(t)
	checkEvidence(t, profile, "OrdererMSP")
}

// TestEvidenceOnBFTNetwork is TestEvidenceOnNetwork on SmartBFT, whose
// block signatures name their orderer by consenter ID only.
func TestEvidenceOnBFTNetwork(t *testing.T) {
	network := testnet.StartFabricNetwork(t, testnet.FabricOptions{Consensus: testnet.ConsensusBFT})
	checkEvidence(t, network.Profile, "HospitalOrdererMSP", "ResearchOrdererMSP")
}

// checkEvidence runs the evidence checks against the network of profile,
// whose ordering service is run by ordererOrgs.
func checkEvidence(t *testing.T, profile string, ordererOrgs ...string) {
	hospital := connect(t, profile, "hospital", nil)
	const actorID = "evidence-patient-1"
	arg := actorArg(t, actorID, wire.RolePatient)
	commit, err := hospital.Submit(t.Context(), ledger.Proposal{Function: wire.FnRegisterActor, Args: []string{arg}, AsAdmin: true})
	require.NoError(t, err, "RegisterActor")

	height, err := hospital.BlockHeight(t.Context())
	require.NoError(t, err, "BlockHeight")
	require.Greater(t, height, commit.Block, "height")

	raws := make([][]byte, height)
	for n := range height {
		raws[n], err = hospital.RawBlock(t.Context(), n)
		require.NoError(t, err, "RawBlock(%d)", n)
	}
	// The test network's configuration never changes after block 0.
	consenters, err := fabric.ConfigConsenters(raws[0])
	require.NoError(t, err, "ConfigConsenters(block 0)")
	blocks := make([]*evidence.Block, height)
	for n, raw := range raws {
		blocks[n], err = fabric.ParseBlockWithConsenters(raw, consenters)
		require.NoError(t, err, "ParseBlockWithConsenters(%d)", n)
	}
	t.Logf("%d blocks; block %d holds the transaction; %d consenters", height, commit.Block, len(consenters))

	trust, err := hospital.Trust(t.Context())
	require.NoError(t, err, "Trust")
	roots := orgRoots(t, trust.Config)

	t.Run("every block links to the previous one and its data hash matches", func(t *testing.T) {
		for n, b := range blocks {
			assert.Equal(t, uint64(n), b.Header.Number, "number of block %d", n)
			assert.Equal(t, b.Header.DataHash, b.ComputedDataHash, "data hash of block %d", n)
			assert.Equal(t, b.Header.Hash, fabric.BlockFormat{}.HeaderHash(b.Header), "BlockFormat hash of block %d", n)
			if n > 0 {
				assert.Equal(t, blocks[n-1].Header.Hash, b.Header.PreviousHash, "block %d links to block %d", n, n-1)
			}
		}
		require.NotNil(t, blocks[0].Config, "block 0 is a config block")
	})

	t.Run("every orderer signature after the genesis block verifies and chains to an orderer org", func(t *testing.T) {
		for n, b := range blocks[1:] {
			require.NotEmpty(t, b.Orderers, "orderer signatures of block %d", n+1)
			signers := map[string]bool{}
			for i, o := range b.Orderers {
				assert.Contains(t, ordererOrgs, o.Signer.MSPID, "signer %d of block %d", i, n+1)
				assert.True(t, verifies(t, o), "signature %d of block %d", i, n+1)
				assertChains(t, roots, o.Signer)
				signers[string(o.Signer.CertPEM)] = true
			}
			if trust.Config.BlockValidation.Kind == evidence.PolicyQuorum {
				assert.GreaterOrEqual(t, len(signers), trust.Config.BlockValidation.Quorum, "distinct signers of block %d", n+1)
			}
		}
	})

	t.Run("the transaction's creator and both endorsements verify", func(t *testing.T) {
		tx := findTx(t, blocks[commit.Block], commit.TxID)
		assert.Equal(t, "HospitalMSP", tx.Creator.Signer.MSPID, "creator MSP")
		assert.True(t, verifies(t, tx.Creator), "creator signature")
		assert.True(t, tx.Timestamp.Equal(commit.Timestamp), "timestamp %v, want %v", tx.Timestamp, commit.Timestamp)
		assertChains(t, roots, tx.Creator.Signer)

		require.Len(t, tx.Endorsements, 2, "endorsements")
		var msps []string
		for i, e := range tx.Endorsements {
			assert.True(t, verifies(t, e), "endorsement %d", i)
			assert.Equal(t, append(bytes.Clone(tx.Response), tx.EndorserIDs[i]...), e.Signed, "endorsement %d signs response || endorser", i)
			assertChains(t, roots, e.Signer)
			msps = append(msps, e.Signer.MSPID)
		}
		assert.ElementsMatch(t, []string{"HospitalMSP", "ResearchMSP"}, msps, "endorsing MSPs")
	})

	t.Run("the transaction's invocation and writes are in the evidence", func(t *testing.T) {
		tx := findTx(t, blocks[commit.Block], commit.TxID)
		assert.Equal(t, "medprov", tx.Chaincode, "chaincode")
		assert.Equal(t, wire.FnRegisterActor, tx.Function, "function")
		assert.Equal(t, []string{arg}, tx.Args, "args")
		assert.True(t, tx.FlaggedValid, "flagged valid")
		key := "\x00actor\x00" + actorID + "\x00"
		var found *evidence.Write
		for i := range tx.Writes {
			if tx.Writes[i].Key == key {
				found = &tx.Writes[i]
			}
		}
		require.NotNil(t, found, "write of %q among %d writes", key, len(tx.Writes))
		var actor wire.Actor
		require.NoError(t, json.Unmarshal(found.Value, &actor), "written actor")
		assert.Equal(t, actorID, actor.ID, "written actor id")
	})

	t.Run("EvidenceBlock reads the same evidence, consenters resolved", func(t *testing.T) {
		got, err := hospital.EvidenceBlock(t.Context(), commit.Block)
		require.NoError(t, err, "EvidenceBlock")
		assert.Equal(t, blocks[commit.Block], got, "evidence block")
	})

	t.Run("a block beyond the height is not found", func(t *testing.T) {
		_, err := hospital.RawBlock(t.Context(), height+100)
		require.ErrorIs(t, err, ledger.ErrNotFound, "RawBlock")
	})

	t.Run("the trust root names the orgs, the policies and the genesis block", func(t *testing.T) {
		assert.Equal(t, evidence.TrustFormat, trust.Format, "format")
		assert.Equal(t, evidence.BackendFabric, trust.Backend, "backend")
		assert.Equal(t, "medprov", trust.Channel, "channel")
		assert.Equal(t, "medprov", trust.Chaincode, "chaincode")
		assert.Equal(t, blocks[0].Header.Hash, trust.GenesisHash, "genesis hash")
		assert.WithinDuration(t, time.Now(), trust.Exported, time.Hour, "exported")
		assert.Equal(t, *blocks[0].Config, trust.Config, "the configuration of block 0, never updated")

		want := map[string]bool{"HospitalMSP": false, "ResearchMSP": false}
		for _, o := range ordererOrgs {
			want[o] = true
		}
		got := map[string]bool{}
		for _, o := range trust.Config.Orgs {
			got[o.MSPID] = o.Orderer
			assert.NotEmpty(t, o.RootCerts, "%s root certificates", o.MSPID)
			assert.True(t, o.NodeOUs, "%s NodeOUs", o.MSPID)
		}
		assert.Equal(t, want, got, "orgs and whether they order")
		assert.Equal(t, evidence.Policy{Kind: evidence.PolicySignature, Rule: "AND('HospitalMSP.peer','ResearchMSP.peer')"}, trust.Endorsement, "endorsement")
	})

	t.Run("package evidence verifies the block and the transaction against the trust root", func(t *testing.T) {
		v, err := evidence.NewValidator(trust.Config)
		require.NoError(t, err, "NewValidator")
		b := blocks[commit.Block]
		members := map[string]bool{}
		for _, m := range trust.Config.BlockValidation.Members {
			members[evidence.KeyOf(m)] = true
		}
		var orderers []evidence.Signer
		for i, o := range b.Orderers {
			s, err := v.Verify(o, commit.Timestamp)
			require.NoError(t, err, "orderer signature %d", i)
			orderers = append(orderers, s)
		}
		ok, err := evidence.Satisfied(trust.Config.BlockValidation, orderers, func(s evidence.Signer) bool { return members[s.Key] })
		require.NoError(t, err, "block validation policy")
		assert.True(t, ok, "the orderer signatures satisfy the block validation policy")

		tx := findTx(t, b, commit.TxID)
		_, err = v.Verify(tx.Creator, tx.Timestamp)
		require.NoError(t, err, "creator signature")
		var endorsers []evidence.Signer
		for i, e := range tx.Endorsements {
			s, err := v.Verify(e, tx.Timestamp)
			require.NoError(t, err, "endorsement %d", i)
			endorsers = append(endorsers, s)
		}
		ok, err = evidence.Satisfied(trust.Endorsement, endorsers, nil)
		require.NoError(t, err, "endorsement policy")
		assert.True(t, ok, "the endorsements satisfy the endorsement policy")
		ok, err = evidence.Satisfied(trust.Endorsement, endorsers[:1], nil)
		require.NoError(t, err, "endorsement policy")
		assert.False(t, ok, "one endorsement does not satisfy the endorsement policy")
	})

	t.Run("a chaincode the channel does not define has no trust root", func(t *testing.T) {
		other := connect(t, profile, "research", func(c *fabric.Config) { c.Chaincode = "nosuchcc" })
		_, err := other.Trust(t.Context())
		require.ErrorIs(t, err, ledger.ErrNotFound, "Trust")
	})

	if len(consenters) == 0 {
		t.Run("Raft blocks are valid with the signature of any orderer org member", func(t *testing.T) {
			require.Len(t, ordererOrgs, 1, "orderer orgs")
			assert.Empty(t, trust.Config.Orderers, "Raft consenters are not signing identities")
			assert.Equal(t, evidence.Policy{Kind: evidence.PolicySignature, Rule: "OR('" + ordererOrgs[0] + ".member')"}, trust.Config.BlockValidation, "block validation")
		})
		return
	}
	t.Run("SmartBFT blocks need a quorum of the consenters", func(t *testing.T) {
		// Fabric's quorum for n consenters tolerating f = (n-1)/3 faults is
		// ceil((n+f+1)/2): 3 of 4.
		n := len(trust.Config.Orderers)
		f := (n - 1) / 3
		assert.Equal(t, 4, n, "consenters")
		assert.Equal(t, evidence.Policy{Kind: evidence.PolicyQuorum, Quorum: (n + f + 2) / 2, Members: trust.Config.Orderers}, trust.Config.BlockValidation, "block validation")
		assert.Equal(t, 3, trust.Config.BlockValidation.Quorum, "quorum of 4")
		var mapped []evidence.Identity
		for _, id := range consenters {
			mapped = append(mapped, id)
		}
		assert.ElementsMatch(t, mapped, trust.Config.Orderers, "the consenter mapping's identities")
	})

	t.Run("without the consenter mapping SmartBFT signers are unknown", func(t *testing.T) {
		b, err := fabric.ParseBlock(raws[commit.Block])
		require.NoError(t, err, "ParseBlock")
		require.NotEmpty(t, b.Orderers, "orderer signatures")
		for i, o := range b.Orderers {
			assert.Equal(t, evidence.Identity{}, o.Signer, "signer %d", i)
		}
	})
}

func findTx(t *testing.T, b *evidence.Block, txID string) evidence.Tx {
	t.Helper()
	for _, tx := range b.Txs {
		if tx.ID == txID {
			return tx
		}
	}
	require.Failf(t, "transaction not in block", "%s in block %d", txID, b.Header.Number)
	return evidence.Tx{}
}

// orgRoots returns a certificate pool per MSP with its root and
// intermediate certificates.
func orgRoots(t *testing.T, cfg evidence.Config) map[string]*x509.VerifyOptions {
	t.Helper()
	out := map[string]*x509.VerifyOptions{}
	for _, o := range cfg.Orgs {
		opts := &x509.VerifyOptions{Roots: x509.NewCertPool(), Intermediates: x509.NewCertPool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}
		for _, c := range o.RootCerts {
			require.True(t, opts.Roots.AppendCertsFromPEM(c), "root certificate of %s", o.MSPID)
		}
		for _, c := range o.Intermediates {
			require.True(t, opts.Intermediates.AppendCertsFromPEM(c), "intermediate certificate of %s", o.MSPID)
		}
		out[o.MSPID] = opts
	}
	return out
}

func assertChains(t *testing.T, roots map[string]*x509.VerifyOptions, id evidence.Identity) {
	t.Helper()
	opts, ok := roots[id.MSPID]
	if !assert.True(t, ok, "MSP %s is in the trust root", id.MSPID) {
		return
	}
	block, _ := pem.Decode(id.CertPEM)
	require.NotNil(t, block, "certificate of a %s signer is PEM", id.MSPID)
	cert, err := x509.ParseCertificate(block.Bytes)
	require.NoError(t, err, "certificate of a %s signer", id.MSPID)
	_, err = cert.Verify(*opts)
	assert.NoError(t, err, "a %s signer's certificate chains to its MSP's roots", id.MSPID)
}
