package embedded

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"strings"
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
	height uint64
	tip    []byte
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
	if m.format != storeFormat && m.format != legacyStoreFormat {
		return chainMeta{}, fmt.Errorf("%w: store format %q, this version reads %q (and upgrades %q)", ErrStoreFormat, format, storeFormat, legacyStoreFormat)
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
	ws, err := r.Get(keyWriteSetFrom, nil)
	switch {
	case m.format == legacyStoreFormat && errors.Is(err, leveldb.ErrNotFound):
		m.wsFrom = m.height
	case m.format == legacyStoreFormat && err == nil:
		return chainMeta{}, fmt.Errorf("%w: a store of format %s holds a write-set marker", ErrCorrupt, legacyStoreFormat)
	case errors.Is(err, leveldb.ErrNotFound):
		return chainMeta{}, fmt.Errorf("%w: the write-set marker is missing", ErrCorrupt)
	case err != nil:
		return chainMeta{}, readError("read write-set marker", err)
	case len(ws) != 8 || beUint64(ws) > m.height:
		return chainMeta{}, fmt.Errorf("%w: the write-set marker is malformed", ErrCorrupt)
	default:
		m.wsFrom = beUint64(ws)
	}
	return m, nil
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
// header h: the data hash, that every transaction parses (into txs, whose
// buffers it reuses), and from block wsFrom on the write-set hash. It reads
// the transactions in place: a full Verify reads every byte of the chain,
// and copying it all into decoded transactions would cost more than
// checking it.
func checkContents(n uint64, h BlockHeader, raw [][]byte, wsFrom uint64, txs *[]txView) error {
	if !equalBytes(h.DataHash, dataHash(raw)) {
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
		if t.valid {
			th.begin(len(t.writes))
			for _, w := range t.writes {
				hashWrite(&th, w.key, w.del, w.value)
			}
			ws.add(uint32(i), th.sum())
		}
	}
	switch {
	case n < wsFrom && h.WriteSetHash != nil:
		return &TamperError{Block: n, Reason: "header carries a write-set hash, but the block predates them"}
	case n < wsFrom:
	case len(h.WriteSetHash) != sha256.Size:
		return &TamperError{Block: n, Reason: "header carries no write-set hash"}
	case !equalBytes(h.WriteSetHash, ws.sum()):
		return &TamperError{Block: n, Reason: "write-set hash does not match the block's writes"}
	}
	return nil
}

// quickCheck is the check New runs before it opens a ledger: no block
// beyond the recorded height, the recorded tip is the hash of the last
// block's header, and the last blocks link to one another and match their
// data and write-set hashes.
func quickCheck(r reader, m chainMeta) error {
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
	expect, read := m.tip, 0
	var txs []txView
	for n := m.height; n > 0; {
		n--
		h, raw, found, err := loadBlock(r, n)
		switch {
		case errors.Is(err, errCorrupt):
			return &TamperError{Block: n, Reason: err.Error()}
		case err != nil:
			return blockReadError(n, err)
		case !found:
			return &TamperError{Block: n, Reason: "block missing"}
		}
		if !equalBytes(h.Hash(), expect) {
			if n == m.height-1 {
				return &TamperError{Block: n, Reason: "header hash differs from the recorded chain tip"}
			}
			return &TamperError{Block: n, Reason: fmt.Sprintf("header hash differs from the previous-header hash recorded in block %d", n+1)}
		}
		if h.Number != n {
			return &TamperError{Block: n, Reason: fmt.Sprintf("header says block %d", h.Number)}
		}
		if err := checkContents(n, h, raw, m.wsFrom, &txs); err != nil {
			return err
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
// store, so that a store that lost its last blocks is reported too. It
// opens the store read-only, never writes to dir, and fails if another
// process has the ledger open. A nil error means every record of the
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
	rep, err = verifyStore(ctx, db)
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
// store against it; see Ledger.Verify.
func verifyStore(ctx context.Context, r reader) (Report, error) {
	m, err := readMeta(r)
	if err != nil {
		return Report{}, err
	}
	v := &verifier{ctx: ctx, r: r, meta: m, state: make(map[string]*keyState)}
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

	// Buffers reused from block to block: the block's transactions
	// (copied from the store into arena), views into them, scratch.
	arena   []byte
	offsets []int
	raw     [][]byte
	txs     []txView
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
		h, count, err := decodeHeaderRecord(it.Value())
		if err != nil {
			return &TamperError{Block: n, Reason: err.Error()}
		}
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
		if err := v.block(n, h, raw, prev); err != nil {
			return err
		}
		prev = h.Hash()
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

// block checks block n, whose predecessor's header hash is prev, its
// transactions' index and event entries, and replays its writes.
func (v *verifier) block(n uint64, h BlockHeader, raw [][]byte, prev []byte) error {
	switch {
	case h.Number != n:
		return &TamperError{Block: n, Reason: fmt.Sprintf("header says block %d", h.Number)}
	case n == 0 && len(h.PreviousHash) != 0:
		return &TamperError{Block: 0, Reason: "the genesis block names a previous block"}
	case n > 0 && !equalBytes(h.PreviousHash, prev):
		return &TamperError{Block: n - 1, Reason: fmt.Sprintf("header hash differs from the previous-header hash recorded in block %d", n)}
	}
	if err := checkContents(n, h, raw, v.meta.wsFrom, &v.txs); err != nil {
		return err
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
	writes    []rawWrite
	event     bool
	eventName []byte
	eventData []byte
	valid     bool
}

// rawWrite is one write of a txView.
type rawWrite struct {
	key, value []byte
	del        bool
}

// walkTransaction reads into t (reusing its slices) what the verifier
// needs of an encoded transaction (see Transaction.encode), checking that
// the whole encoding parses as decodeTransaction would.
func walkTransaction(raw []byte, t *txView) error {
	d := decoder{buf: raw}
	t.id = d.raw()
	t.timestamp = int64(d.uint64())
	d.skipToWrites()
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
	t.valid = d.bool()
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
	if v.meta.format == storeFormat {
		known[string(keyWriteSetFrom)] = true
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
