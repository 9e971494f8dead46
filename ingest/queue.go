package ingest

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/medprov/medprov/wire"
)

var (
	// ErrQueueFull reports that the queue holds its maximum of pending
	// records; callers answer with pushback (429/503 and Retry-After).
	ErrQueueFull = errors.New("ingest queue full")
	// ErrClosed reports use of a closed queue.
	ErrClosed = errors.New("ingest queue closed")
	// ErrConflict reports a (deviceId, seq) already taken by a reading with
	// a different hash.
	ErrConflict = errors.New("reading sequence number already used with different content")
)

// Record is a queued item with its queue position.
type Record struct {
	// ID is the record's position in the queue, unique and increasing.
	ID         uint64            `json:"id"`
	Item       wire.ReadingInput `json:"item"`
	PatientID  string            `json:"patientId"`
	EnqueuedAt time.Time         `json:"enqueuedAt"`
}

// State is what the queue knows of a (deviceId, seq).
type State uint8

// States of a reading known to the queue.
const (
	StateUnknown  State = iota // never seen by this queue
	StatePending               // acknowledged, not yet on the ledger
	StateRecorded              // on the ledger
	StateRejected              // refused by the chaincode (an outcome only; never remembered)
)

// String returns the state's wire name.
func (s State) String() string {
	switch s {
	case StatePending:
		return wire.StatusQueued
	case StateRecorded:
		return wire.StatusRecorded
	case StateRejected:
		return wire.StatusRejected
	default:
		return "unknown"
	}
}

// Seen is the queue's memory of one reading.
type Seen struct {
	State    State
	DataHash string
	// Block is the ledger block that recorded the reading (StateRecorded),
	// or 0 when the queue does not know it: the reading was found already
	// recorded by an earlier transaction, or it was recorded before the
	// queue kept blocks.
	Block uint64

	// bound, when Block is 0, is a block the reading was recorded in or
	// before (the block of the transaction that answered "exists").
	bound uint64
}

// Outcome is the final result of one record.
type Outcome struct {
	RecordID uint64
	State    State // StateRecorded or StateRejected
	TxID     string
	Block    uint64
	Code     wire.Code // refusal code when rejected
	Message  string

	// batchBlock is the block of the transaction that reported this
	// outcome. For a reading recorded by an earlier transaction (TxID
	// names it, Block is 0) it bounds the block that holds the reading.
	batchBlock uint64
}

// QueueConfig configures Open.
type QueueConfig struct {
	// Path is the queue's database file; its directory is created 0700.
	Path string
	// MaxPending bounds the records acknowledged but not yet done;
	// Append beyond it fails with ErrQueueFull. Default 100000.
	MaxPending int
	// MaxGroup bounds how many appends share one fsync. Default 4096.
	MaxGroup int
	// RetainFor and RetainMax bound the retention of recorded readings:
	// the whole record of a reading done as recorded stays on disk,
	// indexed by its block, until it is older than RetainFor or RetainMax
	// newer ones are retained, so that a reading the ledger later turns
	// out not to hold can be resubmitted (see Reconciliation).
	// Defaults 24h and 1,000,000, whichever is reached first. A ledger
	// that lost the tail of its journal is behind by a few blocks; one
	// restored from last night's backup by up to a day, which the count
	// covers up to about 11 readings/s. A retained reading keeps the
	// record written when it was appended: about 0.7 KB of the queue
	// file, so the count caps the retention at about 0.7 GB. Raise
	// RetainMax with the ingest rate and the disk.
	RetainFor time.Duration
	RetainMax int
	// Now is the queue's clock for retention. Default time.Now.
	Now func() time.Time
}

