package ingest

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
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
}

// Outcome is the final result of one record.
type Outcome struct {
	RecordID uint64
	State    State // StateRecorded or StateRejected
	TxID     string
	Block    uint64
	Code     wire.Code // refusal code when rejected
	Message  string
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
}

var (
	bucketPending = []byte("pending")
	bucketSeen    = []byte("seen")
	bucketMeta    = []byte("meta")
	keyNextID     = []byte("next-id")
)

// Queue is the durable ingest queue. It is safe for concurrent use.
type Queue struct {
	db      *bolt.DB
	cfg     QueueConfig
	reqs    chan *appendReq
	mu      sync.Mutex
	pending int
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
	if err := os.MkdirAll(filepath.Dir(cfg.Path), 0o700); err != nil {
		return nil, nil, fmt.Errorf("create queue directory: %w", err)
	}
	db, err := bolt.Open(cfg.Path, 0o600, &bolt.Options{Timeout: 5 * time.Second, FreelistType: bolt.FreelistMapType})
	if err != nil {
		return nil, nil, fmt.Errorf("open queue %s: %w", cfg.Path, err)
	}
	var recs []Record
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketPending, bucketSeen, bucketMeta} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketPending).ForEach(func(_, v []byte) error {
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
	q := &Queue{db: db, cfg: cfg, reqs: make(chan *appendReq, cfg.MaxGroup), pending: len(recs), done: make(chan struct{})}
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
		pend, seen, meta := tx.Bucket(bucketPending), tx.Bucket(bucketSeen), tx.Bucket(bucketMeta)
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
				if err := pend.Put(idKey(rec.ID), b); err != nil {
					return err
				}
				if err := seen.Put(sk, encodeSeen(Seen{State: StatePending, DataHash: rec.Item.DataHash})); err != nil {
					return err
				}
			}
		}
		return meta.Put(keyNextID, idKey(next))
	})
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
// are ignored.
func (q *Queue) Done(ctx context.Context, recs []Record, outs []Outcome) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(recs) != len(outs) {
		return fmt.Errorf("queue done: %d outcomes for %d records", len(outs), len(recs))
	}
	removed := 0
	err := q.db.Update(func(tx *bolt.Tx) error {
		pend, seen := tx.Bucket(bucketPending), tx.Bucket(bucketSeen)
		removed = 0
		for i, o := range outs {
			k := idKey(recs[i].ID)
			if pend.Get(k) == nil {
				continue
			}
			if err := pend.Delete(k); err != nil {
				return err
			}
			removed++
			it := recs[i].Item
			sk := seenKey(it.DeviceID, it.Seq)
			if o.State != StateRecorded {
				// A refused reading never reached the ledger: its seq is
				// free again, and a retry is judged afresh.
				if err := seen.Delete(sk); err != nil {
					return err
				}
				continue
			}
			if err := seen.Put(sk, encodeSeen(Seen{State: StateRecorded, DataHash: it.DataHash})); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("queue done: %w", err)
	}
	q.release(removed)
	return nil
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

func encodeSeen(s Seen) []byte {
	return append([]byte{byte(s.State)}, s.DataHash...)
}

func decodeSeen(v []byte, s *Seen) error {
	if len(v) < 1 {
		return errors.New("corrupt seen entry")
	}
	s.State = State(v[0])
	s.DataHash = string(v[1:])
	return nil
}
