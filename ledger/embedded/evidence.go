package embedded

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/medprov/medprov/evidence"
	"github.com/medprov/medprov/ledger"
)

// ErrMalformedBlock reports bytes that are not a block as RawBlock encodes
// it: ParseBlock's errors wrap it.
var ErrMalformedBlock = errors.New("malformed embedded ledger block")

// rawBlockTag starts every RawBlock encoding.
const rawBlockTag = "medprov/embedded/block/1"

// RawBlock returns block n as one self-contained byte string, as the store
// holds it: string("medprov/embedded/block/1") || bytes(header encoding)
// || bytes(orderer identity) || bytes(orderer signature) ||
// bytes(channel configuration) || uvarint(number of transactions) ||
// bytes(transaction record)..., with uvarint length-prefixed byte strings
// (the identity, signature and configuration are empty where the block has
// none). ParseBlock decodes it; nothing else is needed to check it against
// a Trust. It returns an error wrapping ledger.ErrNotFound if the chain has
// no block n, and one wrapping ErrCorrupt if the stored block does not
// parse.
func (l *Ledger) RawBlock(ctx context.Context, n uint64) ([]byte, error) {
	snap, release, err := l.snapshot(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	rec, txs, found, err := loadBlock(snap, n)
	if err != nil {
		return nil, fmt.Errorf("block %d: %w", n, err)
	}
	if !found {
		return nil, fmt.Errorf("block %d: %w", n, ledger.ErrNotFound)
	}
	size := 64 + len(rec.encoded)
	var seal blockSeal
	if rec.seal != nil {
		seal = *rec.seal
		size += len(seal.signer) + len(seal.signature) + len(seal.config)
	}
	for _, tx := range txs {
		size += len(tx) + 4
	}
	e := &encoder{buf: make([]byte, 0, size)}
	e.string(rawBlockTag)
	e.bytes(rec.encoded)
	e.bytes(seal.signer)
	e.bytes(seal.signature)
	e.bytes(seal.config)
	e.uvarint(uint64(len(txs)))
	for _, tx := range txs {
		e.bytes(tx)
	}
	return e.buf, nil
}

// ParseBlock decodes a block that RawBlock encoded into the evidence a
// verifier checks: the header (Extra is the write-set hash; Hash is
// SHA-256 of the header's encoding, as the next block's PreviousHash names
// it), the data hash recomputed from the block's data (its transactions,
// or the channel configuration a genesis block holds), the orderer's
// signature over the header's encoding, the channel configuration, and
// every transaction with its creator signature over its ProposalBytes and
// its endorsements over its ResponseBytes followed by the endorser. Every
// Signed is rebuilt from the block's fields, so a signature that verifies
// covers what the evidence reports. Blocks committed before the ledger
// signed them (store formats leveldb/1 and leveldb/2) parse with no
// orderer signature, no endorsements and empty creator signatures.
// ParseBlock checks no hash and no signature; it returns an error
// wrapping ErrMalformedBlock if raw does not parse.
func ParseBlock(raw []byte) (*evidence.Block, error) {
	blk, err := parseBlock(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformedBlock, err)
	}
	return blk, nil
}

