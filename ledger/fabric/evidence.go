package fabric

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/asn1"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"

	"github.com/hyperledger/fabric-gateway/pkg/client"
	"github.com/hyperledger/fabric-protos-go-apiv2/common"
	"github.com/hyperledger/fabric-protos-go-apiv2/ledger/rwset"
	"github.com/hyperledger/fabric-protos-go-apiv2/ledger/rwset/kvrwset"
	"github.com/hyperledger/fabric-protos-go-apiv2/msp"
	"github.com/hyperledger/fabric-protos-go-apiv2/peer"
	"google.golang.org/protobuf/proto"

	"github.com/medprov/medprov/evidence"
	"github.com/medprov/medprov/ledger"
)

// ErrMalformedBlock reports bytes that are not a block a Fabric peer would
// have accepted: not a common.Block, no header or data, a data entry that
// is not a canonically encoded, signed envelope, undecodable signature
// metadata, or a transaction the peer flagged valid that cannot be decoded.
var ErrMalformedBlock = errors.New("fabric: malformed block")

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformedBlock}, args...)...)
}

// ParseBlock turns a Fabric block (a marshalled common.Block, as qscc's
// GetBlockByNumber and RawBlock return it) into evidence: the header and
// its hash, the data hash recomputed from the data, the orderers'
// signatures, the configuration of a config block, and every endorser
// transaction with its creator's and endorsers' signatures, invocation and
// writes. Every signature comes with the exact bytes Fabric signs, so it can
// be checked with nothing but the signer's certificate:
//
//   - a block signature over OrdererBlockMetadata || SignatureHeader (Raft,
//     or any orderer that names its identity) or IdentifierHeader (SmartBFT)
//     || the header's ASN.1 DER encoding;
//   - a transaction creator's signature over the envelope's payload;
//   - an endorsement over ProposalResponsePayload || endorser identity.
//
// A SmartBFT orderer names itself in a block signature only by its consenter
// ID; ParseBlock knows no consenter mapping, so such a signature has an
// empty Signer (it can satisfy no policy). ParseBlockWithConsenters, or
// Transactor.EvidenceBlock, resolves it.
//
// Writes are those in the invoked chaincode's own namespace (for medprov
// transactions, the medprov namespace). Envelopes that are neither
// endorser transactions nor a config block's configuration are left out,
// and so is a transaction whose content cannot be decoded and that the
// committing peer did not flag valid; the data hash still covers both.
// Anything else that cannot be decoded is an error wrapping
// ErrMalformedBlock.
func ParseBlock(raw []byte) (*evidence.Block, error) {
	return ParseBlockWithConsenters(raw, nil)
}

// ParseBlockWithConsenters is ParseBlock resolving SmartBFT block signatures
// through consenters, the consenter mapping (ID to identity) of the channel
// configuration in force before the block: for block n, the config block
// named by block n-1's last-config index (ConfigConsenters reads it). A
// signature naming an ID that is not in consenters keeps an empty Signer,
// as Fabric ignores it.
func ParseBlockWithConsenters(raw []byte, consenters map[uint32]evidence.Identity) (*evidence.Block, error) {
	var block common.Block
	if err := proto.Unmarshal(raw, &block); err != nil {
		return nil, malformed("decode block: %v", err)
	}
	header := block.GetHeader()
	if header == nil {
		return nil, malformed("block has no header")
	}
	data := block.GetData().GetData()
	if len(data) == 0 {
		return nil, malformed("block %d has no data", header.GetNumber())
	}
	headerDER, err := headerBytes(header)
	if err != nil {
		return nil, err
	}
	headerHash := sha256.Sum256(headerDER)
	dataHash := sha256.Sum256(bytes.Join(data, nil))

	out := &evidence.Block{
		Header: evidence.Header{
			Number:       header.GetNumber(),
			PreviousHash: header.GetPreviousHash(),
			DataHash:     header.GetDataHash(),
			Hash:         headerHash[:],
		},
		ComputedDataHash: dataHash[:],
		Txs:              []evidence.Tx{},
	}
	if out.Orderers, err = ordererSignatures(&block, headerDER, consenters); err != nil {
		return nil, err
	}

	cfg, isConfig, err := configOfBlock(&block)
	if err != nil {
		return nil, err
	}
	if isConfig {
		if out.Config, err = configEvidence(cfg); err != nil {
			return nil, fmt.Errorf("block %d: %w", header.GetNumber(), err)
		}
		return out, nil
	}

	if err := checkWellFormed(data); err != nil {
		return nil, fmt.Errorf("block %d: %w", header.GetNumber(), err)
	}
	filter := metadataEntry(&block, common.BlockMetadataIndex_TRANSACTIONS_FILTER)
	for i, entry := range data {
		flagged := i < len(filter) && filter[i] == byte(peer.TxValidationCode_VALID)
		tx, ok, err := endorserTx(entry, i)
		if err != nil {
			if !flagged {
				continue // invalid and undecodable: nothing it says was applied
			}
			return nil, fmt.Errorf("block %d, transaction %d: %w", header.GetNumber(), i, err)
		}
		if !ok {
			continue
		}
		tx.FlaggedValid = flagged
		out.Txs = append(out.Txs, tx)
	}
	return out, nil
}

