package embedded

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"unicode"

	"github.com/syndtr/goleveldb/leveldb"
	lerrors "github.com/syndtr/goleveldb/leveldb/errors"
	"github.com/syndtr/goleveldb/leveldb/iterator"
	"github.com/syndtr/goleveldb/leveldb/storage"
	"github.com/syndtr/goleveldb/leveldb/util"
)

// Report summarises a ledger store that verified.
type Report struct {
	// Blocks is the chain height, genesis included.
	Blocks uint64 `json:"blocks"`
	// Tip is the header hash of the last block, in hex.
	Tip string `json:"tip,omitempty"`
	// Transactions is the number of transactions the blocks hold.
	Transactions uint64 `json:"transactions"`
	// Keys is the number of keys in current state.
	Keys uint64 `json:"keys"`
	// HistoryEntries is the number of key modifications in the history
	// index (one per write of every transaction).
	HistoryEntries uint64 `json:"historyEntries"`
	// Anchored is true when the chain was also checked against the chain
	// anchor file (VerifyDir only; New checks it on every start).
	Anchored bool `json:"anchored"`
}

// The start-up check reads the last quickCheckBlocks blocks, or fewer once
// it has read quickCheckBytes of transactions (the tip block always).
const (
	quickCheckBlocks = 8
	quickCheckBytes  = 32 << 20
)

// chainMeta is what the meta records say about the chain.
type chainMeta struct {
	format string
	// wsFrom is the first block whose header carries a write-set hash.
	wsFrom uint64
	// sigFrom is the first signed block; 0 when the genesis block holds
	// the channel configuration.
	sigFrom uint64
	height  uint64
	tip     []byte
}

// readMeta reads and checks the meta records of a store that has a format
// marker.
func readMeta(r reader) (chainMeta, error) {
	format, err := r.Get(keyFormat, nil)
	if errors.Is(err, leveldb.ErrNotFound) {
		return chainMeta{}, fmt.Errorf("%w: the store has no format marker", ErrCorrupt)
	}
	if err != nil {
		return chainMeta{}, readError("read store format", err)
	}
	m := chainMeta{format: string(format)}
	switch m.format {
	case storeFormat, unsignedStoreFormat, legacyStoreFormat:
	default:
		return chainMeta{}, fmt.Errorf("%w: store format %q, this version reads %q (and upgrades %q and %q)", ErrStoreFormat, format, storeFormat, unsignedStoreFormat, legacyStoreFormat)
	}
	m.height, m.tip, err = readTip(r)
	switch {
	case errors.Is(err, errCorrupt) || errors.Is(err, leveldb.ErrNotFound):
		return chainMeta{}, &TamperError{Block: 0, Reason: "chain height or tip record: " + err.Error()}
	case err != nil:
		return chainMeta{}, readError("read chain tip", err)
	case m.height == 0:
		return chainMeta{}, &TamperError{Block: 0, Reason: "the chain height record says 0 blocks"}
	case len(m.tip) != sha256.Size:
		return chainMeta{}, &TamperError{Block: m.height - 1, Reason: "the chain tip record is malformed"}
	}
	if m.wsFrom, err = readMarker(r, keyWriteSetFrom, "write-set", m, m.format != legacyStoreFormat); err != nil {
		return chainMeta{}, err
	}
	if m.sigFrom, err = readMarker(r, keySignedFrom, "signed-block", m, m.format == storeFormat); err != nil {
		return chainMeta{}, err
	}
	if m.sigFrom < m.wsFrom {
		return chainMeta{}, fmt.Errorf("%w: the signed-block marker precedes the write-set marker", ErrCorrupt)
	}
	return m, nil
}

// readMarker reads the marker record key (the first block that has what
// name says), which a store of format m.format holds if want; absent, the
// marker is the chain's height (no block has it).
func readMarker(r reader, key []byte, name string, m chainMeta, want bool) (uint64, error) {
	b, err := r.Get(key, nil)
	switch {
	case !want && errors.Is(err, leveldb.ErrNotFound):
		return m.height, nil
	case !want && err == nil:
		return 0, fmt.Errorf("%w: a store of format %s holds a %s marker", ErrCorrupt, m.format, name)
	case errors.Is(err, leveldb.ErrNotFound):
		return 0, fmt.Errorf("%w: the %s marker is missing", ErrCorrupt, name)
	case err != nil:
		return 0, readError("read "+name+" marker", err)
	case len(b) != 8 || beUint64(b) > m.height:
		return 0, fmt.Errorf("%w: the %s marker is malformed", ErrCorrupt, name)
	}
	return beUint64(b), nil
}

// isCorrupted reports whether err is, or wraps, one of LevelDB's
// corruption errors: a checksum that fails, a table or manifest that does
// not parse, a file the manifest names that is missing.
func isCorrupted(err error) bool {
	var dbErr *lerrors.ErrCorrupted
	var fileErr *storage.ErrCorrupted
	return errors.As(err, &dbErr) || errors.As(err, &fileErr)
}