var (
	// bucketRecords holds each record (ID → JSON) from Append until it is
	// done as rejected or pruned from the retention; the records not in
	// bucketRecent are the pending ones. (The name is from before the
	// retention, when it held pending records only; such a queue opens
	// as it is.)
	bucketRecords = []byte("pending")
	bucketSeen    = []byte("seen")
	bucketMeta    = []byte("meta")
	// bucketRecent indexes the retained records: block(8) ‖ record ID(8)
	// → done time (8, Unix ns). Keys run in block order, so pruning from
	// the first key drops the oldest.
	bucketRecent = []byte("recent")
	// bucketRecentBlocks holds, for each block of the retained readings
	// whose block is known, one transaction in it: block(8) → tx ID.
	bucketRecentBlocks = []byte("recent-blocks")
	keyNextID          = []byte("next-id")
	// keyRecentCount is the number of entries in bucketRecent.
	keyRecentCount = []byte("recent-count")
	// keyHighWater is the highest block (with one of its transactions)
	// that recorded a reading of this queue: block(8) ‖ tx ID. Never
	// pruned, so a ledger behind it is noticed after any idle time.
	keyHighWater = []byte("high-water")
)

// appendFill is how full bbolt fills a page before splitting it in the
// buckets whose keys mostly grow (records by ID, the retention by block):
// its default of one half would leave them half empty.
const appendFill = 0.9

// Queue is the durable ingest queue. It is safe for concurrent use.
type Queue struct {
	db      *bolt.DB
	cfg     QueueConfig
	reqs    chan *appendReq
	mu      sync.Mutex
	pending int
	open    map[uint64]struct{} // IDs of the records not yet done
	closed  bool
	done    chan struct{}
	wg      sync.WaitGroup
}

type appendReq struct {
	recs   []Record
	result []error
	err    error
	done   chan struct{}
}

// OpenQueue opens (or creates) the queue at cfg.Path and returns it with
// every record that was acknowledged but not yet done, in queue order.
func OpenQueue(ctx context.Context, cfg QueueConfig) (*Queue, []Record, error) {
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = 100000
	}
	if cfg.MaxGroup <= 0 {
		cfg.MaxGroup = 4096
	}
	if cfg.RetainFor <= 0 {
		cfg.RetainFor = 24 * time.Hour
	}
	if cfg.RetainMax <= 0 {
		cfg.RetainMax = 1_000_000
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if err := os.MkdirAll(filepath.Dir(cfg.Path), 0o700); err != nil {
		return nil, nil, fmt.Errorf("create queue directory: %w", err)
	}
	db, err := bolt.Open(cfg.Path, 0o600, &bolt.Options{Timeout: 5 * time.Second, FreelistType: bolt.FreelistMapType})
	if err != nil {
		return nil, nil, fmt.Errorf("open queue %s: %w", cfg.Path, err)
	}
	var recs []Record
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketRecords, bucketSeen, bucketMeta, bucketRecent, bucketRecentBlocks} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		// Pending records are those not retained: walk both in ID order.
		var done []uint64
		if err := tx.Bucket(bucketRecent).ForEach(func(k, _ []byte) error {
			done = append(done, binary.BigEndian.Uint64(k[8:]))
			return nil
		}); err != nil {
			return err
		}
		slices.Sort(done)
		return tx.Bucket(bucketRecords).ForEach(func(k, v []byte) error {
			id := binary.BigEndian.Uint64(k)
			for len(done) > 0 && done[0] < id {
				done = done[1:]
			}
			if len(done) > 0 && done[0] == id {
				return nil
			}
			var r Record
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("decode pending record: %w", err)
			}
			recs = append(recs, r)
			return nil
		})
	})
	if err != nil {
		return nil, nil, errors.Join(fmt.Errorf("load queue: %w", err), db.Close())
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, errors.Join(err, db.Close())
	}
	q := &Queue{db: db, cfg: cfg, reqs: make(chan *appendReq, cfg.MaxGroup), pending: len(recs), open: make(map[uint64]struct{}, len(recs)), done: make(chan struct{})}
	for _, r := range recs {
		q.open[r.ID] = struct{}{}
	}
	q.wg.Add(1)
	go q.commitLoop()
	return q, recs, nil
}

// Pending returns the number of records acknowledged and not yet done.
func (q *Queue) Pending() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.pending
}

// Lookup reports what the queue knows of (deviceID, seq).
func (q *Queue) Lookup(deviceID string, seq uint64) (Seen, error) {
	var s Seen
	err := q.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketSeen).Get(seenKey(deviceID, seq))
		if v == nil {
			return nil
		}
		return decodeSeen(v, &s)
	})
	if err != nil {
		return Seen{}, fmt.Errorf("queue lookup: %w", err)
	}
	return s, nil
}