// BlockFormat is Fabric's block encoding as package audit reads it. The
// zero value knows no SmartBFT consenter mapping: its ParseBlock is
// ParseBlock, leaving SmartBFT block signers empty.
type BlockFormat struct {
	// Consenters, if set, resolves SmartBFT block signatures as
	// ParseBlockWithConsenters does.
	Consenters map[uint32]evidence.Identity
}

// ParseBlock decodes a raw block as ParseBlockWithConsenters does with
// f.Consenters.
func (f BlockFormat) ParseBlock(raw []byte) (*evidence.Block, error) {
	return ParseBlockWithConsenters(raw, f.Consenters)
}

// HeaderHash returns the hash Fabric gives a block header, as the next
// header's PreviousHash names it: SHA-256 of the ASN.1 DER SEQUENCE of the
// number (INTEGER), the previous hash and the data hash (OCTET STRINGs).
func (BlockFormat) HeaderHash(h evidence.Header) []byte {
	der, err := headerBytes(&common.BlockHeader{Number: h.Number, PreviousHash: h.PreviousHash, DataHash: h.DataHash})
	if err != nil {
		return nil // cannot happen: integers and byte strings always encode
	}
	sum := sha256.Sum256(der)
	return sum[:]
}

// ConfigConsenters returns the SmartBFT consenter mapping (consenter ID to
// signing identity) of a config block, for ParseBlockWithConsenters. A
// channel without one (Raft) gives an empty map. A block that is not a
// config block is an error wrapping ErrMalformedBlock.
func ConfigConsenters(raw []byte) (map[uint32]evidence.Identity, error) {
	var block common.Block
	if err := proto.Unmarshal(raw, &block); err != nil {
		return nil, malformed("decode block: %v", err)
	}
	cfg, ok, err := configOfBlock(&block)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, malformed("block %d is not a config block", block.GetHeader().GetNumber())
	}
	consenters, err := consenterMapping(cfg.GetChannelGroup())
	if err != nil {
		return nil, err
	}
	m := make(map[uint32]evidence.Identity, len(consenters))
	for _, c := range consenters {
		m[c.GetId()] = evidence.Identity{MSPID: c.GetMspId(), CertPEM: c.GetIdentity()}
	}
	return m, nil
}

// asn1Header is the structure whose DER encoding Fabric hashes and signs as
// a block header (protoutil.BlockHeaderBytes): the number as an INTEGER,
// the previous and data hashes as OCTET STRINGs.
type asn1Header struct {
	Number       *big.Int
	PreviousHash []byte
	DataHash     []byte
}

func headerBytes(h *common.BlockHeader) ([]byte, error) {
	der, err := asn1.Marshal(asn1Header{
		Number:       new(big.Int).SetUint64(h.GetNumber()),
		PreviousHash: h.GetPreviousHash(),
		DataHash:     h.GetDataHash(),
	})
	if err != nil {
		return nil, fmt.Errorf("fabric: encode block header: %w", err)
	}
	return der, nil
}

// metadataEntry returns a block metadata entry, nil when absent.
func metadataEntry(block *common.Block, index common.BlockMetadataIndex) []byte {
	md := block.GetMetadata().GetMetadata()
	if int(index) >= len(md) {
		return nil
	}
	return md[index]
}

