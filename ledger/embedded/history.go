package embedded

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/hyperledger/fabric-chaincode-go/v2/shim"
	"github.com/hyperledger/fabric-protos-go-apiv2/ledger/queryresult"
	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/iterator"
	"github.com/syndtr/goleveldb/leveldb/util"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// The history index holds pointers, as Fabric's history database does: the
// key names the key and the transaction that modified it (block, tx), the
// value only whether it was a deletion. The value, transaction ID and time
// are read from the stored transaction when the history is iterated, so
// every value is stored once, in its block.
const (
	historyWrite  byte = 0
	historyDelete byte = 1
)

func historyPointer(isDelete bool) []byte {
	if isDelete {
		return []byte{historyDelete}
	}
	return []byte{historyWrite}
}

// GetHistoryForKey implements shim.ChaincodeStubInterface: committed
// modifications of key, newest first, read as the iterator advances. As on
// Fabric, history reads are not validated at commit.
func (s *stub) GetHistoryForKey(key string) (shim.HistoryQueryIteratorInterface, error) {
	if err := validKey(key); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(); err != nil {
		return nil, err
	}
	hi := &historyIterator{s: s, key: key, prefixLen: len(historyPrefix(key))}
	if s.v.block != nil {
		// Executed inside the committer: earlier transactions of the block
		// being built come first.
		pending := s.v.block.history[key]
		for i := len(pending) - 1; i >= 0; i-- {
			hi.pending = append(hi.pending, pending[i])
		}
	}
	hi.it = s.v.snap.NewIterator(util.BytesPrefix(historyPrefix(key)), nil)
	s.releases = append(s.releases, hi.it.Release)
	hi.ok = hi.it.Last()
	hi.checkIterator()
	return hi, nil
}

// historyIterator yields the pending block's modifications of a key, then
// the committed ones, each resolved from its stored transaction in Next.
type historyIterator struct {
	s         *stub
	key       string
	prefixLen int
	pending   []pendingModification // newest first
	it        iterator.Iterator     // committed pointers, walked backwards
	ok        bool                  // it is on an entry
	count     int
	closed    bool
}

// pendingModification is a modification by a transaction of the block the
// committer is building.
type pendingModification struct {
	txID     string
	ts       time.Time
	isDelete bool
	value    []byte
}

func (m pendingModification) keyModification() *queryresult.KeyModification {
	return &queryresult.KeyModification{TxId: m.txID, Value: bytes.Clone(m.value), Timestamp: timestamppb.New(m.ts), IsDelete: m.isDelete}
}

// checkIterator fails the transaction if the store iterator stopped on an
// error, which HasNext cannot report. Callers hold s.mu.
func (it *historyIterator) checkIterator() {
	if !it.ok {
		if err := it.it.Error(); err != nil && it.s.failed == nil {
			it.s.failed = fmt.Errorf("history of %q: %w", it.key, err)
		}
	}
}

// HasNext implements shim.HistoryQueryIteratorInterface.
func (it *historyIterator) HasNext() bool {
	it.s.mu.Lock()
	defer it.s.mu.Unlock()
	return !it.closed && !it.s.done && it.count < totalQueryLimit && (len(it.pending) > 0 || it.ok)
}

// Next implements shim.HistoryQueryIteratorInterface.
func (it *historyIterator) Next() (*queryresult.KeyModification, error) {
	it.s.mu.Lock()
	defer it.s.mu.Unlock()
	if err := it.s.check(); err != nil {
		return nil, err
	}
	if it.closed || it.count >= totalQueryLimit || (len(it.pending) == 0 && !it.ok) {
		return nil, errors.New("no such key")
	}
	it.count++
	if len(it.pending) > 0 {
		m := it.pending[0]
		it.pending = it.pending[1:]
		return m.keyModification(), nil
	}
	k, v := it.it.Key(), it.it.Value()
	if len(k) != it.prefixLen+12 || len(v) != 1 || v[0] > historyDelete {
		return nil, fmt.Errorf("history of %q: %w: entry %x", it.key, errCorrupt, k)
	}
	ver := Version{Block: binary.BigEndian.Uint64(k[it.prefixLen:]), Tx: binary.BigEndian.Uint32(k[it.prefixLen+8:])}
	m, err := resolveModification(it.s.v.snap, it.key, ver, v[0] == historyDelete)
	if err != nil {
		return nil, fmt.Errorf("history of %q: %w", it.key, err)
	}
	it.ok = it.it.Prev()
	it.checkIterator()
	return m, nil
}

// Close implements shim.HistoryQueryIteratorInterface.
func (it *historyIterator) Close() error {
	it.s.mu.Lock()
	defer it.s.mu.Unlock()
	it.closed = true
	return nil
}

// resolveModification reads the modification of key by the transaction at
// ver from the stored block.
func resolveModification(r reader, key string, ver Version, isDelete bool) (*queryresult.KeyModification, error) {
	raw, err := r.Get(blockTxKey(ver.Block, ver.Tx), nil)
	if errors.Is(err, leveldb.ErrNotFound) {
		return nil, fmt.Errorf("%w: transaction %d/%d of the history index is not stored", errCorrupt, ver.Block, ver.Tx)
	}
	if err != nil {
		return nil, fmt.Errorf("read transaction %d/%d: %w", ver.Block, ver.Tx, err)
	}
	txID, ts, w, err := findWrite(raw, key)
	if err != nil {
		return nil, fmt.Errorf("transaction %d/%d: %w", ver.Block, ver.Tx, err)
	}
	if w.Delete != isDelete {
		return nil, fmt.Errorf("%w: transaction %d/%d: history index and write set disagree on deleting %q", errCorrupt, ver.Block, ver.Tx, key)
	}
	return &queryresult.KeyModification{TxId: txID, Value: w.Value, Timestamp: timestamppb.New(ts), IsDelete: w.Delete}, nil
}

// skipToWrites skips, in an encoded transaction (see Transaction.encode)
// read up to its timestamp, the creator, function, arguments, reads and
// range reads, leaving d at the count of writes.
func (d *decoder) skipToWrites() {
	d.skip()              // creator
	d.skip()              // function
	for range d.count() { // args
		d.skip()
	}
	d.skipReads()
}

// skipReads skips the reads and range reads of an encoded transaction.
func (d *decoder) skipReads() {
	for range d.count() { // reads: key, exists, block, tx
		d.skip()
		d.take(1+8+4, "read version")
	}
	for range d.count() { // range reads: start, end, exhausted, count, hash
		d.skip()
		d.skip()
		d.take(1+4, "range read")
		d.skip()
	}
}

// findWrite scans an encoded transaction (see Transaction.encode) for its
// write of key, without decoding the rest.
func findWrite(raw []byte, key string) (string, time.Time, KeyWrite, error) {
	d := decoder{buf: raw}
	txID := d.string()
	ts := time.Unix(0, int64(d.uint64()))
	d.skipToWrites()
	for range d.count() { // writes: key, delete, value
		k := d.raw()
		del := d.bool()
		v := d.raw()
		if d.err == nil && string(k) == key {
			w := KeyWrite{Key: key, Delete: del}
			if len(v) > 0 {
				w.Value = bytes.Clone(v)
			}
			return txID, ts, w, nil
		}
	}
	if d.err != nil {
		return "", time.Time{}, KeyWrite{}, d.err
	}
	return "", time.Time{}, KeyWrite{}, fmt.Errorf("%w: no write of %q in the write set the history index points to", errCorrupt, key)
}