func parseBlock(raw []byte) (*evidence.Block, error) {
	d := decoder{buf: raw}
	if tag := d.string(); d.err == nil && tag != rawBlockTag {
		return nil, fmt.Errorf("the encoding is %q, not %q", tag, rawBlockTag)
	}
	hdr, signer, signature, config := d.raw(), d.raw(), d.raw(), d.raw()
	n := d.count()
	txs := make([][]byte, 0, n)
	for range n {
		txs = append(txs, d.raw())
	}
	if err := d.finish(); err != nil {
		return nil, err
	}
	h, err := decodeHeader(hdr)
	if err != nil {
		return nil, err
	}
	hash := sha256.Sum256(hdr)
	var seal *blockSeal
	if len(signer) > 0 || len(signature) > 0 || len(config) > 0 {
		seal = &blockSeal{signer: signer, signature: signature, config: config}
	}
	blk := &evidence.Block{
		Header: evidence.Header{
			Number:       h.Number,
			PreviousHash: h.PreviousHash,
			DataHash:     h.DataHash,
			Hash:         hash[:],
			Extra:        h.WriteSetHash,
		},
		ComputedDataHash: blockDataHash(seal, txs),
		Orderers:         []evidence.Signature{},
		Txs:              make([]evidence.Tx, 0, len(txs)),
	}
	if len(signer) > 0 || len(signature) > 0 {
		id, err := identity(signer)
		if err != nil {
			return nil, fmt.Errorf("orderer: %w", err)
		}
		blk.Orderers = append(blk.Orderers, evidence.Signature{Signer: id, Signed: bytes.Clone(hdr), Signature: bytes.Clone(signature)})
	}
	if len(config) > 0 {
		if len(txs) > 0 {
			return nil, errors.New("a block holding a channel configuration holds transactions")
		}
		c, err := decodeChannelConfig(config)
		if err != nil {
			return nil, err
		}
		ec, err := evidenceConfig(c)
		if err != nil {
			return nil, err
		}
		blk.Config = &ec
	}
	for i, r := range txs {
		tx, err := evidenceTx(i, r)
		if err != nil {
			return nil, fmt.Errorf("transaction %d: %w", i, err)
		}
		blk.Txs = append(blk.Txs, tx)
	}
	return blk, nil
}

// evidenceTx decodes transaction record r, transaction i of its block.
func evidenceTx(i int, r []byte) (evidence.Tx, error) {
	t, err := decodeTransaction(r)
	if err != nil {
		return evidence.Tx{}, err
	}
	creator, err := identity(t.Creator)
	if err != nil {
		return evidence.Tx{}, fmt.Errorf("creator: %w", err)
	}
	tx := evidence.Tx{
		ID:           t.TxID,
		Index:        i,
		Timestamp:    t.Timestamp,
		Creator:      evidence.Signature{Signer: creator, Signed: t.ProposalBytes(), Signature: t.Signature},
		Response:     t.ResponseBytes(),
		Endorsements: make([]evidence.Signature, 0, len(t.Endorsements)),
		EndorserIDs:  make([][]byte, 0, len(t.Endorsements)),
		Chaincode:    chaincodeName,
		Function:     t.Function,
		Args:         t.Args,
		Writes:       make([]evidence.Write, 0, len(t.Writes)),
		FlaggedValid: t.Valid,
	}
	for j, e := range t.Endorsements {
		id, err := identity(e.Endorser)
		if err != nil {
			return evidence.Tx{}, fmt.Errorf("endorser %d: %w", j, err)
		}
		signed := make([]byte, 0, len(tx.Response)+len(e.Endorser))
		signed = append(append(signed, tx.Response...), e.Endorser...)
		tx.Endorsements = append(tx.Endorsements, evidence.Signature{Signer: id, Signed: signed, Signature: e.Signature})
		tx.EndorserIDs = append(tx.EndorserIDs, e.Endorser)
	}
	for _, w := range t.Writes {
		tx.Writes = append(tx.Writes, evidence.Write{Key: w.Key, Delete: w.Delete, Value: w.Value})
	}
	return tx, nil
}

// identity reads a serialized msp.SerializedIdentity as evidence names a
// signer.
func identity(serialized []byte) (evidence.Identity, error) {
	mspID, certPEM, _, err := parseIdentity(serialized)
	if err != nil {
		return evidence.Identity{}, err
	}
	return evidence.Identity{MSPID: mspID, CertPEM: certPEM}, nil
}