// ordererSignatures reads the SIGNATURES metadata. Each signature covers
// the metadata value (the OrdererBlockMetadata), then the signer's
// SignatureHeader or, when there is none, its IdentifierHeader, then the
// DER header, as protoutil.BlockSignatureVerifier rebuilds them.
func ordererSignatures(block *common.Block, headerDER []byte, consenters map[uint32]evidence.Identity) ([]evidence.Signature, error) {
	var md common.Metadata
	if err := proto.Unmarshal(metadataEntry(block, common.BlockMetadataIndex_SIGNATURES), &md); err != nil {
		return nil, malformed("decode signature metadata: %v", err)
	}
	sigs := make([]evidence.Signature, 0, len(md.GetSignatures()))
	for i, s := range md.GetSignatures() {
		var signer evidence.Identity
		var signerHeader []byte
		if len(s.GetSignatureHeader()) == 0 && len(s.GetIdentifierHeader()) > 0 {
			var ih common.IdentifierHeader
			if err := proto.Unmarshal(s.GetIdentifierHeader(), &ih); err != nil {
				return nil, malformed("decode identifier header of block signature %d: %v", i, err)
			}
			signer = consenters[ih.GetIdentifier()] // zero when unknown
			signerHeader = s.GetIdentifierHeader()
		} else {
			var sh common.SignatureHeader
			if err := proto.Unmarshal(s.GetSignatureHeader(), &sh); err != nil {
				return nil, malformed("decode signature header of block signature %d: %v", i, err)
			}
			// A creator that is no identity leaves the signer empty: it
			// counts for no policy, as with Fabric, and the block stays
			// readable.
			if id, err := signerIdentity(sh.GetCreator()); err == nil {
				signer = id
			}
			signerHeader = s.GetSignatureHeader()
		}
		sigs = append(sigs, evidence.Signature{
			Signer:    signer,
			Signed:    concat(md.GetValue(), signerHeader, headerDER),
			Signature: s.GetSignature(),
		})
	}
	return sigs, nil
}

func concat(parts ...[]byte) []byte {
	return bytes.Join(parts, nil)
}

// signerIdentity decodes a serialized msp.SerializedIdentity.
func signerIdentity(serialized []byte) (evidence.Identity, error) {
	var id msp.SerializedIdentity
	if err := proto.Unmarshal(serialized, &id); err != nil {
		return evidence.Identity{}, fmt.Errorf("decode serialized identity: %w", err)
	}
	if id.GetMspid() == "" || len(id.GetIdBytes()) == 0 {
		return evidence.Identity{}, errors.New("serialized identity without MSP ID or certificate")
	}
	return evidence.Identity{MSPID: id.GetMspid(), CertPEM: id.GetIdBytes()}, nil
}

// checkWellFormed applies the peer's check of a block's data before it
// commits it (protoutil.VerifyTransactionsAreWellFormed): every entry is a
// signed envelope with a payload, encoded exactly as it re-encodes, so no
// bytes hide outside what the signatures cover.
func checkWellFormed(data [][]byte) error {
	for i, entry := range data {
		var env common.Envelope
		if err := proto.Unmarshal(entry, &env); err != nil {
			return malformed("transaction %d is not an envelope: %v", i, err)
		}
		if len(env.GetPayload()) == 0 || len(env.GetSignature()) == 0 {
			return malformed("transaction %d has no payload or no signature", i)
		}
		again, err := proto.Marshal(&env)
		if err != nil {
			return malformed("re-encode transaction %d: %v", i, err)
		}
		if !bytes.Equal(again, entry) {
			return malformed("transaction %d is not canonically encoded", i)
		}
	}
	return nil
}

// envelopeHeaders decodes an envelope down to its channel and signature
// headers.
func envelopeHeaders(entry []byte) (*common.Envelope, *common.Payload, *common.ChannelHeader, error) {
	var env common.Envelope
	if err := proto.Unmarshal(entry, &env); err != nil {
		return nil, nil, nil, malformed("decode envelope: %v", err)
	}
	var payload common.Payload
	if err := proto.Unmarshal(env.GetPayload(), &payload); err != nil {
		return nil, nil, nil, malformed("decode payload: %v", err)
	}
	if payload.GetHeader() == nil {
		return nil, nil, nil, malformed("payload has no header")
	}
	var chdr common.ChannelHeader
	if err := proto.Unmarshal(payload.GetHeader().GetChannelHeader(), &chdr); err != nil {
		return nil, nil, nil, malformed("decode channel header: %v", err)
	}
	return &env, &payload, &chdr, nil
}