// Append durably enqueues recs, assigning their IDs. It returns only after
// the records are on disk (fsynced), sharing the fsync with concurrent
// appends. The returned slice has one error per record: nil when enqueued
// (the record's ID is then set), ErrConflict when its (deviceId, seq) holds
// another hash, or a *DuplicateError when the identical reading is already
// known. The second result reports a failure of the whole append
// (ErrQueueFull, ErrClosed, I/O); then nothing was enqueued.
func (q *Queue) Append(ctx context.Context, recs []Record) ([]error, error) {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return nil, ErrClosed
	}
	if q.pending+len(recs) > q.cfg.MaxPending {
		q.mu.Unlock()
		return nil, ErrQueueFull
	}
	q.pending += len(recs) // reserve; released below for records not enqueued
	q.mu.Unlock()
	req := &appendReq{recs: recs, done: make(chan struct{})}
	select {
	case q.reqs <- req:
	case <-q.done:
		q.release(len(recs))
		return nil, ErrClosed
	case <-ctx.Done():
		q.release(len(recs))
		return nil, ctx.Err()
	}
	// The commit loop always answers an accepted request, even when ctx ends:
	// a record written to disk must be reported so the caller can ack it.
	<-req.done
	if req.err != nil {
		q.release(len(recs))
		return nil, req.err
	}
	n := 0
	for _, e := range req.result {
		if e != nil {
			n++
		}
	}
	q.release(n)
	return req.result, nil
}

func (q *Queue) release(n int) {
	q.mu.Lock()
	q.pending -= n
	q.mu.Unlock()
}

// DuplicateError reports that an identical reading is already known.
type DuplicateError struct{ Seen Seen }

// Error implements error.
func (e *DuplicateError) Error() string { return "reading already " + e.Seen.State.String() }

func (q *Queue) commitLoop() {
	defer q.wg.Done()
	for {
		var first *appendReq
		select {
		case first = <-q.reqs:
		case <-q.done:
			q.drainClosed()
			return
		}
		group := []*appendReq{first}
		n := len(first.recs)
	collect:
		for n < q.cfg.MaxGroup {
			select {
			case r := <-q.reqs:
				group = append(group, r)
				n += len(r.recs)
			default:
				break collect
			}
		}
		q.commitGroup(group)
	}
}

func (q *Queue) drainClosed() {
	for {
		select {
		case r := <-q.reqs:
			r.err = ErrClosed
			close(r.done)
		default:
			return
		}
	}
}

func (q *Queue) commitGroup(group []*appendReq) {
	for _, r := range group {
		r.result = make([]error, len(r.recs))
	}
	err := q.db.Update(func(tx *bolt.Tx) error {
		records, seen, meta := tx.Bucket(bucketRecords), tx.Bucket(bucketSeen), tx.Bucket(bucketMeta)
		records.FillPercent = appendFill
		next := uint64(1)
		if v := meta.Get(keyNextID); v != nil {
			next = binary.BigEndian.Uint64(v)
		}
		for _, r := range group {
			for i := range r.recs {
				rec := &r.recs[i]
				sk := seenKey(rec.Item.DeviceID, rec.Item.Seq)
				if v := seen.Get(sk); v != nil {
					var s Seen
					if err := decodeSeen(v, &s); err != nil {
						return err
					}
					if s.DataHash == rec.Item.DataHash {
						r.result[i] = &DuplicateError{Seen: s}
					} else {
						r.result[i] = ErrConflict
					}
					continue
				}
				rec.ID = next
				next++
				b, err := json.Marshal(rec)
				if err != nil {
					return fmt.Errorf("encode record: %w", err)
				}
				if err := records.Put(idKey(rec.ID), b); err != nil {
					return err
				}
				if err := seen.Put(sk, encodeSeen(Seen{State: StatePending, DataHash: rec.Item.DataHash})); err != nil {
					return err
				}
			}
		}
		return meta.Put(keyNextID, idKey(next))
	})
	if err == nil {
		q.mu.Lock()
		for _, r := range group {
			for i, e := range r.result {
				if e == nil {
					q.open[r.recs[i].ID] = struct{}{}
				}
			}
		}
		q.mu.Unlock()
	}
	for _, r := range group {
		if err != nil {
			r.err = fmt.Errorf("queue append: %w", err)
			for i := range r.recs {
				r.recs[i].ID = 0
			}
		}
		close(r.done)
	}
}

