package embedded

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"time"
)

// Block is one committed block of the embedded ledger: a header that chains
// it to its predecessor, the orderer's signature over that header and the
// transactions it orders (or, for the genesis block, the channel
// configuration).
type Block struct {
	Header BlockHeader
	// Signer is the serialized msp.SerializedIdentity of the orderer that
	// signed the block, Signature its ECDSA signature over SHA-256 of the
	// header's encoding, which is the header's Hash. Like the orderer
	// signatures in a Fabric block's metadata they are outside the header
	// hash (a signature cannot cover itself). Both are empty in blocks
	// committed before the ledger signed blocks (store formats leveldb/1
	// and leveldb/2).
	Signer    []byte
	Signature []byte
	// Config is the channel configuration a genesis block holds as its
	// data, in ledgers created in store format leveldb/3; nil otherwise.
	Config       *ChannelConfig
	Transactions []Transaction
}

// ChannelConfig is what the genesis block of a ledger establishes: the
// channel, the organisation (its CA certificate, whose certificates carry
// NodeOUs), the orderers that sign blocks and the policies, in Fabric's
// policy language, that block signatures and endorsements satisfy.
type ChannelConfig struct {
	Channel     string
	MSPID       string
	RootCertPEM []byte
	// Orderers are serialized msp.SerializedIdentity values.
	Orderers        [][]byte
	BlockValidation string
	Endorsement     string
}

// BlockHeader holds what the hash chain covers. Hash() of a header is
// recorded as PreviousHash in the next block's header.
type BlockHeader struct {
	Number uint64
	// PreviousHash is the Hash of the previous block's header (empty for
	// the genesis block 0).
	PreviousHash []byte
	// DataHash is SHA-256 over the block's encoded transactions (their
	// signatures included), or over the encoded channel configuration of
	// a genesis block that holds one.
	DataHash []byte
	// WriteSetHash is SHA-256 over the state changes the block applied:
	// the writes of its valid transactions in a canonical encoding (see
	// WriteSetHash). It is empty only in blocks written by earlier versions
	// (store format leveldb/1), whose headers did not carry it; the header
	// hash then covers the three fields above, as it did.
	WriteSetHash []byte
}

// Transaction is a committed transaction as recorded in a block.
type Transaction struct {
	TxID      string
	Timestamp time.Time
	// Creator is the serialized msp.SerializedIdentity that submitted it.
	Creator  []byte
	Function string
	Args     []string
	// Reads are the keys the transaction read, with the version it saw.
	Reads []KeyRead
	// RangeReads summarise the range queries the transaction ran.
	RangeReads []RangeRead
	// Writes are the keys the transaction wrote, in key order.
	Writes   []KeyWrite
	Response Response
	// Event is the chaincode event the transaction set, if any.
	Event *ChaincodeEvent
	// Valid is true for every transaction stored in a block: the embedded
	// ledger re-executes transactions that fail MVCC validation instead of
	// committing them as invalid.
	Valid bool
	// Signature is the creator's ECDSA signature over SHA-256 of
	// ProposalBytes. Endorsements are the endorsing peers' (the embedded
	// ledger has one). Both are empty in transactions committed before the
	// ledger signed transactions (store formats leveldb/1 and leveldb/2).
	Signature    []byte
	Endorsements []Endorsement
}

// Endorsement is a peer's signature over a transaction's outcome.
type Endorsement struct {
	// Endorser is the peer's serialized msp.SerializedIdentity.
	Endorser []byte
	// Signature is its ECDSA signature over SHA-256 of ResponseBytes
	// followed by Endorser.
	Signature []byte
}

// Version identifies the transaction that last wrote a key: block number and
// position of the transaction in that block.
type Version struct {
	Block uint64
	Tx    uint32
}

// KeyRead is one key of a read set. Exists is false if the key was absent.
type KeyRead struct {
	Key     string
	Exists  bool
	Version Version
}

// RangeRead records a range query: its bounds, whether the caller iterated
// to the end, how many keys it saw and a SHA-256 over those keys and their
// versions.
type RangeRead struct {
	Start, End  string
	Exhausted   bool
	Count       uint32
	ResultsHash []byte
}

