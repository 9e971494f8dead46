package ingest

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/medprov/medprov/ledger"
	"github.com/medprov/medprov/wire"
)

// Reconciliation is the outcome of checking, when the pipeline opened,
// that the ledger still holds the readings the queue had seen recorded.
//
// What can be recovered: every reading the queue still retains (see
// QueueConfig.RetainFor and RetainMax) is kept whole — metadata, device
// signature, CID of its ciphertext, which stays in the blob store — so a
// retained reading the ledger lacks is queued again and resubmitted; the
// chaincode verifies the device signature afresh. What can only be
// reported: a reading no longer retained whose block the queue remembers
// (readings recorded since blocks are remembered) is named as lost, and
// its "recorded" memory is dropped so that the device may send it again.
// What cannot be known: readings recorded before the queue remembered
// blocks, and readings the ledger lost beyond the retention that were
// recorded by another gateway's transaction.
//
// The check trusts the ledger's chain to be a prefix of what it was: a
// ledger that holds the highest block the queue saw holds every block
// below it (the ledger verifies its chain when it opens).
type Reconciliation struct {
	// Done reports that the check finished; until then the counts are
	// zero.
	Done bool
	// Err is why the check could not be made; the pipeline then runs
	// without it.
	Err error
	// Checked is the number of recorded readings whose presence on the
	// ledger the check established or refuted: every retained one, and
	// those no longer retained that it had to look up.
	Checked int
	// Resubmitted readings were missing from the ledger and are queued
	// again; Recovered and Rejected count those whose new outcome is
	// known (recorded, or refused by the chaincode).
	Resubmitted, Recovered, Rejected int
	// Lost readings are missing from the ledger and no longer retained:
	// they cannot be resubmitted from this node.
	Lost int
	// ReportPath names the file, in the queue's directory (0600), that
	// lists every resubmitted, rejected and lost reading by ID. It is
	// empty when nothing was missing: reading IDs are pseudonymous, so
	// they go to this file and never to the log.
	ReportPath string
}

// Reconciled returns the reconciliation as it stands: check Done before
// trusting the counts.
func (p *Pipeline) Reconciled() Reconciliation {
	p.recMu.Lock()
	defer p.recMu.Unlock()
	return p.rec
}

// AwaitReconciled waits until the check has finished and every reading it
// resubmitted has its new outcome, or ctx is done, and returns the
// reconciliation as it then stands.
func (p *Pipeline) AwaitReconciled(ctx context.Context) (Reconciliation, error) {
	select {
	case <-p.settled:
		return p.Reconciled(), nil
	case <-ctx.Done():
		return p.Reconciled(), ctx.Err()
	}
}

// reconcileWorkers bounds the concurrent reading lookups of a check.
const reconcileWorkers = 8