// configOfBlock returns the configuration a config block carries: its only
// envelope is of type CONFIG and holds a ConfigEnvelope.
func configOfBlock(block *common.Block) (*common.Config, bool, error) {
	data := block.GetData().GetData()
	if len(data) != 1 {
		return nil, false, nil
	}
	_, payload, chdr, err := envelopeHeaders(data[0])
	if err != nil || common.HeaderType(chdr.GetType()) != common.HeaderType_CONFIG {
		// Not a config block; the transaction path reports what is malformed.
		return nil, false, nil
	}
	var ce common.ConfigEnvelope
	if err := proto.Unmarshal(payload.GetData(), &ce); err != nil {
		return nil, false, malformed("decode config envelope of block %d: %v", block.GetHeader().GetNumber(), err)
	}
	if ce.GetConfig().GetChannelGroup() == nil {
		return nil, false, malformed("config block %d has no channel group", block.GetHeader().GetNumber())
	}
	return ce.GetConfig(), true, nil
}

// endorserTx decodes one data entry; ok is false for an envelope that is not
// an endorser transaction.
func endorserTx(entry []byte, index int) (evidence.Tx, bool, error) {
	env, payload, chdr, err := envelopeHeaders(entry)
	if err != nil {
		return evidence.Tx{}, false, err
	}
	if common.HeaderType(chdr.GetType()) != common.HeaderType_ENDORSER_TRANSACTION {
		return evidence.Tx{}, false, nil
	}
	var shdr common.SignatureHeader
	if err := proto.Unmarshal(payload.GetHeader().GetSignatureHeader(), &shdr); err != nil {
		return evidence.Tx{}, false, malformed("decode signature header: %v", err)
	}
	creator, err := signerIdentity(shdr.GetCreator())
	if err != nil {
		return evidence.Tx{}, false, malformed("creator: %v", err)
	}
	tx := evidence.Tx{
		ID:           chdr.GetTxId(),
		Index:        index,
		Creator:      evidence.Signature{Signer: creator, Signed: env.GetPayload(), Signature: env.GetSignature()},
		Endorsements: []evidence.Signature{},
		EndorserIDs:  [][]byte{},
		Args:         []string{},
		Writes:       []evidence.Write{},
	}
	if ts := chdr.GetTimestamp(); ts != nil {
		tx.Timestamp = ts.AsTime().UTC()
	}

	var transaction peer.Transaction
	if err := proto.Unmarshal(payload.GetData(), &transaction); err != nil {
		return evidence.Tx{}, false, malformed("decode transaction: %v", err)
	}
	if len(transaction.GetActions()) == 0 {
		return evidence.Tx{}, false, malformed("transaction has no action")
	}
	var actionPayload peer.ChaincodeActionPayload
	if err := proto.Unmarshal(transaction.GetActions()[0].GetPayload(), &actionPayload); err != nil {
		return evidence.Tx{}, false, malformed("decode chaincode action payload: %v", err)
	}
	endorsed := actionPayload.GetAction()
	if endorsed == nil || len(endorsed.GetProposalResponsePayload()) == 0 {
		return evidence.Tx{}, false, malformed("transaction has no endorsed action")
	}
	tx.Response = endorsed.GetProposalResponsePayload()
	for i, e := range endorsed.GetEndorsements() {
		signer, err := signerIdentity(e.GetEndorser())
		if err != nil {
			return evidence.Tx{}, false, malformed("endorser %d: %v", i, err)
		}
		tx.Endorsements = append(tx.Endorsements, evidence.Signature{
			Signer:    signer,
			Signed:    concat(tx.Response, e.GetEndorser()),
			Signature: e.GetSignature(),
		})
		tx.EndorserIDs = append(tx.EndorserIDs, e.GetEndorser())
	}

	if err := invocation(&tx, actionPayload.GetChaincodeProposalPayload()); err != nil {
		return evidence.Tx{}, false, err
	}
	if tx.Writes, err = writes(tx.Response, tx.Chaincode); err != nil {
		return evidence.Tx{}, false, err
	}
	return tx, true, nil
}