// KeyWrite is one key of a write set; Delete is true for DelState (and for
// PutState with an empty value, as on Fabric).
type KeyWrite struct {
	Key    string
	Delete bool
	Value  []byte
}

// Response is the chaincode's response to a transaction.
type Response struct {
	Status  int32
	Message string
	Payload []byte
}

// ChaincodeEvent is the event a transaction set with SetEvent.
type ChaincodeEvent struct {
	Name    string
	Payload []byte
}

// ErrCorrupt reports a ledger store that is damaged or was altered: stored
// bytes that LevelDB's checksums or the chain's hashes refuse, records
// missing, or state that the chain's write sets do not produce. Every
// *TamperError matches it with errors.Is.
var ErrCorrupt = errors.New("ledger store corrupt")

// errCorrupt reports stored bytes that cannot be decoded.
var errCorrupt = ErrCorrupt

// TamperError reports that the stored ledger does not verify. It matches
// ErrCorrupt.
type TamperError struct {
	// Block is the first block whose stored bytes no longer match the
	// hashes that chain it; for a state, history or index record at fault,
	// the block whose write (or transaction) the record should match.
	Block uint64
	// ObjectType is set when a state or history record is at fault: the
	// object type of its composite key (such as "actor" or "consent"), or
	// "simple" for a key that is not composite. The rest of the key (the
	// IDs) is never reported.
	ObjectType string
	Reason     string
}

// Error implements error.
func (e *TamperError) Error() string {
	if e.ObjectType != "" {
		return fmt.Sprintf("ledger tampered: %s key (block %d): %s", e.ObjectType, e.Block, e.Reason)
	}
	return fmt.Sprintf("ledger tampered at block %d: %s", e.Block, e.Reason)
}

// Is reports whether target is ErrCorrupt.
func (e *TamperError) Is(target error) bool { return target == ErrCorrupt }

// Hash returns SHA-256 over the header's canonical encoding.
func (h BlockHeader) Hash() []byte {
	sum := sha256.Sum256(h.encode())
	return sum[:]
}

func (h BlockHeader) encode() []byte {
	var e encoder
	e.uint64(h.Number)
	e.bytes(h.PreviousHash)
	e.bytes(h.DataHash)
	if h.WriteSetHash != nil {
		e.bytes(h.WriteSetHash)
	}
	return e.buf
}

// WriteSetHash returns the write-set hash of a block holding txs: SHA-256
// over, for each valid transaction in block order, its position in the
// block (uint32, big-endian) followed by the SHA-256 of its writes
// (TxWriteSetHash). Transactions stored with Valid false contribute
// nothing.
func WriteSetHash(txs []Transaction) []byte {
	ws := newWriteSetHash()
	for i := range txs {
		if txs[i].Valid {
			ws.add(uint32(i), TxWriteSetHash(txs[i].Writes))
		}
	}
	return ws.sum()
}

// TxWriteSetHash returns SHA-256 over the canonical encoding of one
// transaction's writes: their number (uvarint), then each write in key
// order: the key (uvarint length, bytes), then 0x01 for a delete, or 0x00
// and the value (uvarint length, bytes).
func TxWriteSetHash(writes []KeyWrite) [sha256.Size]byte {
	var th txWriteSetHash
	th.begin(len(writes))
	for _, w := range writes {
		hashWrite(&th, w.Key, w.Delete, w.Value)
	}
	return th.sum()
}

// writeSetHash accumulates a block's write-set hash as transactions are
// taken into it. Each transaction's own hash is computed where it is
// simulated, concurrently with others, so that the committer only hashes
// 36 bytes per transaction.
type writeSetHash struct{ h hash.Hash }

func newWriteSetHash() *writeSetHash { return &writeSetHash{h: sha256.New()} }

