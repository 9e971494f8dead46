package embedded

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/hyperledger/fabric-chaincode-go/v2/shim"
	"github.com/hyperledger/fabric-protos-go-apiv2/ledger/queryresult"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/types/known/timestamppb"

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

// errNoBlock rolls back a block in which no transaction was valid.
var errNoBlock = errors.New("no valid transaction")

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
	sims := make([]*simulation, len(batch))
	num := l.height.Load()
	var (
		tip      []byte
		included []int
		events   bool
	)
	err := l.db.Update(func(btx *bolt.Tx) error {
		included = included[:0]
		events = false
		for i := range results {
			results[i] = commitResult{}
		}
		var encoded [][]byte
		for i, r := range batch {
			if err := r.ctx.Err(); err != nil {
				results[i].err = fmt.Errorf("transaction %s not committed: %w", r.prop.txID, err)
				continue
			}
			sim := r.sim
			if sim == nil {
				s, err := l.execute(r.ctx, r.prop, btx)
				if err != nil {
					results[i].err = err
					continue
				}
				if s.response.Status >= shim.ERRORTHRESHOLD {
					results[i].err = refused(r.prop.txID, s.response)
					continue
				}
				sim = s
			} else {
				ok, err := validate(btx, sim)
				if err != nil {
					return err
				}
				if !ok {
					results[i].conflict = true
					continue
				}
			}
			sims[i] = sim
			txNum := uint32(len(included))
			ts := r.prop.timestamp.AsTime()
			if err := apply(btx, num, txNum, r.prop, ts, sim); err != nil {
				return err
			}
			t := Transaction{
				TxID:      r.prop.txID,
				Timestamp: ts,
				Creator:   r.prop.creator,
				Writes:    sim.writes,
				Reads:     sim.reads,
				Response:  sim.response,
				Event:     sim.event,
				Valid:     true,
			}
			fn, args := splitArgs(r.prop.args)
			t.Function, t.Args = fn, args
			for _, rr := range sim.ranges {
				t.RangeReads = append(t.RangeReads, rr.summary())
			}
			encoded = append(encoded, t.encode())
			events = events || sim.event != nil
			included = append(included, i)
		}
		if len(included) == 0 {
			return errNoBlock
		}
		h := BlockHeader{Number: num, PreviousHash: l.tip, DataHash: dataHash(encoded)}
		if err := btx.Bucket(bucketBlocks).Put(be64(num), encodeBlock(h, encoded)); err != nil {
			return fmt.Errorf("store block %d: %w", num, err)
		}
		tip = h.Hash()
		meta := btx.Bucket(bucketMeta)
		if err := meta.Put(keyTip, tip); err != nil {
			return err
		}
		return meta.Put(keyHeight, be64(num+1))
	})
	switch {
	case errors.Is(err, errNoBlock):
	case err != nil:
		l.log.Error("block commit failed", "block", num, "error", err)
		for i := range results {
			if results[i].err == nil {
				results[i] = commitResult{err: fmt.Errorf("commit block %d: %w: %w", num, ledger.ErrUnavailable, err)}
			}
		}
	default:
		l.tip = tip
		l.height.Store(num + 1)
		for _, i := range included {
			p := batch[i].prop
			results[i].commit = &ledger.Commit{TxID: p.txID, Block: num, Timestamp: p.timestamp.AsTime(), Payload: sims[i].response.Payload}
		}
		l.mu.Lock()
		close(l.newBlock)
		l.newBlock = make(chan struct{})
		l.mu.Unlock()
		l.log.Debug("block committed", "block", num, "txs", len(included), "events", events)
	}
	for i, r := range batch {
		r.done <- results[i]
	}
}

func splitArgs(args [][]byte) (string, []string) {
	if len(args) == 0 {
		return "", nil
	}
	out := make([]string, 0, len(args)-1)
	for _, a := range args[1:] {
		out = append(out, string(a))
	}
	return string(args[0]), out
}

