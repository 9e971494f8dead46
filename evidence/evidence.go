// Package evidence is the backend-neutral form of what a ledger can prove
// about itself, and the checks that need nothing but that evidence and a
// trust root: block headers and their hash chain, the orderers' signatures
// over blocks, and each transaction's creator and endorsement signatures,
// checked against the certificates and policies the organisations agreed
// on (Trust).
//
// Each backend turns its own blocks into this form: ledger/fabric parses
// Fabric's protobuf blocks (common.Block), ledger/embedded its own encoding.
// The form records, for every signature, the exact bytes that were signed,
// so the checks here are the same for both: nothing in this package knows
// a wire format, and no check trusts a flag the backend computed.
package evidence

import "time"

// Header is what a block's hash covers, and the hash itself.
type Header struct {
	Number       uint64 `json:"number"`
	PreviousHash []byte `json:"previousHash"`
	DataHash     []byte `json:"dataHash"`
	// Hash is the header's hash, as the next header's PreviousHash names
	// it. The backend computes it from the fields above (and, for the
	// embedded ledger, its write-set hash, carried in Extra).
	Hash []byte `json:"hash"`
	// Extra is backend data the hash covers besides the three fields
	// (embedded: the write-set hash); nil for Fabric.
	Extra []byte `json:"extra,omitempty"`
}

// Identity is a signer as the ledger names it: its MSP and its X.509
// certificate (PEM), from a serialized msp.SerializedIdentity.
type Identity struct {
	MSPID   string `json:"mspId"`
	CertPEM []byte `json:"cert"`
}

// Signature is one signature found in the evidence: who signed, the exact
// bytes signed (SHA-256 of them is what ECDSA signs), and the DER ECDSA
// signature.
type Signature struct {
	Signer    Identity `json:"signer"`
	Signed    []byte   `json:"signed"`
	Signature []byte   `json:"signature"`
}

// Block is a decoded full block.
type Block struct {
	Header Header `json:"header"`
	// ComputedDataHash is the data hash the backend computed from the
	// block's data, to compare with Header.DataHash.
	ComputedDataHash []byte `json:"computedDataHash"`
	// Orderers are the ordering service's signatures over the block.
	Orderers []Signature `json:"orderers"`
	// Config is set for a configuration block.
	Config *Config `json:"config,omitempty"`
	Txs    []Tx    `json:"txs"`
}

// Tx is one endorser transaction of a block.
type Tx struct {
	ID        string    `json:"id"`
	Index     int       `json:"index"`
	Timestamp time.Time `json:"timestamp"`
	// Creator signed the transaction envelope: Creator.Signed is the
	// envelope's payload.
	Creator Signature `json:"creator"`
	// Response is the exact response bytes the endorsers signed over
	// (Fabric: the ProposalResponsePayload). Every endorsement's Signed is
	// Response followed by the endorser's serialized identity; Endorsements
	// holds them as found, and the check recomputes that relation.
	Response     []byte      `json:"response"`
	Endorsements []Signature `json:"endorsements"`
	// EndorserIDs are the serialized identities, in the order of
	// Endorsements, whose bytes follow Response in each signed message.
	EndorserIDs [][]byte `json:"endorserIds"`
	// Chaincode, Function and Args are the invocation; Writes the
	// chaincode's writes, in the medprov namespace, as the endorsed
	// response carries them (so the endorsements cover them).
	Chaincode string   `json:"chaincode"`
	Function  string   `json:"function"`
	Args      []string `json:"args"`
	Writes    []Write  `json:"writes"`
	// FlaggedValid is what the committing peer recorded (Fabric's
	// transaction filter); reported, never trusted alone.
	FlaggedValid bool `json:"flaggedValid"`
}

// Write is one key the transaction wrote.
type Write struct {
	Key    string `json:"key"`
	Delete bool   `json:"delete,omitempty"`
	Value  []byte `json:"value,omitempty"`
}

// Config is what a configuration block establishes.
type Config struct {
	Orgs []Org `json:"orgs"`
	// Orderers are the ordering service's nodes (Fabric BFT: the consenter
	// mapping; Raft: the consenters; embedded: its orderer identity).
	Orderers []Identity `json:"orderers"`
	// BlockValidation is the policy orderer signatures must satisfy.
	BlockValidation Policy `json:"blockValidation"`
}

// Org is one organisation's MSP: the certificates its members chain to.
type Org struct {
	MSPID         string   `json:"mspId"`
	RootCerts     [][]byte `json:"rootCerts"`
	Intermediates [][]byte `json:"intermediateCerts,omitempty"`
	// NodeOUs says whether roles (client, peer, admin, orderer) are the
	// certificate's OU, as with Fabric's NodeOUs.
	NodeOUs bool `json:"nodeOUs"`
	// Orderer is true for an org of the ordering service.
	Orderer bool `json:"orderer,omitempty"`
}

// Policy is a rule signatures must satisfy.
//
// A signature policy (Kind "signature") is Fabric's policy language over
// principals 'MSPID.role' (role: member, admin, client, peer, orderer):
// AND(...), OR(...) and OutOf(n, ...), for example
// "AND('HospitalMSP.peer','ResearchMSP.peer')"; one signer satisfies at
// most one principal. A quorum policy (Kind "quorum") needs Quorum distinct
// signers among Members (SmartBFT's block validation: a quorum of the
// consenters).
type Policy struct {
	Kind    string     `json:"kind"`
	Rule    string     `json:"rule,omitempty"`
	Quorum  int        `json:"quorum,omitempty"`
	Members []Identity `json:"members,omitempty"`
}

// Policy kinds.
const (
	PolicySignature = "signature"
	PolicyQuorum    = "quorum"
)

// Trust is what a regulator pins once and verifies everything against: the
// channel's organisations (their root and intermediate certificates), the
// ordering service and its block validation policy, the chaincode's
// endorsement policy, and the hash of the genesis block's header.
type Trust struct {
	Format      string    `json:"format"`
	Backend     string    `json:"backend"`
	Channel     string    `json:"channel"`
	Chaincode   string    `json:"chaincode"`
	GenesisHash []byte    `json:"genesisHash"`
	Config      Config    `json:"config"`
	Endorsement Policy    `json:"endorsement"`
	Exported    time.Time `json:"exported"`
}

// TrustFormat names the Trust format this package reads.
const TrustFormat = "medprov-trust/1"

// Backend names.
const (
	BackendFabric   = "fabric"
	BackendEmbedded = "embedded"
)