// add adds the valid transaction at position txNum, whose writes hash to
// txHash (TxWriteSetHash).
func (w *writeSetHash) add(txNum uint32, txHash [sha256.Size]byte) {
	var b [4 + sha256.Size]byte
	binary.BigEndian.PutUint32(b[:], txNum)
	copy(b[4:], txHash[:])
	w.h.Write(b[:])
}

func (w *writeSetHash) sum() []byte { return w.h.Sum(nil) }

// txWriteSetHash computes TxWriteSetHash write by write.
type txWriteSetHash struct {
	h   hash.Hash
	buf []byte
}

func (t *txWriteSetHash) begin(count int) {
	if t.h == nil {
		t.h = sha256.New()
	}
	t.h.Reset()
	t.buf = binary.AppendUvarint(t.buf[:0], uint64(count))
	t.h.Write(t.buf)
}

// hashWrite hashes one write of the transaction begun last.
func hashWrite[K string | []byte](t *txWriteSetHash, key K, del bool, value []byte) {
	b := binary.AppendUvarint(t.buf[:0], uint64(len(key)))
	b = append(b, key...)
	if del {
		b = append(b, 1)
	} else {
		b = append(b, 0)
		b = binary.AppendUvarint(b, uint64(len(value)))
	}
	t.h.Write(b)
	if !del {
		t.h.Write(value)
	}
	t.buf = b
}

func (t *txWriteSetHash) sum() (s [sha256.Size]byte) {
	t.h.Sum(s[:0])
	return s
}

// dataHash is SHA-256 over the length-prefixed encodings of txs.
func dataHash(encodedTxs [][]byte) []byte {
	h := sha256.New()
	var n [binary.MaxVarintLen64]byte
	for _, tx := range encodedTxs {
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(tx)))])
		h.Write(tx)
	}
	return h.Sum(nil)
}

// blockSeal is what the header record of a signed block holds besides the
// header: the orderer's serialized identity and signature, and for a
// genesis block its encoded ChannelConfig (its data: the data hash covers
// it).
type blockSeal struct {
	signer, signature, config []byte
}

// headerRecord is a stored header record, decoded.
type headerRecord struct {
	header BlockHeader
	// encoded is the header's encoding as stored: what the orderer signed
	// and what the header's hash is computed over.
	encoded []byte
	txCount uint64
	// seal is nil for a block committed before the ledger signed blocks.
	seal *blockSeal
}

// encodeHeaderRecord returns the stored header record of a block holding
// txCount transactions (each stored as a record of its own): the header's
// encoding and txCount, then, for a signed block (seal not nil), the
// orderer's identity and signature and the encoded configuration (empty
// but for a genesis block). Records of unsigned blocks end after txCount.
func encodeHeaderRecord(h BlockHeader, txCount int, seal *blockSeal) []byte {
	var e encoder
	e.bytes(h.encode())
	e.uvarint(uint64(txCount))
	if seal != nil {
		e.bytes(seal.signer)
		e.bytes(seal.signature)
		e.bytes(seal.config)
	}
	return e.buf
}

// decodeHeaderRecord parses a stored header record.
func decodeHeaderRecord(b []byte) (headerRecord, error) {
	d := decoder{buf: b}
	var rec headerRecord
	rec.encoded = d.bytes()
	rec.txCount = d.uvarint()
	if d.err == nil && len(d.buf) > 0 {
		rec.seal = &blockSeal{signer: d.bytes(), signature: d.bytes(), config: d.bytes()}
	}
	if err := d.finish(); err != nil {
		return headerRecord{}, fmt.Errorf("block header record: %w", err)
	}
	h, err := decodeHeader(rec.encoded)
	if err != nil {
		return headerRecord{}, err
	}
	rec.header = h
	return rec, nil
}

// decodeHeader parses a header's encoding.
func decodeHeader(b []byte) (BlockHeader, error) {
	hd := decoder{buf: b}
	h := BlockHeader{Number: hd.uint64(), PreviousHash: hd.bytes(), DataHash: hd.bytes()}
	if hd.err == nil && len(hd.buf) > 0 {
		// Headers of earlier versions end here; the verifier checks which
		// blocks must carry the write-set hash.
		if h.WriteSetHash = hd.bytes(); h.WriteSetHash == nil {
			h.WriteSetHash = []byte{}
		}
	}
	if err := hd.finish(); err != nil {
		return BlockHeader{}, fmt.Errorf("block header: %w", err)
	}
	return h, nil
}

