package embedded

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/hyperledger/fabric-chaincode-go/v2/shim"
	"github.com/syndtr/goleveldb/leveldb/opt"

	"github.com/medprov/medprov/ledger"
)

// commitRequest hands a transaction to the committer. sim is nil when the
// committer must execute the proposal itself (after repeated conflicts).
type commitRequest struct {
	ctx  context.Context
	prop *proposal
	sim  *simulation
	done chan commitResult
}

// size estimates the bytes r adds to a block.
func (r *commitRequest) size() int {
	n := 0
	for _, a := range r.prop.args {
		n += len(a)
	}
	if r.sim != nil {
		for _, w := range r.sim.writes {
			n += len(w.Key) + len(w.Value)
		}
		n += len(r.sim.response.Payload)
	}
	return n
}

type commitResult struct {
	commit   *ledger.Commit
	conflict bool
	err      error
}

// commitLoop is the single committer: it takes every request waiting, turns
// the valid ones into one block and answers each request.
func (l *Ledger) commitLoop() {
	defer close(l.stopped)
	for {
		var batch []*commitRequest
		select {
		case r := <-l.queue:
			batch = append(batch, r)
		case <-l.closing:
			return
		}
		bytes := batch[0].size()
	more:
		for len(batch) < maxBlockTxs && bytes < maxBlockBytes {
			select {
			case r := <-l.queue:
				batch = append(batch, r)
				bytes += r.size()
			default:
				break more
			}
		}
		l.commitBatch(batch)
	}
}

func (l *Ledger) commitBatch(batch []*commitRequest) {
	results := make([]commitResult, len(batch))
	num := l.height.Load()
	tip, included, err := l.buildBlock(batch, num, results)
	switch {
	case err != nil:
		l.log.Error("block commit failed", "block", num, "error", err)
		for i := range results {
			if results[i].err == nil {
				results[i] = commitResult{err: fmt.Errorf("commit block %d: %w: %w", num, ledger.ErrUnavailable, err)}
			}
		}
	case len(included) > 0:
		l.tip = tip
		l.height.Store(num + 1)
		if err := l.anchor.record(num+1, tip); err != nil {
			// The block is durable; only the check for lost blocks at the
			// next start is weaker (it compares with an older tip).
			l.log.Error("chain anchor not updated", "block", num, "error", err)
		}
		l.mu.Lock()
		close(l.newBlock)
		l.newBlock = make(chan struct{})
		l.mu.Unlock()
		l.log.Debug("block committed", "block", num, "txs", len(included))
	}
	for i, r := range batch {
		r.done <- results[i]
	}
}

// buildBlock validates (or executes) each request of batch in order, and
// writes the valid ones as block num with one synced batch. It fills in
// results and returns the new tip and the indexes of the committed
// requests (none if no request was valid: nothing is written).
func (l *Ledger) buildBlock(batch []*commitRequest, num uint64, results []commitResult) ([]byte, []int, error) {
	l.store.RLock()
	defer l.store.RUnlock()
	snap, err := l.db.GetSnapshot()
	if err != nil {
		return nil, nil, err
	}
	defer snap.Release()
	pb := newPendingBlock(num)
	v := &view{snap: snap, block: pb}
	var included []int
	for i, r := range batch {
		if err := r.ctx.Err(); err != nil {
			results[i].err = fmt.Errorf("transaction %s not committed: %w", r.prop.txID, err)
			continue
		}
		sim := r.sim
		if sim == nil {
			s, err := l.execute(r.ctx, r.prop, v)
			if err != nil {
				results[i].err = err
				continue
			}
			if s.response.Status >= shim.ERRORTHRESHOLD {
				results[i].err = refused(r.prop.txID, s.response)
				continue
			}
			if err := l.endorse(r.prop, s); err != nil {
				results[i].err = err
				continue
			}
			sim = s
		} else {
			ok, err := validate(v, sim, l.recent)
			if err != nil {
				return nil, nil, err
			}
			if !ok {
				results[i].conflict = true
				continue
			}
		}
		ts := r.prop.timestamp.AsTime()
		if err := pb.apply(r.prop, ts, sim); err != nil {
			return nil, nil, err
		}
		results[i].commit = &ledger.Commit{TxID: r.prop.txID, Block: num, Timestamp: ts, Payload: sim.response.Payload}
		included = append(included, i)
	}
	if len(included) == 0 {
		return nil, nil, nil
	}
	h := BlockHeader{Number: num, PreviousHash: l.tip, DataHash: dataHash(pb.txs), WriteSetHash: pb.writeSet.sum()}
	tip := h.Hash()
	seal, err := l.seal(tip, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("block %d: %w", num, err)
	}
	putBlock(pb.batch, h, pb.txs, seal)
	pb.batch.Put(keyTip, tip)
	pb.batch.Put(keyHeight, be64(num+1))
	if err := l.db.Write(pb.batch, &opt.WriteOptions{Sync: true}); err != nil {
		for _, i := range included {
			results[i].commit = nil
		}
		return nil, nil, fmt.Errorf("write block %d: %w", num, err)
	}
	l.recent.add(num, pb.keys)
	return tip, included, nil
}

// seal has the orderer sign a block whose header hashes to headerHash
// (the SHA-256 of the header's encoding); config is the encoded
// configuration a genesis block holds, nil for other blocks.
func (l *Ledger) seal(headerHash, config []byte) (*blockSeal, error) {
	o := l.msp.orderer
	sig, err := sign(o.Key, headerHash)
	if err != nil {
		return nil, fmt.Errorf("orderer signature: %w", err)
	}
	return &blockSeal{signer: o.Serialized, signature: sig, config: config}, nil
}