// invocation fills the chaincode name, function and arguments from the
// proposal payload the transaction carries. A contract-api function name
// "Contract:Function" is reported as Function, as the contract-api splits
// it at the last colon.
func invocation(tx *evidence.Tx, proposalPayload []byte) error {
	var cpp peer.ChaincodeProposalPayload
	if err := proto.Unmarshal(proposalPayload, &cpp); err != nil {
		return malformed("decode chaincode proposal payload: %v", err)
	}
	var cis peer.ChaincodeInvocationSpec
	if err := proto.Unmarshal(cpp.GetInput(), &cis); err != nil {
		return malformed("decode chaincode invocation spec: %v", err)
	}
	tx.Chaincode = cis.GetChaincodeSpec().GetChaincodeId().GetName()
	args := cis.GetChaincodeSpec().GetInput().GetArgs()
	if len(args) == 0 {
		return nil
	}
	fn := string(args[0])
	if i := strings.LastIndex(fn, ":"); i >= 0 {
		fn = fn[i+1:]
	}
	tx.Function = fn
	for _, a := range args[1:] {
		tx.Args = append(tx.Args, string(a))
	}
	return nil
}

// writes returns the public writes in namespace from an endorsed
// ProposalResponsePayload's chaincode action.
func writes(prp []byte, namespace string) ([]evidence.Write, error) {
	var resp peer.ProposalResponsePayload
	if err := proto.Unmarshal(prp, &resp); err != nil {
		return nil, malformed("decode proposal response payload: %v", err)
	}
	var action peer.ChaincodeAction
	if err := proto.Unmarshal(resp.GetExtension(), &action); err != nil {
		return nil, malformed("decode chaincode action: %v", err)
	}
	var rws rwset.TxReadWriteSet
	if err := proto.Unmarshal(action.GetResults(), &rws); err != nil {
		return nil, malformed("decode read-write set: %v", err)
	}
	out := []evidence.Write{}
	for _, ns := range rws.GetNsRwset() {
		if ns.GetNamespace() != namespace {
			continue
		}
		var kv kvrwset.KVRWSet
		if err := proto.Unmarshal(ns.GetRwset(), &kv); err != nil {
			return nil, malformed("decode writes of namespace %s: %v", namespace, err)
		}
		for _, w := range kv.GetWrites() {
			out = append(out, evidence.Write{Key: w.GetKey(), Delete: w.GetIsDelete(), Value: w.GetValue()})
		}
	}
	return out, nil
}

// lastConfigIndex reads the number of the config block in force for a
// block: from the OrdererBlockMetadata in its signature metadata, or, for
// blocks of orderers before v1.4.1, from the LAST_CONFIG metadata
// (protoutil.GetLastConfigIndexFromBlock).
func lastConfigIndex(block *common.Block) (uint64, error) {
	var md common.Metadata
	if err := proto.Unmarshal(metadataEntry(block, common.BlockMetadataIndex_SIGNATURES), &md); err != nil {
		return 0, malformed("decode signature metadata: %v", err)
	}
	if len(md.GetValue()) > 0 {
		var obm common.OrdererBlockMetadata
		if err := proto.Unmarshal(md.GetValue(), &obm); err != nil {
			return 0, malformed("decode orderer block metadata: %v", err)
		}
		if obm.GetLastConfig() == nil {
			return 0, malformed("block %d names no last config", block.GetHeader().GetNumber())
		}
		return obm.GetLastConfig().GetIndex(), nil
	}
	var legacy common.Metadata
	if err := proto.Unmarshal(metadataEntry(block, common.BlockMetadataIndex_LAST_CONFIG), &legacy); err != nil {
		return 0, malformed("decode last config metadata: %v", err)
	}
	var lc common.LastConfig
	if err := proto.Unmarshal(legacy.GetValue(), &lc); err != nil {
		return 0, malformed("decode last config: %v", err)
	}
	return lc.GetIndex(), nil
}

// BlockHeight returns the number of blocks on the peer's ledger for the
// channel (qscc GetChainInfo); the newest block is BlockHeight-1.
func (t *Transactor) BlockHeight(ctx context.Context) (uint64, error) {
	raw, err := t.evaluateSystem(ctx, qscc, "GetChainInfo", []byte(t.cfg.Channel))
	if err != nil {
		return 0, err
	}
	var info common.BlockchainInfo
	if err := proto.Unmarshal(raw, &info); err != nil {
		return 0, fmt.Errorf("fabric: decode chain info: %w", err)
	}
	return info.GetHeight(), nil
}