// isDamaged reports whether a read of an open store failed because the
// store is damaged: corrupt, or missing a file it needs.
func isDamaged(err error) bool { return isCorrupted(err) || errors.Is(err, fs.ErrNotExist) }

// readError wraps a store read error; the errors of a damaged store wrap
// ErrCorrupt.
func readError(what string, err error) error {
	if isDamaged(err) {
		return fmt.Errorf("%w: %s: %w", ErrCorrupt, what, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// blockReadError is readError for a failure while reading block n.
func blockReadError(n uint64, err error) error {
	if isDamaged(err) {
		return &TamperError{Block: n, Reason: "the store cannot read the block: " + err.Error()}
	}
	return fmt.Errorf("read block %d: %w", n, err)
}

// checkContents checks block n's stored transactions raw against its
// header record rec: the data hash, that every transaction parses (into
// txs, whose buffers it reuses), from block m.wsFrom on the write-set hash,
// and that from block m.sigFrom on the block and its transactions carry
// signatures (and none before; a genesis block of a signed chain holds the
// channel configuration instead of transactions). It reads the
// transactions in place: a full Verify reads every byte of the chain, and
// copying it all into decoded transactions would cost more than checking
// it. The signatures themselves are checked by checkSignatures.
func checkContents(n uint64, rec headerRecord, raw [][]byte, m chainMeta, txs *[]txView) error {
	h, signed := rec.header, n >= m.sigFrom
	if err := checkSeal(n, rec, raw, signed); err != nil {
		return err
	}
	if !equalBytes(h.DataHash, blockDataHash(rec.seal, raw)) {
		return &TamperError{Block: n, Reason: "data hash does not match the block's transactions"}
	}
	for len(*txs) < len(raw) {
		*txs = append(*txs, txView{})
	}
	ws := newWriteSetHash()
	var th txWriteSetHash
	for i, b := range raw {
		t := &(*txs)[i]
		if err := walkTransaction(b, t); err != nil {
			return &TamperError{Block: n, Reason: fmt.Sprintf("transaction %d: %v", i, err)}
		}
		for j := 1; j < len(t.writes); j++ {
			if bytes.Compare(t.writes[j-1].key, t.writes[j].key) >= 0 {
				return &TamperError{Block: n, Reason: fmt.Sprintf("transaction %d: write set not in key order", i)}
			}
		}
		if err := checkTxSigned(t, signed); err != nil {
			return &TamperError{Block: n, Reason: fmt.Sprintf("transaction %d: %v", i, err)}
		}
		if t.valid {
			th.begin(len(t.writes))
			for _, w := range t.writes {
				hashWrite(&th, w.key, w.del, w.value)
			}
			ws.add(uint32(i), th.sum())
		}
	}
	switch {
	case n < m.wsFrom && h.WriteSetHash != nil:
		return &TamperError{Block: n, Reason: "header carries a write-set hash, but the block predates them"}
	case n < m.wsFrom:
	case len(h.WriteSetHash) != sha256.Size:
		return &TamperError{Block: n, Reason: "header carries no write-set hash"}
	case !equalBytes(h.WriteSetHash, ws.sum()):
		return &TamperError{Block: n, Reason: "write-set hash does not match the block's writes"}
	}
	return nil
}

// checkSeal checks that block n carries an orderer's signature if signed
// and none otherwise, and that the genesis block of a signed chain, and
// no other block, holds a channel configuration (and no transactions).
func checkSeal(n uint64, rec headerRecord, raw [][]byte, signed bool) error {
	s := rec.seal
	switch {
	case !signed && s != nil:
		return &TamperError{Block: n, Reason: "the block carries a signature, but it predates signed blocks"}
	case !signed:
		return nil
	case s == nil || len(s.signer) == 0 || len(s.signature) == 0:
		return &TamperError{Block: n, Reason: "the block carries no orderer signature"}
	case n == 0 && len(s.config) == 0:
		return &TamperError{Block: 0, Reason: "the genesis block holds no channel configuration"}
	case n == 0 && len(raw) > 0:
		return &TamperError{Block: 0, Reason: "the genesis block holds transactions"}
	case n > 0 && len(s.config) > 0:
		return &TamperError{Block: n, Reason: "a block other than the genesis block holds a channel configuration"}
	}
	return nil
}

// checkTxSigned checks that t carries a creator signature and
// endorsements if signed, and none otherwise.
func checkTxSigned(t *txView, signed bool) error {
	switch {
	case !signed && t.signed:
		return errors.New("signed, but its block predates signed transactions")
	case !signed:
		return nil
	case len(t.signature) == 0:
		return errors.New("no creator signature")
	case len(t.endorsements) == 0:
		return errors.New("no endorsement")
	}
	for _, e := range t.endorsements {
		if len(e.endorser) == 0 || len(e.signature) == 0 {
			return errors.New("an empty endorsement")
		}
	}
	return nil
}

// chainSigners returns the checker of the identities that signed the
// chain in r: the organisation the genesis block's configuration names
// or, for a chain upgraded from an unsigned format, the local MSP's CA
// (caPEM). It returns nil if no block is signed.
func chainSigners(r reader, m chainMeta, caPEM []byte) (*signers, error) {
	if m.sigFrom >= m.height {
		return nil, nil
	}
	if m.sigFrom > 0 {
		if caPEM == nil {
			return nil, fmt.Errorf("blocks from %d on are signed, but there is no local MSP CA certificate (%s) to check their signers against", m.sigFrom, filepath.Join(mspDirName, caDirName, certFile))
		}
		s, err := newSigners(caPEM, "")
		if err != nil {
			return nil, fmt.Errorf("local MSP: %w", err)
		}
		return s, nil
	}
	rec, _, found, err := loadBlock(r, 0)
	switch {
	case errors.Is(err, errCorrupt):
		return nil, &TamperError{Block: 0, Reason: err.Error()}
	case err != nil:
		return nil, blockReadError(0, err)
	case !found:
		return nil, &TamperError{Block: 0, Reason: "block missing"}
	}
	return genesisSigners(rec)
}

// genesisSigners returns the checker of the organisation the channel
// configuration in genesis block rec names.
func genesisSigners(rec headerRecord) (*signers, error) {
	if rec.seal == nil || len(rec.seal.config) == 0 {
		return nil, &TamperError{Block: 0, Reason: "the genesis block holds no channel configuration"}
	}
	c, err := decodeChannelConfig(rec.seal.config)
	if err != nil {
		return nil, &TamperError{Block: 0, Reason: err.Error()}
	}
	s, err := newSigners(c.RootCertPEM, c.MSPID)
	if err != nil {
		return nil, &TamperError{Block: 0, Reason: "channel configuration: " + err.Error()}
	}
	return s, nil
}

// checkOrderer verifies the orderer's signature over block n, whose header
// hashes to hash.
func checkOrderer(n uint64, hash []byte, rec headerRecord, s *signers) error {
	key, err := s.key(rec.seal.signer, ouOrderer)
	if err != nil {
		return &TamperError{Block: n, Reason: "orderer signature: " + err.Error()}
	}
	if !ecdsa.VerifyASN1(key, hash, rec.seal.signature) {
		return &TamperError{Block: n, Reason: "the orderer signature does not verify"}
	}
	return nil
}

// sigJob is one transaction signature to verify.
type sigJob struct {
	key    *ecdsa.PublicKey
	digest [sha256.Size]byte
	sig    []byte
	tx     int
	what   string
}

// checkTxSignatures verifies the creator signature and endorsements of
// the transactions txs of block n, in parallel when there are many.
func checkTxSignatures(n uint64, txs []txView, s *signers, d *digester, jobs []sigJob) ([]sigJob, error) {
	jobs = jobs[:0]
	for i := range txs {
		t := &txs[i]
		key, err := s.key(t.creator, ouClient, ouAdmin)
		if err != nil {
			return jobs, &TamperError{Block: n, Reason: fmt.Sprintf("transaction %d: creator: %v", i, err)}
		}
		d.reset()
		d.string(proposalTag)
		d.raw(t.proposal)
		prop := d.sum()
		jobs = append(jobs, sigJob{key: key, digest: prop, sig: t.signature, tx: i, what: "creator signature"})
		for _, e := range t.endorsements {
			key, err := s.key(e.endorser, ouPeer)
			if err != nil {
				return jobs, &TamperError{Block: n, Reason: fmt.Sprintf("transaction %d: endorser: %v", i, err)}
			}
			d.reset()
			d.string(responseTag)
			d.bytes(prop[:])
			d.raw(t.outcome)
			d.raw(e.endorser)
			jobs = append(jobs, sigJob{key: key, digest: d.sum(), sig: e.signature, tx: i, what: "endorsement"})
		}
	}
	if bad := verifyAll(jobs); bad >= 0 {
		return jobs, &TamperError{Block: n, Reason: fmt.Sprintf("transaction %d: the %s does not verify", jobs[bad].tx, jobs[bad].what)}
	}
	return jobs, nil
}

// verifyAll verifies jobs, spread over the available cores when there are
// enough to pay for it, and returns the index of the first that fails, -1
// if none.
func verifyAll(jobs []sigJob) int {
	workers := min(runtime.GOMAXPROCS(0), len(jobs)/8)
	if workers <= 1 {
		for i := range jobs {
			if !ecdsa.VerifyASN1(jobs[i].key, jobs[i].digest[:], jobs[i].sig) {
				return i
			}
		}
		return -1
	}
	bad := make([]bool, len(jobs))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < len(jobs); i = int(next.Add(1) - 1) {
				bad[i] = !ecdsa.VerifyASN1(jobs[i].key, jobs[i].digest[:], jobs[i].sig)
			}
		})
	}
	wg.Wait()
	return slices.Index(bad, true)
}