// blockDataHash is the data hash of a block: over its transactions, or
// over the encoded configuration of a genesis block that holds one.
func blockDataHash(seal *blockSeal, txs [][]byte) []byte {
	if seal != nil && len(seal.config) > 0 {
		return dataHash([][]byte{seal.config})
	}
	return dataHash(txs)
}

func decodeBlock(rec headerRecord, raw [][]byte) (*Block, error) {
	blk := &Block{Header: rec.header, Transactions: make([]Transaction, 0, len(raw))}
	if rec.seal != nil {
		blk.Signer, blk.Signature = rec.seal.signer, rec.seal.signature
		if len(rec.seal.config) > 0 {
			c, err := decodeChannelConfig(rec.seal.config)
			if err != nil {
				return nil, err
			}
			blk.Config = c
		}
	}
	for _, r := range raw {
		tx, err := decodeTransaction(r)
		if err != nil {
			return nil, err
		}
		blk.Transactions = append(blk.Transactions, tx)
	}
	return blk, nil
}

// encodedSizeHint estimates t's encoded size so encode allocates once.
func (t *Transaction) encodedSizeHint() int {
	n := 256 + len(t.TxID) + len(t.Creator) + len(t.Function) + len(t.Response.Message) + len(t.Response.Payload)
	for _, a := range t.Args {
		n += len(a) + 4
	}
	for _, r := range t.Reads {
		n += len(r.Key) + 16
	}
	n += len(t.RangeReads) * 128
	for _, w := range t.Writes {
		n += len(w.Key) + len(w.Value) + 8
	}
	if t.Event != nil {
		n += len(t.Event.Name) + len(t.Event.Payload) + 8
	}
	n += len(t.Signature)
	for _, en := range t.Endorsements {
		n += len(en.Endorser) + len(en.Signature) + 8
	}
	return n
}

// encode returns the stored form of t: its proposal fields (see
// ProposalBytes), reads and range reads, its outcome (see ResponseBytes)
// and Valid, then, for a signed transaction, the creator's signature and
// the endorsements. Records of unsigned transactions end after Valid.
func (t *Transaction) encode() []byte {
	e := &encoder{buf: make([]byte, 0, t.encodedSizeHint())}
	writeProposal(e, t.TxID, t.Timestamp.UnixNano(), t.Creator, t.Function, t.Args)
	e.uvarint(uint64(len(t.Reads)))
	for _, r := range t.Reads {
		e.string(r.Key)
		e.bool(r.Exists)
		e.uint64(r.Version.Block)
		e.uint32(r.Version.Tx)
	}
	e.uvarint(uint64(len(t.RangeReads)))
	for _, r := range t.RangeReads {
		e.string(r.Start)
		e.string(r.End)
		e.bool(r.Exhausted)
		e.uint32(r.Count)
		e.bytes(r.ResultsHash)
	}
	writeOutcome(e, t.Writes, t.Response, t.Event)
	e.bool(t.Valid)
	if len(t.Signature) > 0 {
		e.bytes(t.Signature)
		e.uvarint(uint64(len(t.Endorsements)))
		for _, en := range t.Endorsements {
			e.bytes(en.Endorser)
			e.bytes(en.Signature)
		}
	}
	return e.buf
}