// reconcile checks the queue's recorded readings against the ledger,
// queues the missing retained ones again and reports them, retrying while
// the ledger is unreachable. It returns when the check is done (or
// abandoned, or ctx ends); outcomes of resubmitted readings are followed
// by a goroutine of p.wg.
func (p *Pipeline) reconcile(ctx context.Context) {
	backoff := p.batcher.cfg.MinBackoff
	var pl *plan
	for {
		var err error
		pl, err = p.plan(ctx)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return
		}
		if !transient(err) {
			p.cfg.Logger.Error("could not check the ledger for the readings this queue recorded; they stay believed recorded", "err", err)
			p.finishCheck(Reconciliation{Done: true, Err: err}, nil)
			return
		}
		p.cfg.Logger.Warn("ledger unreachable while checking recorded readings; will retry", "backoff", backoff, "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, p.batcher.cfg.MaxBackoff)
	}
	r := Reconciliation{Done: true, Checked: pl.checked}
	if len(pl.resubmit) == 0 && len(pl.lost) == 0 {
		if pl.behind {
			if err := p.queue.settle(pl.height, pl.top); err != nil {
				r.Err = err
				p.cfg.Logger.Error("recording the reconciled ledger height failed", "err", err)
			}
		}
		p.cfg.Logger.Info("the ledger holds every reading this queue recorded", "checked", r.Checked)
		p.finishCheck(r, nil)
		return
	}
	// The report is written before the queue forgets anything: a lost
	// reading's ID must survive a crash in between. Without a report the
	// missing readings are still resubmitted, but nothing is forgotten,
	// so the next start finds the lost ones again.
	now := p.cfg.Now()
	path, rerr := writeReport(filepath.Dir(p.cfg.Queue.Path), now, pl)
	r.ReportPath = path
	recs, err := p.queue.requeue(pl.resubmit, now)
	if err == nil && rerr == nil {
		err = p.queue.forget(pl.lost)
	}
	if err == nil && rerr == nil {
		err = p.queue.settle(pl.height, pl.top)
	}
	if err = errors.Join(rerr, err); err != nil {
		r.Err = err
		p.cfg.Logger.Error("reconciling the ingest queue with the ledger failed", "err", err)
	}
	r.Resubmitted, r.Lost = len(recs), len(pl.lost)
	p.cfg.Logger.Error("the ledger does not hold readings this node had recorded",
		"resubmitted", r.Resubmitted, "lost", r.Lost, "checked", r.Checked, "report", path)
	p.finishCheck(r, recs)
}

// finishCheck publishes the check's result and, for resubmitted records,
// hands them to the batcher and follows their outcomes.
func (p *Pipeline) finishCheck(r Reconciliation, recs []Record) {
	p.recMu.Lock()
	p.rec = r
	p.recMu.Unlock()
	if len(recs) == 0 {
		close(p.settled)
		return
	}
	chans := p.batcher.Add(recs, true)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		p.follow(recs, chans)
	}()
}

// follow counts the outcomes of resubmitted records and adds the refused
// ones to the report.
func (p *Pipeline) follow(recs []Record, chans []<-chan Outcome) {
	for i, ch := range chans {
		var o Outcome
		select {
		case o = <-ch:
		case <-p.stop:
			return // still queued: replayed as ordinary pending records
		}
		p.recMu.Lock()
		path := p.rec.ReportPath
		if o.State == StateRecorded {
			p.rec.Recovered++
		} else {
			p.rec.Rejected++
		}
		p.recMu.Unlock()
		if o.State != StateRecorded && path != "" {
			if err := appendReport(path, fmt.Sprintf("rejected %s %s\n", recs[i].Item.ID(), o.Code)); err != nil {
				p.cfg.Logger.Error("writing the reconciliation report failed", "err", err)
			}
		}
	}
	r := p.Reconciled()
	if r.Rejected > 0 {
		p.cfg.Logger.Error("the ledger refused readings resubmitted after reconciliation", "rejected", r.Rejected, "recovered", r.Recovered, "report", r.ReportPath)
	} else {
		p.cfg.Logger.Info("readings resubmitted after reconciliation are on the ledger", "recovered", r.Recovered)
	}
	if r.ReportPath != "" {
		line := fmt.Sprintf("# settled %s: %d recovered, %d rejected\n", p.cfg.Now().UTC().Format(time.RFC3339), r.Recovered, r.Rejected)
		if err := appendReport(r.ReportPath, line); err != nil {
			p.cfg.Logger.Error("writing the reconciliation report failed", "err", err)
		}
	}
	close(p.settled)
}

// plan is what a check found; applying it changes only the queue.
type plan struct {
	checked int
	// behind reports that the ledger lacks the highest block the queue saw.
	behind bool
	// height is the highest block known to be intact; top, if set, is the
	// retained block probe there (nil: none, the high-water mark goes).
	height uint64
	top    *highWater
	// resubmit lists retained readings the ledger lacks; lost, readings
	// it lacks that are no longer retained.
	resubmit []missing
	lost     []missing
}