// quickCheck is the check New runs before it opens a ledger: no block
// beyond the recorded height, the recorded tip is the hash of the last
// block's header, and the last blocks link to one another, match their
// data and write-set hashes and, if signed, carry an orderer signature
// that verifies (whose header hash covers the transactions' signatures).
// caPEM is the local MSP's CA certificate.
func quickCheck(r reader, m chainMeta, caPEM []byte) error {
	it := r.NewIterator(&util.Range{Start: blockKey(m.height), Limit: []byte{prefixBlock + 1}}, nil)
	beyond := it.First()
	err := it.Error()
	it.Release()
	if err != nil {
		return blockReadError(m.height, err)
	}
	if beyond {
		return &TamperError{Block: m.height, Reason: fmt.Sprintf("block records beyond the recorded chain height of %d blocks", m.height)}
	}
	signers, err := chainSigners(r, m, caPEM)
	if err != nil {
		return err
	}
	expect, read := m.tip, 0
	var txs []txView
	for n := m.height; n > 0; {
		n--
		rec, raw, found, err := loadBlock(r, n)
		switch {
		case errors.Is(err, errCorrupt):
			return &TamperError{Block: n, Reason: err.Error()}
		case err != nil:
			return blockReadError(n, err)
		case !found:
			return &TamperError{Block: n, Reason: "block missing"}
		}
		h := rec.header
		hash := h.Hash()
		if !equalBytes(hash, expect) {
			if n == m.height-1 {
				return &TamperError{Block: n, Reason: "header hash differs from the recorded chain tip"}
			}
			return &TamperError{Block: n, Reason: fmt.Sprintf("header hash differs from the previous-header hash recorded in block %d", n+1)}
		}
		if h.Number != n {
			return &TamperError{Block: n, Reason: fmt.Sprintf("header says block %d", h.Number)}
		}
		if err := checkContents(n, rec, raw, m, &txs); err != nil {
			return err
		}
		if rec.seal != nil {
			if err := checkOrderer(n, hash, rec, signers); err != nil {
				return err
			}
		}
		if n == 0 && len(h.PreviousHash) != 0 {
			return &TamperError{Block: 0, Reason: "the genesis block names a previous block"}
		}
		for _, tx := range raw {
			read += len(tx)
		}
		expect = h.PreviousHash
		if m.height-n >= quickCheckBlocks || read >= quickCheckBytes {
			break
		}
	}
	return nil
}