// Done records the outcomes of finished records and removes them from the
// pending set: outs[i] is the outcome of recs[i]. Records no longer pending
// are ignored. A record done as recorded is retained, with its transaction
// and block, within the bounds of QueueConfig.RetainFor and RetainMax.
func (q *Queue) Done(ctx context.Context, recs []Record, outs []Outcome) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(recs) != len(outs) {
		return fmt.Errorf("queue done: %d outcomes for %d records", len(outs), len(recs))
	}
	now := q.cfg.Now()
	// Claim the records still pending; they are given back if the write
	// fails.
	mine := make([]bool, len(recs))
	removed := 0
	q.mu.Lock()
	for i, r := range recs {
		if _, ok := q.open[r.ID]; ok {
			delete(q.open, r.ID)
			mine[i] = true
			removed++
		}
	}
	q.mu.Unlock()
	if removed == 0 {
		return nil
	}
	err := q.db.Update(func(tx *bolt.Tx) error {
		records, seen, meta := tx.Bucket(bucketRecords), tx.Bucket(bucketSeen), tx.Bucket(bucketMeta)
		recent, blocks := tx.Bucket(bucketRecent), tx.Bucket(bucketRecentBlocks)
		recent.FillPercent = appendFill
		hw, err := decodeHighWater(meta.Get(keyHighWater))
		if err != nil {
			return err
		}
		doneAt := binary.BigEndian.AppendUint64(nil, uint64(now.UnixNano()))
		top, added, lastBlock := hw, 0, uint64(0)
		for i, o := range outs {
			if !mine[i] {
				continue
			}
			k := idKey(recs[i].ID)
			it := recs[i].Item
			sk := seenKey(it.DeviceID, it.Seq)
			if o.State != StateRecorded {
				// A refused reading never reached the ledger: its seq is
				// free again, and a retry is judged afresh.
				if err := records.Delete(k); err != nil {
					return err
				}
				if err := seen.Delete(sk); err != nil {
					return err
				}
				continue
			}
			// The record stays where Append wrote it; the retention only
			// indexes it, under its block (or a bound of it).
			bound := o.Block
			if bound == 0 {
				bound = o.batchBlock
			}
			if bound == 0 {
				bound = hw.block
			}
			if err := seen.Put(sk, encodeSeen(Seen{State: StateRecorded, DataHash: it.DataHash, Block: o.Block, bound: bound})); err != nil {
				return err
			}
			if err := recent.Put(recentKey(bound, recs[i].ID), doneAt); err != nil {
				return err
			}
			added++
			if o.Block == 0 || o.TxID == "" {
				continue
			}
			if o.Block != lastBlock {
				lastBlock = o.Block
				if err := blocks.Put(idKey(o.Block), []byte(o.TxID)); err != nil {
					return err
				}
			}
			if o.Block >= top.block {
				top = highWater{block: o.Block, txID: o.TxID}
			}
		}
		if top != hw {
			if err := meta.Put(keyHighWater, encodeHighWater(top)); err != nil {
				return err
			}
		}
		if added == 0 {
			return nil
		}
		return q.pruneRecent(tx, added, now)
	})
	if err != nil {
		q.mu.Lock()
		for i, r := range recs {
			if mine[i] {
				q.open[r.ID] = struct{}{}
			}
		}
		q.mu.Unlock()
		return fmt.Errorf("queue done: %w", err)
	}
	q.release(removed)
	return nil
}