func decodeTransaction(b []byte) (Transaction, error) {
	d := decoder{buf: b}
	var t Transaction
	t.TxID = d.string()
	t.Timestamp = time.Unix(0, int64(d.uint64())).UTC()
	t.Creator = d.bytes()
	t.Function = d.string()
	n := d.count()
	for range n {
		t.Args = append(t.Args, d.string())
	}
	n = d.count()
	for range n {
		t.Reads = append(t.Reads, KeyRead{Key: d.string(), Exists: d.bool(), Version: Version{Block: d.uint64(), Tx: d.uint32()}})
	}
	n = d.count()
	for range n {
		t.RangeReads = append(t.RangeReads, RangeRead{Start: d.string(), End: d.string(), Exhausted: d.bool(), Count: d.uint32(), ResultsHash: d.bytes()})
	}
	n = d.count()
	for range n {
		t.Writes = append(t.Writes, KeyWrite{Key: d.string(), Delete: d.bool(), Value: d.bytes()})
	}
	t.Response.Status = int32(d.uint32())
	t.Response.Message = d.string()
	t.Response.Payload = d.bytes()
	if d.bool() {
		t.Event = &ChaincodeEvent{Name: d.string(), Payload: d.bytes()}
	}
	t.Valid = d.bool()
	if d.err == nil && len(d.buf) > 0 {
		t.Signature = d.bytes()
		n = d.count()
		for range n {
			t.Endorsements = append(t.Endorsements, Endorsement{Endorser: d.bytes(), Signature: d.bytes()})
		}
	}
	if err := d.finish(); err != nil {
		return Transaction{}, fmt.Errorf("transaction: %w", err)
	}
	return t, nil
}

// encoder builds the canonical binary encoding used for blocks and indexes:
// fixed-width big-endian integers and uvarint length-prefixed byte strings.
type encoder struct{ buf []byte }

func (e *encoder) uvarint(v uint64) { e.buf = binary.AppendUvarint(e.buf, v) }
func (e *encoder) uint64(v uint64)  { e.buf = binary.BigEndian.AppendUint64(e.buf, v) }
func (e *encoder) uint32(v uint32)  { e.buf = binary.BigEndian.AppendUint32(e.buf, v) }
func (e *encoder) bytes(b []byte)   { e.uvarint(uint64(len(b))); e.buf = append(e.buf, b...) }
func (e *encoder) string(s string)  { e.uvarint(uint64(len(s))); e.buf = append(e.buf, s...) }
func (e *encoder) bool(v bool) {
	if v {
		e.buf = append(e.buf, 1)
	} else {
		e.buf = append(e.buf, 0)
	}
}

// decoder reads what encoder wrote. The first error sticks; later reads
// return zero values. Byte slices returned are copies.
type decoder struct {
	buf []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: truncated %s", errCorrupt, what)
	}
	d.buf = nil
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.buf)
	if n <= 0 {
		d.fail("length")
		return 0
	}
	d.buf = d.buf[n:]
	return v
}

// count reads a collection length, bounded by the bytes left so that
// corrupt input cannot make the decoder allocate without limit.
func (d *decoder) count() uint64 {
	n := d.uvarint()
	if n > uint64(len(d.buf)) {
		d.fail("count")
		return 0
	}
	return n
}

func (d *decoder) take(n uint64, what string) []byte {
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.buf)) {
		d.fail(what)
		return nil
	}
	b := d.buf[:n:n]
	d.buf = d.buf[n:]
	return b
}

func (d *decoder) uint64() uint64 {
	b := d.take(8, "uint64")
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}

func (d *decoder) uint32() uint32 {
	b := d.take(4, "uint32")
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint32(b)
}

func (d *decoder) bool() bool {
	b := d.take(1, "bool")
	return b != nil && b[0] == 1
}

func (d *decoder) bytes() []byte {
	b := d.take(d.uvarint(), "bytes")
	if len(b) == 0 {
		return nil
	}
	return bytes.Clone(b)
}

func (d *decoder) string() string { return string(d.take(d.uvarint(), "string")) }

// raw returns a length-prefixed byte string without copying it.
func (d *decoder) raw() []byte { return d.take(d.uvarint(), "bytes") }

// skip passes over a length-prefixed byte string.
func (d *decoder) skip() { d.take(d.uvarint(), "bytes") }

func (d *decoder) finish() error {
	if d.err != nil {
		return d.err
	}
	if len(d.buf) != 0 {
		return fmt.Errorf("%w: %d trailing bytes", errCorrupt, len(d.buf))
	}
	return nil
}