// VerifyDir verifies the embedded ledger in dir (a Config.Dir) offline, as
// Verify does, and checks the chain against the anchor New keeps beside the
// store, so that a store that lost its last blocks is reported too. The
// signed blocks of a ledger upgraded from an unsigned store format are
// checked against the CA of the local MSP in dir/msp. It opens the store
// read-only, never writes to dir, and fails if another process has the
// ledger open. A nil error means every record of the
// store was checked and verified.
func VerifyDir(ctx context.Context, dir string) (rep Report, err error) {
	db, err := openStore(dir, true, nil)
	if err != nil {
		return Report{}, fmt.Errorf("embedded ledger: %w", err)
	}
	defer func() {
		if cerr := db.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("embedded ledger: close store: %w", cerr)
		}
	}()
	caPEM, err := os.ReadFile(filepath.Join(dir, mspDirName, caDirName, certFile))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return Report{}, fmt.Errorf("embedded ledger: local MSP: %w", err)
	}
	rep, err = verifyStore(ctx, db, caPEM)
	if err != nil {
		return Report{}, fmt.Errorf("embedded ledger: %w", err)
	}
	a, found, err := readAnchor(dir)
	if err != nil {
		return Report{}, fmt.Errorf("embedded ledger: %w", err)
	}
	if found {
		m, err := readMeta(db)
		if err != nil {
			return Report{}, fmt.Errorf("embedded ledger: %w", err)
		}
		if err := checkAnchor(db, a, m.height, m.tip); err != nil {
			return Report{}, fmt.Errorf("embedded ledger: %w", err)
		}
		rep.Anchored = true
	}
	return rep, nil
}

// verifyStore replays the whole chain in r and checks every record of the
// store against it; see Ledger.Verify. Signed blocks of a chain upgraded
// from an unsigned format are checked against caPEM, the local MSP's CA
// certificate; those of a chain created signed against its genesis
// block's configuration.
func verifyStore(ctx context.Context, r reader, caPEM []byte) (Report, error) {
	m, err := readMeta(r)
	if err != nil {
		return Report{}, err
	}
	v := &verifier{ctx: ctx, r: r, meta: m, state: make(map[string]*keyState), digest: newDigester()}
	if m.sigFrom > 0 {
		if v.signers, err = chainSigners(r, m, caPEM); err != nil {
			return Report{}, err
		}
	}
	for _, step := range []func() error{v.blocks, v.txIndex, v.currentState, v.history, v.otherRecords} {
		if err := step(); err != nil {
			return Report{}, err
		}
	}
	return v.rep, nil
}

// verifier holds what a full verification has replayed so far.
type verifier struct {
	ctx  context.Context
	r    reader
	meta chainMeta
	// state is every key the chain wrote, as its write sets leave it.
	state map[string]*keyState
	// live counts the keys of state the chain did not leave deleted.
	live int
	// events walks the event index in step with the blocks.
	events   iterator.Iterator
	eventsOK bool
	rep      Report

	// signers checks the identities of signed blocks; set before the
	// first signed block (by the genesis block of a chain created
	// signed).
	signers *signers
	digest  *digester

	// Buffers reused from block to block: the block's transactions
	// (copied from the store into arena), views into them, signatures to
	// verify, scratch.
	arena   []byte
	offsets []int
	raw     [][]byte
	txs     []txView
	jobs    []sigJob
	scratch []byte
}