// missing is a reading the ledger does not hold.
type missing struct {
	key   []byte // its key in the recent or seen bucket
	id    string
	hash  string
	block uint64 // the block that had recorded it (or a bound); 0 unknown
}

// plan finds the readings the queue saw recorded that the ledger lacks. It
// reads the ledger and the queue and changes neither.
func (p *Pipeline) plan(ctx context.Context) (*plan, error) {
	hw, count, err := p.queue.recentState()
	if err != nil {
		return nil, err
	}
	pl := &plan{checked: count, height: hw.block, top: &hw}
	if hw.block == 0 {
		return pl, nil // nothing recorded with a known block
	}
	// Fast path: the ledger holds the highest block the queue saw, so it
	// holds every block below it.
	if ok, err := p.txIntact(ctx, hw); err != nil || ok {
		return pl, err
	}
	pl.behind = true
	probes, err := p.queue.blockProbes()
	if err != nil {
		return nil, err
	}
	n, err := intactPrefix(len(probes), func(i int) (bool, error) { return p.txIntact(ctx, probes[i]) })
	if err != nil {
		return nil, err
	}
	lostBeyond := n == 0
	if lostBeyond {
		// Even the oldest retained block is gone: find the ledger's
		// height among the blocks of the readings no longer retained.
		below := uint64(1<<64 - 1)
		if len(probes) > 0 {
			below = probes[0].block
		}
		rp, err := p.queue.seenProbes(below)
		if err != nil {
			return nil, err
		}
		m, err := intactPrefix(len(rp), func(i int) (bool, error) { return p.holds(ctx, rp[i]) })
		if err != nil {
			return nil, err
		}
		pl.height, pl.top = 0, nil
		if m > 0 {
			pl.height = rp[m-1].block
		}
	} else {
		pl.height, pl.top = probes[n-1].block, &probes[n-1]
	}

	var cands []missing
	if err := p.queue.scanRecent(pl.height+1, func(m missing) error { cands = append(cands, m); return nil }); err != nil {
		return nil, err
	}
	if pl.resubmit, err = p.absent(ctx, cands); err != nil {
		return nil, err
	}
	if !lostBeyond {
		return pl, nil
	}
	retainedIDs := make(map[string]bool, len(cands))
	for _, c := range cands {
		retainedIDs[c.id] = true
	}
	var old []missing
	err = p.queue.scanSeen(func(m missing) error {
		if m.block > pl.height && !retainedIDs[m.id] {
			old = append(old, m)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	pl.checked += len(old)
	pl.lost, err = p.absent(ctx, old)
	return pl, err
}

// intactPrefix returns how many of n ascending blocks are intact, given
// that the intact ones form a prefix; it asks intact O(log n) times.
func intactPrefix(n int, intact func(i int) (bool, error)) (int, error) {
	lo, hi := 0, n // [0, lo) intact, [hi, n) not
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		ok, err := intact(mid)
		if err != nil {
			return 0, err
		}
		if ok {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo, nil
}

// txIntact reports whether the ledger holds h's transaction, valid, in h's
// block.
func (p *Pipeline) txIntact(ctx context.Context, h highWater) (bool, error) {
	info, err := p.cfg.Ledger.Tx(ctx, h.txID)
	if errors.Is(err, ledger.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return info.Valid && info.Block == h.block, nil
}

// absent returns the readings of ms the ledger does not hold.
func (p *Pipeline) absent(ctx context.Context, ms []missing) ([]missing, error) {
	got, err := p.present(ctx, ms)
	if err != nil {
		return nil, err
	}
	var out []missing
	for i, ok := range got {
		if !ok {
			out = append(out, ms[i])
		}
	}
	return out, nil
}

// present reports, for each reading of ms, whether the ledger holds it
// with the same data hash; a few lookups run at once.
func (p *Pipeline) present(ctx context.Context, ms []missing) ([]bool, error) {
	out := make([]bool, len(ms))
	errs := make([]error, reconcileWorkers)
	var wg sync.WaitGroup
	next := make(chan int)
	for w := range reconcileWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if errs[w] != nil {
					continue
				}
				out[i], errs[w] = p.holds(ctx, ms[i])
			}
		}()
	}
	for i := range ms {
		next <- i
	}
	close(next)
	wg.Wait()
	return out, errors.Join(errs...)
}

func (p *Pipeline) holds(ctx context.Context, m missing) (bool, error) {
	raw, err := p.cfg.Ledger.Evaluate(ctx, ledger.Proposal{Function: wire.FnGetReading, Args: []string{m.id}})
	var ce *ledger.ChaincodeError
	if errors.As(err, &ce) {
		if cc, ok := wire.ParseError(ce.Message); ok && cc.Code == wire.CodeNotFound {
			return false, nil
		}
	}
	if err != nil {
		return false, fmt.Errorf("%s: %w", wire.FnGetReading, err)
	}
	var r wire.Reading
	if err := json.Unmarshal(raw, &r); err != nil {
		return false, fmt.Errorf("%s: decode: %w", wire.FnGetReading, err)
	}
	// Another reading under the same (device, seq) is not this one; its
	// resubmission will be refused and reported.
	return r.DataHash == m.hash, nil
}

// writeReport creates the reconciliation report in dir and returns its
// path.
func writeReport(dir string, now time.Time, pl *plan) (string, error) {
	// CreateTemp makes the file 0600 under a name no other report has.
	f, err := os.CreateTemp(dir, "reconcile-"+now.UTC().Format("20060102T150405Z")+"-*.txt")
	if err != nil {
		return "", fmt.Errorf("reconciliation report: %w", err)
	}
	path := f.Name()
	w := bufio.NewWriter(f)
	fmt.Fprintf(w, "# medprov ingest reconciliation, %s\n", now.UTC().Format(time.RFC3339))
	fmt.Fprintf(w, "# The ledger does not hold these readings, which this node had seen recorded.\n")
	fmt.Fprintf(w, "# Of the blocks this queue saw, the ledger holds those up to %d (0: none).\n", pl.height)
	fmt.Fprintf(w, "# resubmitted ID BLOCK: queued again from the retained record; a \"rejected ID CODE\" line follows if the ledger refuses it.\n")
	fmt.Fprintf(w, "# lost ID BLOCK: no longer retained, cannot be resubmitted from this node; recover it from the device or a backup.\n")
	for _, m := range pl.resubmit {
		fmt.Fprintf(w, "resubmitted %s %d\n", m.id, m.block)
	}
	for _, m := range pl.lost {
		fmt.Fprintf(w, "lost %s %d\n", m.id, m.block)
	}
	err = w.Flush()
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", errors.Join(fmt.Errorf("reconciliation report: %w", err), os.Remove(path))
	}
	return path, nil
}

func appendReport(path, line string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("reconciliation report: %w", err)
	}
	_, err = f.WriteString(line)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("reconciliation report: %w", err)
	}
	return nil
}