// validate reports whether everything sim read is still current in tx
// (committed state plus the writes of earlier transactions of this block).
func validate(tx *bolt.Tx, sim *simulation) (bool, error) {
	state := tx.Bucket(bucketState)
	for _, r := range sim.reads {
		v := state.Get([]byte(r.Key))
		if (v != nil) != r.Exists {
			return false, nil
		}
		if v != nil {
			if ver, _ := splitStateValue(v); ver != r.Version {
				return false, nil
			}
		}
	}
	for _, rr := range sim.ranges {
		if !rr.exhausted && len(rr.keys) == 0 {
			continue
		}
		last := ""
		if !rr.exhausted {
			last = rr.keys[len(rr.keys)-1]
		}
		i := 0
		c := state.Cursor()
		for k, v := c.Seek([]byte(rr.start)); k != nil; k, v = c.Next() {
			if rr.end != "" && string(k) >= rr.end {
				break
			}
			if !rr.exhausted && string(k) > last {
				break
			}
			ver, _ := splitStateValue(v)
			if i >= len(rr.keys) || rr.keys[i] != string(k) || rr.versions[i] != ver {
				return false, nil
			}
			i++
		}
		if i != len(rr.keys) {
			return false, nil
		}
	}
	return true, nil
}

// apply writes sim's write set, history and indexes as transaction txNum of
// block num.
func apply(tx *bolt.Tx, num uint64, txNum uint32, p *proposal, ts time.Time, sim *simulation) error {
	state := tx.Bucket(bucketState)
	history := tx.Bucket(bucketHistory)
	ver := Version{Block: num, Tx: txNum}
	for _, w := range sim.writes {
		var err error
		if w.Delete {
			err = state.Delete([]byte(w.Key))
		} else {
			err = state.Put([]byte(w.Key), stateValue(ver, w.Value))
		}
		if err != nil {
			return fmt.Errorf("write %q: %w", w.Key, err)
		}
		if err := history.Put(historyKey(w.Key, ver), historyValue(p.txID, ts, w)); err != nil {
			return fmt.Errorf("history %q: %w", w.Key, err)
		}
	}
	if err := tx.Bucket(bucketTxs).Put([]byte(p.txID), txLocation(num, txNum, ts, true)); err != nil {
		return fmt.Errorf("index transaction: %w", err)
	}
	if ev := sim.event; ev != nil {
		if err := tx.Bucket(bucketEvents).Put(eventKey(num, txNum), encodeEvent(p.txID, ev)); err != nil {
			return fmt.Errorf("index event: %w", err)
		}
	}
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

// History keys are uvarint(len(key)) || key || block || tx, so one key's
// modifications are contiguous and ordered by commit.
func historyPrefix(key string) []byte {
	b := binary.AppendUvarint(nil, uint64(len(key)))
	return append(b, key...)
}

func historyKey(key string, v Version) []byte {
	b := historyPrefix(key)
	b = binary.BigEndian.AppendUint64(b, v.Block)
	return binary.BigEndian.AppendUint32(b, v.Tx)
}

func historyValue(txID string, ts time.Time, w KeyWrite) []byte {
	e := encoder{buf: make([]byte, 0, len(txID)+len(w.Value)+24)}
	e.string(txID)
	e.uint64(uint64(ts.UnixNano()))
	e.bool(w.Delete)
	e.bytes(w.Value)
	return e.buf
}

func decodeHistoryValue(b []byte) (*queryresult.KeyModification, error) {
	d := decoder{buf: b}
	m := &queryresult.KeyModification{TxId: d.string()}
	m.Timestamp = timestamppb.New(time.Unix(0, int64(d.uint64())))
	m.IsDelete = d.bool()
	m.Value = d.bytes()
	return m, d.finish()
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

func eventKey(block uint64, txNum uint32) []byte {
	b := binary.BigEndian.AppendUint64(nil, block)
	return binary.BigEndian.AppendUint32(b, txNum)
}

func splitEventKey(k []byte) (uint64, uint32) {
	if len(k) != 12 {
		return 0, 0
	}
	return binary.BigEndian.Uint64(k), binary.BigEndian.Uint32(k[8:])
}

func encodeEvent(txID string, ev *ChaincodeEvent) []byte {
	var e encoder
	e.string(txID)
	e.string(ev.Name)
	e.bytes(ev.Payload)
	return e.buf
}