// keyState is a key as the chain's write sets leave it.
type keyState struct {
	// last is the transaction that last wrote the key.
	last    Version
	deleted bool
	// value is SHA-256 of the value last written.
	value [sha256.Size]byte
	// history chains (version, deleted) of every write of the key in
	// commit order, which is the history index's order too.
	history [sha256.Size]byte
	writes  uint32
	// inState and inHistory are set once the store's records of the key
	// are found.
	inState, inHistory bool
}

func chainHistory(prev [sha256.Size]byte, v Version, deleted bool) [sha256.Size]byte {
	var b [sha256.Size + versionLen + 1]byte
	copy(b[:], prev[:])
	binary.BigEndian.PutUint64(b[sha256.Size:], v.Block)
	binary.BigEndian.PutUint32(b[sha256.Size+8:], v.Tx)
	if deleted {
		b[len(b)-1] = 1
	}
	return sha256.Sum256(b[:])
}

// blocks walks the block records in order: every block's header, linkage,
// data and write-set hashes, its transactions' index and event entries,
// and replays its writes.
func (v *verifier) blocks() error {
	it := v.r.NewIterator(util.BytesPrefix([]byte{prefixBlock}), nil)
	defer it.Release()
	v.events = v.r.NewIterator(util.BytesPrefix([]byte{prefixEvent}), nil)
	defer v.events.Release()
	v.eventsOK = v.events.Next()
	ok := it.Next()
	var prev []byte
	for n := range v.meta.height {
		if n%256 == 0 {
			if err := v.ctx.Err(); err != nil {
				return err
			}
		}
		if !ok || !bytes.Equal(it.Key(), blockKey(n)) {
			if err := it.Error(); err != nil {
				return blockReadError(n, err)
			}
			return &TamperError{Block: n, Reason: "block header record missing or out of place"}
		}
		rec, err := decodeHeaderRecord(it.Value())
		if err != nil {
			return &TamperError{Block: n, Reason: err.Error()}
		}
		count := rec.txCount
		v.arena, v.offsets = v.arena[:0], v.offsets[:0]
		ok = it.Next()
		for i := range count {
			if !ok || !bytes.Equal(it.Key(), blockTxKey(n, uint32(i))) {
				if err := it.Error(); err != nil {
					return blockReadError(n, err)
				}
				return &TamperError{Block: n, Reason: fmt.Sprintf("transaction record %d of the %d the header counts is missing or out of place", i, count)}
			}
			v.offsets = append(v.offsets, len(v.arena))
			v.arena = append(v.arena, it.Value()...)
			ok = it.Next()
		}
		v.offsets = append(v.offsets, len(v.arena))
		raw := v.raw[:0]
		for i := range count {
			raw = append(raw, v.arena[v.offsets[i]:v.offsets[i+1]:v.offsets[i+1]])
		}
		v.raw = raw
		hash := rec.header.Hash()
		if err := v.block(n, rec, hash, raw, prev); err != nil {
			return err
		}
		prev = hash
	}
	if err := it.Error(); err != nil {
		return blockReadError(v.meta.height, err)
	}
	if ok {
		return &TamperError{Block: v.meta.height, Reason: fmt.Sprintf("block records beyond the recorded chain height of %d blocks", v.meta.height)}
	}
	if !equalBytes(v.meta.tip, prev) {
		return &TamperError{Block: v.meta.height - 1, Reason: "header hash differs from the recorded chain tip"}
	}
	if err := v.events.Error(); err != nil {
		return readError("read event index", err)
	}
	if v.eventsOK {
		b, _, _ := splitEventKey(v.events.Key())
		return &TamperError{Block: b, Reason: "the event index holds an event no transaction of the chain set"}
	}
	v.rep.Blocks, v.rep.Tip = v.meta.height, hex.EncodeToString(v.meta.tip)
	return nil
}

// block checks block n, whose header hashes to hash and whose
// predecessor's header hash is prev, its signatures, its transactions'
// index and event entries, and replays its writes.
func (v *verifier) block(n uint64, rec headerRecord, hash []byte, raw [][]byte, prev []byte) error {
	h := rec.header
	switch {
	case h.Number != n:
		return &TamperError{Block: n, Reason: fmt.Sprintf("header says block %d", h.Number)}
	case n == 0 && len(h.PreviousHash) != 0:
		return &TamperError{Block: 0, Reason: "the genesis block names a previous block"}
	case n > 0 && !equalBytes(h.PreviousHash, prev):
		return &TamperError{Block: n - 1, Reason: fmt.Sprintf("header hash differs from the previous-header hash recorded in block %d", n)}
	}
	if err := checkContents(n, rec, raw, v.meta, &v.txs); err != nil {
		return err
	}
	if n >= v.meta.sigFrom {
		if n == 0 {
			s, err := genesisSigners(rec)
			if err != nil {
				return err
			}
			v.signers = s
		}
		if err := checkOrderer(n, hash, rec, v.signers); err != nil {
			return err
		}
		var err error
		if v.jobs, err = checkTxSignatures(n, v.txs[:len(raw)], v.signers, v.digest, v.jobs); err != nil {
			return err
		}
	}
	for i := range raw {
		t := &v.txs[i]
		if err := v.txIndexEntry(n, uint32(i), t); err != nil {
			return err
		}
		if err := v.event(n, uint32(i), t); err != nil {
			return err
		}
		if t.valid {
			v.replay(Version{Block: n, Tx: uint32(i)}, t.writes)
		}
	}
	v.rep.Transactions += uint64(len(raw))
	return nil
}

