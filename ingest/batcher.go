package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/medprov/medprov/ledger"
	"github.com/medprov/medprov/wire"
)

// BatchResult is the outcome of one RecordReadings transaction.
type BatchResult struct {
	TxID    string
	Block   uint64
	Results []wire.ItemResult // one per item, in order
}

// Recorder writes readings to the ledger.
//
// RecordReadings MUST submit items as one transaction and return after it
// committed, with one result per item in order. An error wrapping
// ledger.ErrUnavailable (or a context deadline) means the outcome is
// unknown and the batch will be retried; any other error means the whole
// transaction was refused and nothing was written.
type Recorder interface {
	RecordReadings(ctx context.Context, items []wire.ReadingInput) (*BatchResult, error)
}

// BatcherConfig tunes how the batcher cuts transactions.
type BatcherConfig struct {
	// MaxBatch is the most readings per transaction. Default 500.
	MaxBatch int
	// MaxWait is how long a reading may wait for its batch to fill.
	// Default 20ms.
	MaxWait time.Duration
	// InFlight is how many transactions may be outstanding. Default 4.
	InFlight int
	// MinBackoff and MaxBackoff bound the retry delay while the ledger is
	// unavailable. Defaults 100ms and 5s.
	MinBackoff, MaxBackoff time.Duration
}

// Batcher drains a Queue into RecordReadings transactions. It is safe for
// concurrent use.
type Batcher struct {
	q   *Queue
	rec Recorder
	cfg BatcherConfig
	obs Observer // may be nil
	log *slog.Logger

	mu       sync.Mutex
	buf      []Record
	oldest   time.Time
	watchers map[uint64]chan Outcome
	wake     chan struct{}
}

// NewBatcher returns a batcher for q that writes through rec and reports to
// obs (nil: no reports). Call Run to start it and Add to feed it.
func NewBatcher(q *Queue, rec Recorder, cfg BatcherConfig, obs Observer, log *slog.Logger) *Batcher {
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 500
	}
	if cfg.MaxWait <= 0 {
		cfg.MaxWait = 20 * time.Millisecond
	}
	if cfg.InFlight <= 0 {
		cfg.InFlight = 4
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 100 * time.Millisecond
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 5 * time.Second
	}
	if log == nil {
		log = slog.Default()
	}
	return &Batcher{q: q, rec: rec, cfg: cfg, obs: obs, log: log, watchers: map[uint64]chan Outcome{}, wake: make(chan struct{}, 1)}
}

// Add hands durably queued records to the batcher. If watch is true, it
// returns one channel per record that receives the record's outcome once.
func (b *Batcher) Add(recs []Record, watch bool) []<-chan Outcome {
	var chans []<-chan Outcome
	b.mu.Lock()
	if watch {
		chans = make([]<-chan Outcome, len(recs))
		for i, r := range recs {
			ch := make(chan Outcome, 1)
			b.watchers[r.ID] = ch
			chans[i] = ch
		}
	}
	if len(b.buf) == 0 {
		b.oldest = time.Now()
	}
	b.buf = append(b.buf, recs...)
	b.mu.Unlock()
	select {
	case b.wake <- struct{}{}:
	default:
	}
	return chans
}

// Unwatch drops the outcome channel of a record whose caller stopped waiting.
func (b *Batcher) Unwatch(id uint64) {
	b.mu.Lock()
	delete(b.watchers, id)
	b.mu.Unlock()
}

// Lag returns how long the oldest record waiting to be cut into a batch
// has waited, or zero when none waits. A growing lag means the ledger
// commits more slowly than readings arrive.
func (b *Batcher) Lag() time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.buf) == 0 {
		return 0
	}
	// The buffer is in queue order, so its head is the oldest record; a
	// cut resets b.oldest, which therefore only bounds records without an
	// enqueue time.
	if t := b.buf[0].EnqueuedAt; !t.IsZero() {
		return time.Since(t)
	}
	return time.Since(b.oldest)
}

// Buffered returns the number of records waiting to be cut into a batch.
func (b *Batcher) Buffered() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.buf)
}

// Run cuts and submits batches until ctx is done, then waits for the
// transactions in flight. Records not finished stay in the queue and are
// replayed after the next OpenQueue.
func (b *Batcher) Run(ctx context.Context) {
	slots := make(chan struct{}, b.cfg.InFlight)
	var wg sync.WaitGroup
	defer wg.Wait()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		batch, wait := b.cut()
		if batch == nil {
			if wait > 0 {
				timer.Reset(wait)
			} else {
				timer.Reset(time.Hour)
			}
			select {
			case <-ctx.Done():
				return
			case <-b.wake:
			case <-timer.C:
			}
			continue
		}
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			b.submit(ctx, batch)
		}()
	}
}