// RawBlock returns block n exactly as the peer stores it (a marshalled
// common.Block, with the peer's transaction filter), through qscc
// GetBlockByNumber. A block the peer does not have is ledger.ErrNotFound.
func (t *Transactor) RawBlock(ctx context.Context, n uint64) ([]byte, error) {
	if n == math.MaxUint64 { // qscc reads it as "the newest block"
		return nil, fmt.Errorf("fabric: block %d: %w", n, ledger.ErrNotFound)
	}
	raw, err := t.evaluateSystem(ctx, qscc, "GetBlockByNumber", []byte(t.cfg.Channel), []byte(strconv.FormatUint(n, 10)))
	if err != nil {
		var ccErr *ledger.ChaincodeError
		if errors.As(err, &ccErr) && isNoSuchBlock(ccErr.Message) {
			return nil, fmt.Errorf("fabric: block %d: %w", n, ledger.ErrNotFound)
		}
		return nil, err
	}
	return raw, nil
}

// isNoSuchBlock recognises qscc's answers for a block beyond the ledger's
// height ("no such block number [n] in index") and for one before the
// snapshot a peer joined from ("cannot serve block [n]").
func isNoSuchBlock(msg string) bool {
	return strings.Contains(msg, "no such block number") || strings.Contains(msg, "cannot serve block")
}

// EvidenceBlock reads block n and parses it as ParseBlockWithConsenters
// does, resolving SmartBFT signatures with the consenter mapping of the
// configuration in force before the block (the config block named by block
// n-1; a config block is signed under the previous configuration).
func (t *Transactor) EvidenceBlock(ctx context.Context, n uint64) (*evidence.Block, error) {
	raw, err := t.RawBlock(ctx, n)
	if err != nil {
		return nil, err
	}
	needs, err := namesConsenterIDs(raw)
	if err != nil {
		return nil, err
	}
	if !needs || n == 0 {
		return ParseBlock(raw)
	}
	prevRaw, err := t.RawBlock(ctx, n-1)
	if err != nil {
		return nil, err
	}
	var prev common.Block
	if err := proto.Unmarshal(prevRaw, &prev); err != nil {
		return nil, malformed("decode block %d: %v", n-1, err)
	}
	index, err := lastConfigIndex(&prev)
	if err != nil {
		return nil, fmt.Errorf("block %d: %w", n-1, err)
	}
	cfgRaw, err := t.RawBlock(ctx, index)
	if err != nil {
		return nil, err
	}
	consenters, err := ConfigConsenters(cfgRaw)
	if err != nil {
		return nil, err
	}
	return ParseBlockWithConsenters(raw, consenters)
}

// namesConsenterIDs reports whether a block has signatures that name their
// signer by consenter ID only.
func namesConsenterIDs(raw []byte) (bool, error) {
	var block common.Block
	if err := proto.Unmarshal(raw, &block); err != nil {
		return false, malformed("decode block: %v", err)
	}
	var md common.Metadata
	if err := proto.Unmarshal(metadataEntry(&block, common.BlockMetadataIndex_SIGNATURES), &md); err != nil {
		return false, malformed("decode signature metadata: %v", err)
	}
	for _, s := range md.GetSignatures() {
		if len(s.GetSignatureHeader()) == 0 && len(s.GetIdentifierHeader()) > 0 {
			return true, nil
		}
	}
	return false, nil
}

// evaluateSystem evaluates a function of a system chaincode (qscc,
// _lifecycle) on the organisation's peer with raw byte arguments.
func (t *Transactor) evaluateSystem(ctx context.Context, chaincode, fn string, args ...[]byte) ([]byte, error) {
	contract := t.user.GetNetwork(t.cfg.Channel).GetContract(chaincode)
	evalCtx, cancel := context.WithTimeout(ctx, t.cfg.EvaluateTimeout)
	defer cancel()
	raw, err := contract.EvaluateWithContext(evalCtx, fn, client.WithBytesArguments(args...))
	if err != nil {
		return nil, classify(ctx, chaincode+" "+fn, "", err)
	}
	return raw, nil
}