// scanChunk bounds the entries one read transaction of a scan visits, so a
// long scan never holds the database (appends wait for a remap while a
// read transaction is open).
const scanChunk = 4096

// recentState returns the high-water mark and the number of retained
// readings.
func (q *Queue) recentState() (highWater, int, error) {
	var hw highWater
	var n uint64
	err := q.db.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		var err error
		hw, err = decodeHighWater(meta.Get(keyHighWater))
		n = decodeCount(meta.Get(keyRecentCount))
		return err
	})
	if err != nil {
		return highWater{}, 0, fmt.Errorf("queue: %w", err)
	}
	return hw, int(n), nil
}

// blockProbes returns one transaction of each retained block, in block
// order.
func (q *Queue) blockProbes() ([]highWater, error) {
	var out []highWater
	err := q.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketRecentBlocks).ForEach(func(k, v []byte) error {
			out = append(out, highWater{block: binary.BigEndian.Uint64(k), txID: string(v)})
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	return out, nil
}

// seenProbes returns one recorded reading of each exactly known block
// below below, in block order.
func (q *Queue) seenProbes(below uint64) ([]missing, error) {
	byBlock := map[uint64]missing{}
	err := q.scanSeenEntries(func(k []byte, s Seen) error {
		if s.State == StateRecorded && s.Block != 0 && s.Block < below {
			if _, ok := byBlock[s.Block]; !ok {
				byBlock[s.Block] = seenMissing(k, s)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]missing, 0, len(byBlock))
	for _, m := range byBlock {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].block < out[j].block })
	return out, nil
}

// scanSeen calls fn for every reading the queue remembers as recorded with
// a block (exact or a bound).
func (q *Queue) scanSeen(fn func(missing) error) error {
	return q.scanSeenEntries(func(k []byte, s Seen) error {
		if s.State != StateRecorded || s.bound == 0 {
			return nil
		}
		return fn(seenMissing(k, s))
	})
}

func seenMissing(k []byte, s Seen) missing {
	dev, seq := string(k[:len(k)-9]), binary.BigEndian.Uint64(k[len(k)-8:])
	return missing{key: append([]byte(nil), k...), id: wire.ReadingID(dev, seq), hash: s.DataHash, block: s.bound}
}

func (q *Queue) scanSeenEntries(fn func(k []byte, s Seen) error) error {
	var from []byte
	for {
		var last []byte
		var n int
		err := q.db.View(func(tx *bolt.Tx) error {
			c := tx.Bucket(bucketSeen).Cursor()
			k, v := c.First()
			if from != nil {
				if k, v = c.Seek(from); k != nil && string(k) == string(from) {
					k, v = c.Next()
				}
			}
			for ; k != nil && n < scanChunk; k, v = c.Next() {
				if len(k) < 9 {
					return errors.New("corrupt seen key")
				}
				var s Seen
				if err := decodeSeen(v, &s); err != nil {
					return err
				}
				if err := fn(k, s); err != nil {
					return err
				}
				last, n = append(last[:0], k...), n+1
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("queue: %w", err)
		}
		if n < scanChunk {
			return nil
		}
		from = last
	}
}

// scanRecent calls fn for every retained reading kept under a block of
// fromBlock or above, in key order.
func (q *Queue) scanRecent(fromBlock uint64, fn func(missing) error) error {
	from := recentKey(fromBlock, 0)
	first := true
	for {
		var last []byte
		var n int
		err := q.db.View(func(tx *bolt.Tx) error {
			records := tx.Bucket(bucketRecords)
			c := tx.Bucket(bucketRecent).Cursor()
			k, _ := c.Seek(from)
			if !first && k != nil && string(k) == string(from) {
				k, _ = c.Next()
			}
			for ; k != nil && n < scanChunk; k, _ = c.Next() {
				rec, err := retainedRecord(records, k)
				if err != nil {
					return err
				}
				key := append([]byte(nil), k...)
				if err := fn(missing{key: key, id: rec.Item.ID(), hash: rec.Item.DataHash, block: binary.BigEndian.Uint64(k)}); err != nil {
					return err
				}
				last, n = key, n+1
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("queue: %w", err)
		}
		if n < scanChunk {
			return nil
		}
		from, first = last, false
	}
}

// requeue moves the retained readings at ms's keys back to the pending
// set, enqueued at now, and returns them. A reading whose memory changed
// meanwhile is dropped from the retention only.
func (q *Queue) requeue(ms []missing, now time.Time) ([]Record, error) {
	var out []Record
	for len(ms) > 0 {
		chunk := ms[:min(len(ms), scanChunk)]
		ms = ms[len(chunk):]
		var recs []Record
		err := q.db.Update(func(tx *bolt.Tx) error {
			records, seen, meta, recent := tx.Bucket(bucketRecords), tx.Bucket(bucketSeen), tx.Bucket(bucketMeta), tx.Bucket(bucketRecent)
			recs = recs[:0]
			count := decodeCount(meta.Get(keyRecentCount))
			for _, m := range chunk {
				if recent.Get(m.key) == nil {
					continue
				}
				rec, err := retainedRecord(records, m.key)
				if err != nil {
					return err
				}
				if err := recent.Delete(m.key); err != nil {
					return err
				}
				count--
				id := m.key[8:]
				it := rec.Item
				sk := seenKey(it.DeviceID, it.Seq)
				var s Seen
				if sv := seen.Get(sk); sv != nil {
					if err := decodeSeen(sv, &s); err != nil {
						return err
					}
				}
				if s.State != StateRecorded || s.DataHash != it.DataHash {
					if err := records.Delete(id); err != nil {
						return err
					}
					continue
				}
				// Out of the retention, the record is pending again under
				// its own ID, as written when it was first acknowledged.
				if err := seen.Put(sk, encodeSeen(Seen{State: StatePending, DataHash: it.DataHash})); err != nil {
					return err
				}
				rec.EnqueuedAt = now
				recs = append(recs, rec)
			}
			return meta.Put(keyRecentCount, idKey(count))
		})
		if err != nil {
			return out, fmt.Errorf("queue requeue: %w", err)
		}
		// Resubmissions must not be dropped, so they may take the pending
		// count beyond MaxPending; new appends then meet pushback.
		q.mu.Lock()
		q.pending += len(recs)
		for _, r := range recs {
			q.open[r.ID] = struct{}{}
		}
		q.mu.Unlock()
		out = append(out, recs...)
	}
	return out, nil
}

// forget drops the "recorded" memory of lost readings, so that a device
// may send them again.
func (q *Queue) forget(ms []missing) error {
	for len(ms) > 0 {
		chunk := ms[:min(len(ms), scanChunk)]
		ms = ms[len(chunk):]
		err := q.db.Update(func(tx *bolt.Tx) error {
			seen := tx.Bucket(bucketSeen)
			for _, m := range chunk {
				var s Seen
				v := seen.Get(m.key)
				if v == nil {
					continue
				}
				if err := decodeSeen(v, &s); err != nil {
					return err
				}
				if s.State == StateRecorded && s.DataHash == m.hash {
					if err := seen.Delete(m.key); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("queue forget: %w", err)
		}
	}
	return nil
}

// settle records the outcome of a check: blocks above height are no
// longer believed, and the high-water mark becomes top (none if nil).
func (q *Queue) settle(height uint64, top *highWater) error {
	err := q.db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if top == nil {
			if err := meta.Delete(keyHighWater); err != nil {
				return err
			}
		} else if err := meta.Put(keyHighWater, encodeHighWater(*top)); err != nil {
			return err
		}
		c := tx.Bucket(bucketRecentBlocks).Cursor()
		for k, _ := c.Seek(idKey(height + 1)); k != nil; k, _ = c.Seek(idKey(height + 1)) {
			if err := c.Delete(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("queue settle: %w", err)
	}
	return nil
}

// retainedRecord returns the record a retention key refers to.
func retainedRecord(records *bolt.Bucket, key []byte) (Record, error) {
	var rec Record
	if len(key) != 16 {
		return rec, errors.New("corrupt retention key")
	}
	v := records.Get(key[8:])
	if v == nil {
		return rec, fmt.Errorf("retained record %d is missing", binary.BigEndian.Uint64(key[8:]))
	}
	if err := json.Unmarshal(v, &rec); err != nil {
		return rec, fmt.Errorf("decode retained record: %w", err)
	}
	return rec, nil
}