// cut returns the next batch, or nil and how long to wait for one.
func (b *Batcher) cut() ([]Record, time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.buf) == 0 {
		return nil, 0
	}
	if len(b.buf) < b.cfg.MaxBatch {
		if age := time.Since(b.oldest); age < b.cfg.MaxWait {
			return nil, b.cfg.MaxWait - age
		}
	}
	n := min(len(b.buf), b.cfg.MaxBatch)
	batch := make([]Record, n)
	copy(batch, b.buf)
	b.buf = append(b.buf[:0], b.buf[n:]...)
	b.oldest = time.Now()
	return batch, 0
}

func (b *Batcher) submit(ctx context.Context, batch []Record) {
	items := make([]wire.ReadingInput, len(batch))
	for i, r := range batch {
		items[i] = r.Item
	}
	backoff := b.cfg.MinBackoff
	for {
		start := time.Now()
		res, err := b.rec.RecordReadings(ctx, items)
		if b.obs != nil {
			b.obs.Transaction(len(items), time.Since(start), err)
		}
		switch {
		case err == nil && len(res.Results) == len(items):
			b.finish(ctx, batch, res)
			return
		case err == nil:
			err = errors.New("ledger returned a result count that does not match the batch")
		case ctx.Err() != nil:
			return // shutting down: the records stay queued for replay
		case !transient(err):
			b.refused(ctx, batch, err)
			return
		}
		b.log.Warn("recording readings failed; will retry", "size", len(items), "backoff", backoff, "err", loggable(err))
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, b.cfg.MaxBackoff)
	}
}

// refused handles a transaction the ledger refused as a whole. A batch of
// more than one is split so that one bad item cannot hold back the rest; a
// single refused item is finished as rejected.
func (b *Batcher) refused(ctx context.Context, batch []Record, err error) {
	if len(batch) > 1 {
		b.log.Warn("batch refused as a whole; splitting", "size", len(batch), "err", loggable(err))
		half := len(batch) / 2
		b.submit(ctx, batch[:half])
		b.submit(ctx, batch[half:])
		return
	}
	b.log.Warn("reading refused", "err", loggable(err))
	code, msg := wire.CodeInvalid, "refused by the ledger"
	var ce *ledger.ChaincodeError
	if errors.As(err, &ce) {
		if cc, ok := wire.ParseError(ce.Message); ok {
			code, msg = cc.Code, cc.Message
		}
	}
	b.finish(ctx, batch, &BatchResult{Results: []wire.ItemResult{{Status: wire.StatusRejected, Code: code, Error: msg}}})
}

func (b *Batcher) finish(ctx context.Context, batch []Record, res *BatchResult) {
	outs := make([]Outcome, len(batch))
	for i, r := range batch {
		ir := res.Results[i]
		o := Outcome{RecordID: r.ID, TxID: res.TxID, Block: res.Block, batchBlock: res.Block}
		switch ir.Status {
		case wire.StatusRecorded:
			o.State = StateRecorded
		case wire.StatusExists:
			o.State = StateRecorded
			if ir.TxID != "" && ir.TxID != res.TxID {
				o.TxID, o.Block = ir.TxID, 0 // recorded by an earlier transaction
			}
		default:
			o.State, o.Code, o.Message = StateRejected, ir.Code, ir.Error
		}
		outs[i] = o
	}
	// Marking done must not be lost to shutdown: the ledger already holds
	// the outcome, so use a context that outlives ctx briefly.
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := b.q.Done(dctx, batch, outs); err != nil {
		// The records stay pending and are replayed after a restart; the
		// chaincode answers "exists" for them, so nothing is doubled.
		b.log.Error("marking readings done failed", "size", len(outs), "err", loggable(err))
	}
	if b.obs != nil {
		b.obs.Finished(outs)
	}
	b.mu.Lock()
	for _, o := range outs {
		if ch, ok := b.watchers[o.RecordID]; ok {
			ch <- o
			delete(b.watchers, o.RecordID)
		}
	}
	b.mu.Unlock()
}

// transient reports whether a failed RecordReadings may succeed later.
// Only a refusal the chaincode itself made (it carries the chaincode's
// error marker) is final; anything else — the ledger unreachable, an
// endorsement that failed because a chaincode server or peer is down, an
// MVCC conflict — is retried, because the readings were acknowledged and
// must not be dropped.
func transient(err error) bool {
	var ce *ledger.ChaincodeError
	if errors.As(err, &ce) {
		_, judged := wire.ParseError(ce.Message)
		return !judged
	}
	return errors.Is(err, ledger.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded)
}

// loggable is what the log may say of err: a chaincode's answer names
// pseudonymous IDs (devices, readings), so of those only the refusal code
// is kept; transport and storage errors carry none and stay as they are.
func loggable(err error) string {
	var ce *ledger.ChaincodeError
	if errors.As(err, &ce) {
		if r, ok := wire.ParseError(ce.Message); ok {
			return "chaincode refused: " + string(r.Code)
		}
		return fmt.Sprintf("chaincode error (status %d)", ce.Status)
	}
	return err.Error()
}