// txView is a stored transaction as the verifier reads it: slices of its
// encoded bytes, nothing copied.
type txView struct {
	id        []byte
	timestamp int64
	creator   []byte
	// proposal is the part of the record that ProposalBytes repeats after
	// its tag; outcome the part that ResponseBytes ends with.
	proposal  []byte
	outcome   []byte
	writes    []rawWrite
	event     bool
	eventName []byte
	eventData []byte
	valid     bool
	// signed is set if the record carries signatures.
	signed       bool
	signature    []byte
	endorsements []rawEndorsement
}

// rawWrite is one write of a txView.
type rawWrite struct {
	key, value []byte
	del        bool
}

// rawEndorsement is one endorsement of a txView.
type rawEndorsement struct {
	endorser, signature []byte
}

// walkTransaction reads into t (reusing its slices) what the verifier
// needs of an encoded transaction (see Transaction.encode), checking that
// the whole encoding parses as decodeTransaction would.
func walkTransaction(raw []byte, t *txView) error {
	d := decoder{buf: raw}
	at := func() int { return len(raw) - len(d.buf) }
	t.id = d.raw()
	t.timestamp = int64(d.uint64())
	t.creator = d.raw()
	d.skip()              // function
	for range d.count() { // args
		d.skip()
	}
	t.proposal = raw[:at()]
	d.skipReads()
	start := at()
	t.writes = t.writes[:0]
	for range d.count() {
		w := rawWrite{key: d.raw()}
		w.del = d.bool()
		w.value = d.raw()
		t.writes = append(t.writes, w)
	}
	d.take(4, "status")
	d.skip() // message
	d.skip() // payload
	t.event, t.eventName, t.eventData = d.bool(), nil, nil
	if t.event {
		t.eventName, t.eventData = d.raw(), d.raw()
	}
	t.outcome = raw[start:at()]
	t.valid = d.bool()
	t.signed, t.signature, t.endorsements = false, nil, t.endorsements[:0]
	if d.err == nil && len(d.buf) > 0 {
		t.signed = true
		t.signature = d.raw()
		for range d.count() {
			t.endorsements = append(t.endorsements, rawEndorsement{endorser: d.raw(), signature: d.raw()})
		}
	}
	return d.finish()
}

// txIndexEntry checks the transaction index entry of t, transaction i of
// block n.
func (v *verifier) txIndexEntry(n uint64, i uint32, t *txView) error {
	b, err := v.r.Get(txKey(string(t.id)), nil)
	if errors.Is(err, leveldb.ErrNotFound) {
		return &TamperError{Block: n, Reason: fmt.Sprintf("transaction %s missing from the index", t.id)}
	}
	if err != nil {
		return readError("read transaction index", err)
	}
	loc, err := decodeTxLocation(b)
	if err != nil || loc.block != n || loc.txNum != i || loc.timestamp.UnixNano() != t.timestamp || loc.valid != t.valid {
		return &TamperError{Block: n, Reason: fmt.Sprintf("transaction index entry of %s does not match the block", t.id)}
	}
	return nil
}

// event checks the event index at transaction i of block n against t's
// event; the index is walked in step with the blocks.
func (v *verifier) event(n uint64, i uint32, t *txView) error {
	want := eventKey(n, i)
	if v.eventsOK && bytes.Compare(v.events.Key(), want) < 0 {
		b, _, ok := splitEventKey(v.events.Key())
		if !ok {
			b = n
		}
		return &TamperError{Block: b, Reason: "the event index holds an event no transaction of the chain set"}
	}
	indexed := v.eventsOK && bytes.Equal(v.events.Key(), want)
	if indexed {
		e := encoder{buf: v.scratch[:0]}
		e.bytes(t.id)
		e.bytes(t.eventName)
		e.bytes(t.eventData)
		v.scratch = e.buf
	}
	if indexed != t.event || (indexed && !equalBytes(v.events.Value(), v.scratch)) {
		return &TamperError{Block: n, Reason: fmt.Sprintf("event index of transaction %s does not match the block", t.id)}
	}
	if indexed {
		v.eventsOK = v.events.Next()
		if err := v.events.Error(); err != nil {
			return readError("read event index", err)
		}
	}
	return nil
}