// evidenceConfig is c as evidence states a configuration: one
// organisation with NodeOUs, its orderers and the block validation policy.
func evidenceConfig(c *ChannelConfig) (evidence.Config, error) {
	ec := evidence.Config{
		Orgs:            []evidence.Org{{MSPID: c.MSPID, RootCerts: [][]byte{c.RootCertPEM}, NodeOUs: true}},
		Orderers:        make([]evidence.Identity, 0, len(c.Orderers)),
		BlockValidation: evidence.Policy{Kind: evidence.PolicySignature, Rule: c.BlockValidation},
	}
	for i, o := range c.Orderers {
		id, err := identity(o)
		if err != nil {
			return evidence.Config{}, fmt.Errorf("channel configuration: orderer %d: %w", i, err)
		}
		ec.Orderers = append(ec.Orderers, id)
	}
	return ec, nil
}

// Trust returns the trust root a regulator pins to check this ledger's
// blocks offline (RawBlock, ParseBlock): the organisation (the local MSP's
// CA, with NodeOUs), the orderer identity and the block validation policy
// OR('<MSPID>.orderer'), the endorsement policy OR('<MSPID>.peer') (the
// ledger has one endorsing peer), and the hash of the genesis block's
// header. For a ledger created in store format leveldb/3 these are the
// channel configuration its genesis block holds (covered by the genesis
// hash). A ledger created by an earlier version has an empty genesis block
// that cannot carry one: its Trust states the local MSP as it is now, and
// its blocks from the upgrade on are signed by it. Exported is the time
// Trust was called (Config.Now).
func (l *Ledger) Trust(ctx context.Context) (*evidence.Trust, error) {
	snap, release, err := l.snapshot(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	rec, _, found, err := loadBlock(snap, 0)
	switch {
	case err != nil:
		return nil, fmt.Errorf("genesis block: %w", err)
	case !found:
		return nil, fmt.Errorf("genesis block: %w", ledger.ErrNotFound)
	}
	c := newChannelConfig(l.cfg.ChannelID, l.msp)
	if rec.seal != nil && len(rec.seal.config) > 0 {
		if c, err = decodeChannelConfig(rec.seal.config); err != nil {
			return nil, fmt.Errorf("genesis block: %w", err)
		}
	}
	ec, err := evidenceConfig(c)
	if err != nil {
		return nil, err
	}
	channel := c.Channel
	if channel == "" {
		channel = evidence.BackendEmbedded
	}
	genesis := sha256.Sum256(rec.encoded)
	return &evidence.Trust{
		Format:      evidence.TrustFormat,
		Backend:     evidence.BackendEmbedded,
		Channel:     channel,
		Chaincode:   chaincodeName,
		GenesisHash: genesis[:],
		Config:      ec,
		Endorsement: evidence.Policy{Kind: evidence.PolicySignature, Rule: c.Endorsement},
		Exported:    l.cfg.Now().UTC(),
	}, nil
}

// BlockHeight returns the number of blocks, genesis included, as Height
// does; the newest block is BlockHeight-1. It fails with ErrClosed once
// the ledger is closed.
func (l *Ledger) BlockHeight(ctx context.Context) (uint64, error) {
	if err := l.checkOpen(ctx); err != nil {
		return 0, err
	}
	return l.Height(), nil
}

// BlockFormat is the embedded ledger's block encoding (RawBlock) as
// package audit reads it.
type BlockFormat struct{}

// ParseBlock decodes a raw block; see the package function ParseBlock.
func (BlockFormat) ParseBlock(raw []byte) (*evidence.Block, error) { return ParseBlock(raw) }

// HeaderHash returns the hash the embedded ledger gives a header, as the
// next header's PreviousHash names it: SHA-256 of uint64(number) ||
// bytes(previous hash) || bytes(data hash) || bytes(write-set hash), the
// write-set hash being h.Extra and absent (with its length) from the
// headers of blocks written in store format leveldb/1, whose Extra is
// empty.
func (BlockFormat) HeaderHash(h evidence.Header) []byte {
	return BlockHeader{Number: h.Number, PreviousHash: h.PreviousHash, DataHash: h.DataHash, WriteSetHash: h.Extra}.Hash()
}