// pruneRecent drops the oldest retained readings beyond RetainMax or older
// than RetainFor, and the block probes below the oldest one kept. added
// entries were just put into the retention.
func (q *Queue) pruneRecent(tx *bolt.Tx, added int, now time.Time) error {
	records, meta, recent, blocks := tx.Bucket(bucketRecords), tx.Bucket(bucketMeta), tx.Bucket(bucketRecent), tx.Bucket(bucketRecentBlocks)
	n := int(decodeCount(meta.Get(keyRecentCount))) + added
	cutoff := now.Add(-q.cfg.RetainFor).UnixNano()
	c := recent.Cursor()
	pruned := false
	for {
		// First again after each Delete: a bbolt cursor may skip an entry
		// when moved on from a deleted one.
		k, v := c.First()
		if k == nil || (n <= q.cfg.RetainMax && recentDoneAt(v) >= cutoff) {
			break
		}
		if err := records.Delete(k[8:]); err != nil {
			return err
		}
		if err := c.Delete(); err != nil {
			return err
		}
		n--
		pruned = true
	}
	if pruned {
		first, _ := c.First()
		bc := blocks.Cursor()
		for k, _ := bc.First(); k != nil && (first == nil || binary.BigEndian.Uint64(k) < binary.BigEndian.Uint64(first[:8])); k, _ = bc.First() {
			if err := bc.Delete(); err != nil {
				return err
			}
		}
	}
	return meta.Put(keyRecentCount, idKey(uint64(n)))
}

// Close stops accepting appends, waits for the commit loop and closes the
// database. Records already acknowledged stay on disk for the next Open.
func (q *Queue) Close() error {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return nil
	}
	q.closed = true
	q.mu.Unlock()
	close(q.done)
	q.wg.Wait()
	return q.db.Close()
}

func idKey(id uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], id)
	return b[:]
}

func seenKey(deviceID string, seq uint64) []byte {
	k := make([]byte, 0, len(deviceID)+9)
	k = append(k, deviceID...)
	k = append(k, 0)
	return binary.BigEndian.AppendUint64(k, seq)
}

// A seen entry is state ‖ [block(8)] ‖ data hash; flag bits of the state
// byte say whether a block follows and whether it is exact or a bound.
const (
	seenBlockExact = 0x80
	seenBlockBound = 0x40
	seenStateMask  = 0x3f
)

func encodeSeen(s Seen) []byte {
	b := make([]byte, 0, 9+len(s.DataHash))
	switch {
	case s.Block != 0:
		b = binary.BigEndian.AppendUint64(append(b, byte(s.State)|seenBlockExact), s.Block)
	case s.bound != 0:
		b = binary.BigEndian.AppendUint64(append(b, byte(s.State)|seenBlockBound), s.bound)
	default:
		b = append(b, byte(s.State))
	}
	return append(b, s.DataHash...)
}

func decodeSeen(v []byte, s *Seen) error {
	if len(v) < 1 {
		return errors.New("corrupt seen entry")
	}
	*s = Seen{State: State(v[0] & seenStateMask)}
	rest := v[1:]
	if v[0]&(seenBlockExact|seenBlockBound) != 0 {
		if len(rest) < 8 {
			return errors.New("corrupt seen entry")
		}
		b := binary.BigEndian.Uint64(rest)
		if v[0]&seenBlockExact != 0 {
			s.Block = b
		}
		s.bound = b
		rest = rest[8:]
	}
	s.DataHash = string(rest)
	return nil
}

// recentKey orders retained readings by block, then by queue position.
func recentKey(block, recordID uint64) []byte {
	return binary.BigEndian.AppendUint64(idKey(block), recordID)
}

func recentDoneAt(v []byte) int64 {
	if len(v) != 8 {
		return 0 // corrupt: prune it first
	}
	return int64(binary.BigEndian.Uint64(v))
}

// highWater is the highest block known to hold a reading of this queue,
// with one transaction in it.
type highWater struct {
	block uint64
	txID  string
}

func encodeHighWater(h highWater) []byte {
	return append(idKey(h.block), h.txID...)
}

func decodeHighWater(v []byte) (highWater, error) {
	if v == nil {
		return highWater{}, nil
	}
	if len(v) < 8 {
		return highWater{}, errors.New("corrupt high-water mark")
	}
	return highWater{block: binary.BigEndian.Uint64(v), txID: string(v[8:])}, nil
}

func decodeCount(v []byte) uint64 {
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}