// replay applies the writes of the valid transaction at ver.
func (v *verifier) replay(ver Version, writes []rawWrite) {
	for _, w := range writes {
		ks := v.state[string(w.key)]
		if ks == nil {
			ks = &keyState{deleted: true}
			v.state[string(w.key)] = ks
		}
		switch {
		case ks.deleted && !w.del:
			v.live++
		case !ks.deleted && w.del:
			v.live--
		}
		ks.last, ks.deleted = ver, w.del
		if !w.del {
			ks.value = sha256.Sum256(w.value)
		}
		ks.history = chainHistory(ks.history, ver, w.del)
		ks.writes++
		v.rep.HistoryEntries++
	}
}

// txIndex checks that the transaction index holds no entry beyond those
// of the chain's transactions (each of which blocks checked).
func (v *verifier) txIndex() error {
	it := v.r.NewIterator(util.BytesPrefix([]byte{prefixTx}), nil)
	defer it.Release()
	var n uint64
	for it.Next() {
		n++
	}
	if err := it.Error(); err != nil {
		return readError("read transaction index", err)
	}
	if n == v.rep.Transactions {
		return nil
	}
	// Find the entry no transaction matches, to name its block.
	for it.First(); it.Valid(); it.Next() {
		loc, err := decodeTxLocation(it.Value())
		if err != nil {
			return fmt.Errorf("%w: the transaction index holds a malformed entry", ErrCorrupt)
		}
		raw, err := v.r.Get(blockTxKey(loc.block, loc.txNum), nil)
		if errors.Is(err, leveldb.ErrNotFound) || (err == nil && !bytes.HasPrefix(raw, txIDField(it.Key()[1:]))) {
			return &TamperError{Block: loc.block, Reason: "the transaction index holds an entry no transaction of the chain matches"}
		}
		if err != nil {
			return readError("read transaction", err)
		}
	}
	return fmt.Errorf("%w: the transaction index holds %d entries for %d transactions", ErrCorrupt, n, v.rep.Transactions)
}

// txIDField is how an encoded transaction starts: its length-prefixed ID.
func txIDField(txID []byte) []byte {
	var e encoder
	e.bytes(txID)
	return e.buf
}

// currentState checks that current state is exactly what the chain's
// write sets leave: every live key, with the version and value of its
// last write, and no other key.
func (v *verifier) currentState() error {
	it := v.r.NewIterator(util.BytesPrefix([]byte{prefixState}), nil)
	defer it.Release()
	live := 0
	for it.Next() {
		if live%4096 == 0 {
			if err := v.ctx.Err(); err != nil {
				return err
			}
		}
		key, val := it.Key()[1:], it.Value()
		ks := v.state[string(key)]
		if ks == nil || ks.deleted {
			te := &TamperError{ObjectType: objectType(key), Reason: "current state holds a key no transaction of the chain wrote"}
			if ks != nil {
				te.Block, te.Reason = ks.last.Block, fmt.Sprintf("current state holds a key the chain deleted in transaction %d/%d", ks.last.Block, ks.last.Tx)
			} else if len(val) >= versionLen {
				ver, _ := splitStateValue(val)
				te.Block = ver.Block
			}
			return te
		}
		if len(val) < versionLen {
			return &TamperError{Block: ks.last.Block, ObjectType: objectType(key), Reason: "the state record is malformed"}
		}
		ver, value := splitStateValue(val)
		if ver != ks.last {
			return &TamperError{Block: ks.last.Block, ObjectType: objectType(key), Reason: fmt.Sprintf("the state record names transaction %d/%d, the chain last wrote the key in %d/%d", ver.Block, ver.Tx, ks.last.Block, ks.last.Tx)}
		}
		if sha256.Sum256(value) != ks.value {
			return &TamperError{Block: ks.last.Block, ObjectType: objectType(key), Reason: fmt.Sprintf("the current value differs from the value transaction %d/%d wrote", ks.last.Block, ks.last.Tx)}
		}
		ks.inState = true
		live++
	}
	if err := it.Error(); err != nil {
		return readError("read current state", err)
	}
	if live != v.live {
		key, ks := v.firstMissing(func(ks *keyState) bool { return !ks.deleted && !ks.inState })
		return &TamperError{Block: ks.last.Block, ObjectType: objectType([]byte(key)), Reason: fmt.Sprintf("current state misses the key transaction %d/%d wrote", ks.last.Block, ks.last.Tx)}
	}
	v.rep.Keys = uint64(live)
	return nil
}

// firstMissing returns the key, among those missing selects, written last
// by the earliest transaction.
func (v *verifier) firstMissing(missing func(*keyState) bool) (string, *keyState) {
	var key string
	var found *keyState
	for k, ks := range v.state {
		if !missing(ks) {
			continue
		}
		if found == nil || ks.last.Block < found.last.Block || (ks.last.Block == found.last.Block && (ks.last.Tx < found.last.Tx || (ks.last.Tx == found.last.Tx && k < key))) {
			key, found = k, ks
		}
	}
	return key, found
}