// validate reports whether everything sim read is still current in v
// (committed state plus the writes of earlier transactions of this block).
func validate(v *view, sim *simulation, recent *recentWrites) (bool, error) {
	// The window answers for committed blocks; the block being built is
	// asked directly.
	fast := recent != nil && sim.snapHeight > 0 && recent.covers(sim.snapHeight)
	for _, r := range sim.reads {
		if fast && !recent.writtenSince(r.Key, sim.snapHeight) && !v.block.wrote(r.Key) {
			continue
		}
		val, err := v.getState(r.Key)
		if err != nil {
			return false, err
		}
		if (val != nil) != r.Exists {
			return false, nil
		}
		if val != nil {
			if ver, _ := splitStateValue(val); ver != r.Version {
				return false, nil
			}
		}
	}
	for _, rr := range sim.ranges {
		ok, err := validateRange(v, rr)
		if err != nil || !ok {
			return false, err
		}
	}
	return true, nil
}

// validateRange reports whether a range query would still return the keys
// and versions rr recorded: no key changed, appeared or disappeared
// (phantom reads) in the part of the range the transaction saw.
func validateRange(v *view, rr *rangeRecord) (bool, error) {
	if !rr.exhausted && len(rr.keys) == 0 {
		return true, nil
	}
	end := rr.end
	if !rr.exhausted {
		// Keys after the last one seen were never observed.
		end = rr.keys[len(rr.keys)-1] + "\x00"
	}
	it := v.stateIterator(rr.start, end)
	defer it.release()
	i := 0
	for it.next() {
		ver, _ := splitStateValue(it.value)
		if i >= len(rr.keys) || rr.keys[i] != string(it.key) || rr.versions[i] != ver {
			return false, nil
		}
		i++
	}
	if err := it.err(); err != nil {
		return false, err
	}
	return i == len(rr.keys), nil
}

// apply takes sim's write set, history, indexes and event into the block
// as its next transaction.
func (pb *pendingBlock) apply(p *proposal, ts time.Time, sim *simulation) error {
	txNum := uint32(len(pb.txs))
	ver := Version{Block: pb.num, Tx: txNum}
	for _, w := range sim.writes {
		k := stateKey(w.Key)
		var sv []byte // empty marks a deletion in pb.state
		if w.Delete {
			pb.batch.Delete(k)
		} else {
			sv = stateValue(ver, w.Value)
			pb.batch.Put(k, sv)
		}
		if err := pb.state.Put(k, sv); err != nil {
			return fmt.Errorf("write %q: %w", w.Key, err)
		}
		pb.keys = append(pb.keys, w.Key)
		pb.batch.Put(historyKey(w.Key, ver), historyPointer(w.Delete))
		pb.history[w.Key] = append(pb.history[w.Key], pendingModification{txID: p.txID, ts: ts, isDelete: w.Delete, value: w.Value})
	}
	pb.batch.Put(txKey(p.txID), txLocation(pb.num, txNum, ts, true))
	if ev := sim.event; ev != nil {
		pb.batch.Put(eventKey(pb.num, txNum), encodeEvent(p.txID, ev))
	}
	t := Transaction{
		TxID:      p.txID,
		Timestamp: ts,
		Creator:   p.creator,
		Function:  p.function,
		Args:      p.params,
		Writes:    sim.writes,
		Reads:     sim.reads,
		Response:  sim.response,
		Event:     sim.event,
		Valid:     true,
		Signature: p.signature,
	}
	if len(sim.endorsement.Signature) > 0 {
		t.Endorsements = []Endorsement{sim.endorsement}
	}
	for _, rr := range sim.ranges {
		t.RangeReads = append(t.RangeReads, rr.summary())
	}
	pb.txs = append(pb.txs, t.encode())
	pb.writeSet.add(txNum, sim.writeSetHash)
	return nil
}

func be64(n uint64) []byte        { return binary.BigEndian.AppendUint64(nil, n) }
func beUint64(b []byte) uint64    { return binary.BigEndian.Uint64(b) }
func equalBytes(a, b []byte) bool { return bytes.Equal(a, b) }

// State values are stored as version (block, tx) followed by the value.
const versionLen = 12

func stateValue(v Version, value []byte) []byte {
	b := make([]byte, versionLen, versionLen+len(value))
	binary.BigEndian.PutUint64(b, v.Block)
	binary.BigEndian.PutUint32(b[8:], v.Tx)
	return append(b, value...)
}

func splitStateValue(b []byte) (Version, []byte) {
	if len(b) < versionLen {
		return Version{}, nil
	}
	return Version{Block: binary.BigEndian.Uint64(b), Tx: binary.BigEndian.Uint32(b[8:])}, b[versionLen:]
}

type txLoc struct {
	block     uint64
	txNum     uint32
	timestamp time.Time
	valid     bool
}

func txLocation(block uint64, txNum uint32, ts time.Time, valid bool) []byte {
	var e encoder
	e.uint64(block)
	e.uint32(txNum)
	e.uint64(uint64(ts.UnixNano()))
	e.bool(valid)
	return e.buf
}

func decodeTxLocation(b []byte) (txLoc, error) {
	d := decoder{buf: b}
	loc := txLoc{block: d.uint64(), txNum: d.uint32(), timestamp: time.Unix(0, int64(d.uint64())).UTC(), valid: d.bool()}
	return loc, d.finish()
}

func encodeEvent(txID string, ev *ChaincodeEvent) []byte {
	var e encoder
	e.string(txID)
	e.string(ev.Name)
	e.bytes(ev.Payload)
	return e.buf
}