// history checks that the history index lists, for every key the chain
// wrote, exactly its writes: same transactions, same deletions, in order.
func (v *verifier) history() error {
	it := v.r.NewIterator(util.BytesPrefix([]byte{prefixHistory}), nil)
	defer it.Release()
	var (
		cur     *keyState
		curKey  []byte
		chain   [sha256.Size]byte
		entries uint32
		keys    int
		n       uint64
	)
	finish := func() error {
		if cur == nil {
			return nil
		}
		if entries != cur.writes || chain != cur.history {
			return &TamperError{Block: cur.last.Block, ObjectType: objectType(curKey), Reason: "the key's history index differs from the chain's writes of the key"}
		}
		cur.inHistory = true
		keys++
		return nil
	}
	for it.Next() {
		if n++; n%4096 == 0 {
			if err := v.ctx.Err(); err != nil {
				return err
			}
		}
		key, ver, ok := splitHistoryKey(it.Key())
		val := it.Value()
		if !ok || len(val) != 1 || val[0] > historyDelete {
			return fmt.Errorf("%w: the history index holds a malformed entry", ErrCorrupt)
		}
		if cur == nil || !bytes.Equal(key, curKey) {
			if err := finish(); err != nil {
				return err
			}
			cur = v.state[string(key)]
			if cur == nil {
				return &TamperError{Block: ver.Block, ObjectType: objectType(key), Reason: "the history index holds entries of a key no transaction of the chain wrote"}
			}
			if cur.inHistory {
				return &TamperError{Block: ver.Block, ObjectType: objectType(key), Reason: "the key's history entries are out of order"}
			}
			curKey, chain, entries = append(curKey[:0], key...), [sha256.Size]byte{}, 0
		}
		chain = chainHistory(chain, ver, val[0] == historyDelete)
		entries++
	}
	if err := it.Error(); err != nil {
		return readError("read history index", err)
	}
	if err := finish(); err != nil {
		return err
	}
	if keys != len(v.state) {
		key, ks := v.firstMissing(func(ks *keyState) bool { return !ks.inHistory })
		return &TamperError{Block: ks.last.Block, ObjectType: objectType([]byte(key)), Reason: "the history index misses the key's writes"}
	}
	return nil
}

// splitHistoryKey parses h || uvarint(len(key)) || key || block || tx.
func splitHistoryKey(k []byte) ([]byte, Version, bool) {
	if len(k) == 0 || k[0] != prefixHistory {
		return nil, Version{}, false
	}
	l, n := binary.Uvarint(k[1:])
	if n <= 0 || uint64(len(k)-1-n) != l+versionLen {
		return nil, Version{}, false
	}
	key := k[1+n : 1+n+int(l)]
	rest := k[1+n+int(l):]
	return key, Version{Block: binary.BigEndian.Uint64(rest), Tx: binary.BigEndian.Uint32(rest[8:])}, true
}

// otherRecords checks that the store holds no meta record but those this
// version writes and no record of any other kind.
func (v *verifier) otherRecords() error {
	known := map[string]bool{string(keyHeight): true, string(keyTip): true, string(keyFormat): true}
	if v.meta.format != legacyStoreFormat {
		known[string(keyWriteSetFrom)] = true
	}
	if v.meta.format == storeFormat {
		known[string(keySignedFrom)] = true
	}
	it := v.r.NewIterator(util.BytesPrefix([]byte{prefixMeta}), nil)
	for it.Next() {
		if !known[string(it.Key())] {
			it.Release()
			return fmt.Errorf("%w: the store holds an unknown meta record", ErrCorrupt)
		}
	}
	err := it.Error()
	it.Release()
	if err != nil {
		return readError("read meta records", err)
	}
	// The gaps between the record kinds, in key order: b e h m s t.
	for _, gap := range []util.Range{
		{Start: nil, Limit: []byte{prefixBlock}},
		{Start: []byte{prefixBlock + 1}, Limit: []byte{prefixEvent}},
		{Start: []byte{prefixEvent + 1}, Limit: []byte{prefixHistory}},
		{Start: []byte{prefixHistory + 1}, Limit: []byte{prefixMeta}},
		{Start: []byte{prefixMeta + 1}, Limit: []byte{prefixState}},
		{Start: []byte{prefixState + 1}, Limit: []byte{prefixTx}},
		{Start: []byte{prefixTx + 1}, Limit: nil},
	} {
		it := v.r.NewIterator(&gap, nil)
		found := it.First()
		err := it.Error()
		it.Release()
		if err != nil {
			return readError("read store", err)
		}
		if found {
			return fmt.Errorf("%w: the store holds a record of an unknown kind", ErrCorrupt)
		}
	}
	return nil
}

// objectType names a state key for a report without its attributes: the
// object type of a composite key, else "simple".
func objectType(key []byte) string {
	if len(key) == 0 || key[0] != 0 {
		return "simple"
	}
	i := bytes.IndexByte(key[1:], 0)
	if i <= 0 || i > 64 {
		return "composite"
	}
	t := string(key[1 : 1+i])
	if strings.IndexFunc(t, func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r) && r != '_' && r != '-' && r != '.'
	}) >= 0 {
		return "composite"
	}
	return t
}
