package ingest

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/medprov/medprov/ledger"
	"github.com/medprov/medprov/seal"
	"github.com/medprov/medprov/wire"
)

// Blobs stores ciphertext by content address.
//
// PutMany MUST return only after every blob is durable, with their CIDs in
// input order, and MUST be safe for concurrent use.
type Blobs interface {
	PutMany(ctx context.Context, blobs [][]byte) ([]string, error)
}

// Sealer encrypts a reading under its patient's key.
//
// Seal MUST bind the ciphertext to patientID and readingID so that it opens
// for no other pair, MUST fail with seal.ErrErased for a patient whose keys
// were shredded (that reading alone is then rejected), and MUST be safe for
// concurrent use.
type Sealer interface {
	Seal(ctx context.Context, patientID, readingID string, plaintext []byte) ([]byte, error)
}

// Observer is told what the pipeline does, for metrics. Its methods MUST
// return quickly and be safe for concurrent use.
type Observer interface {
	// Transaction reports one RecordReadings attempt: its size, how long
	// it took and its error (nil when committed).
	Transaction(size int, took time.Duration, err error)
	// Finished reports readings whose ledger outcome is final.
	Finished(outs []Outcome)
}

// Config configures Open. Ledger, Blobs, Sealer and Queue.Path are
// required.
type Config struct {
	Ledger  ledger.Transactor
	Blobs   Blobs
	Sealer  Sealer
	Queue   QueueConfig
	Batcher BatcherConfig
	// MaxBlobsPerPut bounds the ciphertexts of concurrent submissions that
	// share one Blobs.PutMany. Default 2000.
	MaxBlobsPerPut int
	// Observer, if set, receives transaction and outcome reports.
	Observer Observer
	// Now is the pipeline's clock. Default time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// Reading is one reading whose device signature the caller has verified:
// the exact bytes the device signed, the signature, the patient its device
// is bound to, and the payload's metadata.
type Reading struct {
	PatientID string
	Payload   []byte
	Signature []byte
	// DataHash is the hex SHA-256 of Payload.
	DataHash string
	// DeviceID, Seq, Type, Unit and MeasuredAt (RFC 3339) are the
	// payload's own fields.
	DeviceID   string
	Seq        uint64
	Type       string
	Unit       string
	MeasuredAt string
}

// ID returns the reading's ledger id.
func (r Reading) ID() string { return wire.ReadingID(r.DeviceID, r.Seq) }

// Receipt is the pipeline's answer for one submitted reading. Status is
// wire.StatusQueued (durably queued now), wire.StatusQueued or
// wire.StatusRecorded for a reading already known with the same hash (Known
// is set), or wire.StatusRejected with Err set.
type Receipt struct {
	Status string
	CID    string
	Known  bool
	Err    error
	// Outcome, for a reading queued with watch, receives its ledger
	// outcome once; see Pipeline.Await.
	Outcome <-chan Outcome

	record uint64
}

// Pipeline is medprov's reading path: it seals each reading, stores the
// ciphertext, appends the ledger record to the durable queue (only then is
// a reading acknowledged), cuts queued records into RecordReadings
// transactions and reports every outcome. A reading acknowledged before a
// crash is replayed when the pipeline opens again; the chaincode treats an
// identical reading as already recorded, so replays never double it. A
// reading recorded before a restart that the ledger no longer holds is
// resubmitted or reported (see Reconciliation).
type Pipeline struct {
	cfg     Config
	puts    *blobGroup
	queue   *Queue
	batcher *Batcher
	cancel  context.CancelFunc
	stop    <-chan struct{} // closed by Close
	wg      sync.WaitGroup

	recMu   sync.Mutex
	rec     Reconciliation
	settled chan struct{} // closed when rec is final
}

// Open opens the queue, replays what it still holds, checks in the
// background that the ledger holds the readings the queue saw recorded
// (see Reconciled), and then starts batching; readings are accepted
// meanwhile. Close stops it.
func Open(ctx context.Context, cfg Config) (*Pipeline, error) {
	if cfg.Ledger == nil || cfg.Blobs == nil || cfg.Sealer == nil || cfg.Queue.Path == "" {
		return nil, errors.New("ingest: Ledger, Blobs, Sealer and Queue.Path are required")
	}
	if cfg.MaxBlobsPerPut <= 0 {
		cfg.MaxBlobsPerPut = 2000
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Queue.Now == nil {
		cfg.Queue.Now = cfg.Now
	}
	q, pending, err := OpenQueue(ctx, cfg.Queue)
	if err != nil {
		return nil, fmt.Errorf("ingest: %w", err)
	}
	p := &Pipeline{cfg: cfg, puts: newBlobGroup(cfg.Blobs, cfg.MaxBlobsPerPut), queue: q, settled: make(chan struct{})}
	p.batcher = NewBatcher(q, LedgerRecorder{cfg.Ledger}, cfg.Batcher, cfg.Observer, cfg.Logger)
	if len(pending) > 0 {
		// Pushback measures how far the ledger is behind this process; a
		// backlog replayed after a restart starts the clock anew.
		now := cfg.Now()
		for i := range pending {
			pending[i].EnqueuedAt = now
		}
		cfg.Logger.Info("replaying readings acknowledged before restart", "count", len(pending))
		p.batcher.Add(pending, false)
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	p.cancel, p.stop = cancel, runCtx.Done()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		// Batching waits for the check, so that what the check finds and
		// what the batcher records never interleave.
		p.reconcile(runCtx)
		p.batcher.Run(runCtx)
	}()
	return p, nil
}

// Submit takes verified readings through the path up to the durable queue
// and returns one receipt per reading, in order. A reading this pipeline
// already knows with the same hash is not stored again (Known); the same
// (device, seq) with another hash is rejected with ErrConflict, and a
// reading of an erased patient with the Sealer's seal.ErrErased. When Submit
// returns, every receipt with Status queued and not Known is durable. With
// watch, those receipts carry an Outcome channel. An error means nothing
// was acknowledged.
func (p *Pipeline) Submit(ctx context.Context, rs []Reading, watch bool) ([]Receipt, error) {
	out := make([]Receipt, len(rs))
	var fresh []int
	var sealed [][]byte
	for i, r := range rs {
		seen, err := p.queue.Lookup(r.DeviceID, r.Seq)
		if err != nil {
			return nil, err
		}
		if seen.State != StateUnknown {
			if seen.DataHash != r.DataHash {
				out[i] = Receipt{Status: wire.StatusRejected, Err: ErrConflict}
			} else {
				out[i] = Receipt{Status: seen.State.String(), Known: true}
			}
			continue
		}
		ct, err := p.cfg.Sealer.Seal(ctx, r.PatientID, r.ID(), r.Payload)
		if errors.Is(err, seal.ErrErased) {
			// The patient erased its data: this reading is refused on its
			// own, the others of the request go on.
			out[i] = Receipt{Status: wire.StatusRejected, Err: err}
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("seal: %w", err)
		}
		fresh = append(fresh, i)
		sealed = append(sealed, ct)
	}
	if len(fresh) == 0 {
		return out, nil
	}
	cids, err := p.puts.PutMany(ctx, sealed)
	if err != nil {
		return nil, err
	}
	recs := make([]Record, len(fresh))
	now := p.cfg.Now().UTC()
	for j, i := range fresh {
		r := rs[i]
		ch := sha256.Sum256(sealed[j])
		recs[j] = Record{PatientID: r.PatientID, EnqueuedAt: now, Item: wire.ReadingInput{
			DeviceID: r.DeviceID, Seq: r.Seq, Type: r.Type, Unit: r.Unit, MeasuredAt: r.MeasuredAt,
			DataHash: r.DataHash, Signature: base64.StdEncoding.EncodeToString(r.Signature),
			CID: cids[j], CipherHash: hex.EncodeToString(ch[:]), Size: int64(len(sealed[j])),
		}}
	}
	errs, err := p.queue.Append(ctx, recs)
	if err != nil {
		return nil, err
	}
	var queued []Record
	var at []int
	for j, i := range fresh {
		var dup *DuplicateError
		switch {
		case errs[j] == nil:
			out[i] = Receipt{Status: wire.StatusQueued, CID: cids[j], record: recs[j].ID}
			queued = append(queued, recs[j])
			at = append(at, i)
		case errors.As(errs[j], &dup):
			// A concurrent submission of the same reading won the race.
			out[i] = Receipt{Status: dup.Seen.State.String(), Known: true}
		default:
			out[i] = Receipt{Status: wire.StatusRejected, Err: errs[j]}
		}
	}
	chans := p.batcher.Add(queued, watch)
	for k, i := range at {
		if watch {
			out[i].Outcome = chans[k]
		}
	}
	return out, nil
}

// Await waits until every receipt with an Outcome channel has its outcome
// or ctx is done, and returns the outcomes by receipt index (absent: still
// queued). Receipts left waiting are unwatched.
func (p *Pipeline) Await(ctx context.Context, rs []Receipt) map[int]Outcome {
	got := map[int]Outcome{}
	for i, r := range rs {
		if r.Outcome == nil {
			continue
		}
		select {
		case o := <-r.Outcome:
			got[i] = o
		case <-ctx.Done():
			for _, r := range rs[i:] {
				if r.Outcome != nil {
					p.batcher.Unwatch(r.record)
				}
			}
			return got
		}
	}
	return got
}

// Lookup reports what this pipeline knows of a device's seq.
func (p *Pipeline) Lookup(deviceID string, seq uint64) (Seen, error) {
	return p.queue.Lookup(deviceID, seq)
}

// Lag returns how long the oldest reading not yet handed to the ledger has
// waited: a lag that grows means the ledger commits more slowly than
// readings arrive.
func (p *Pipeline) Lag() time.Duration { return p.batcher.Lag() }

// Pending returns the readings acknowledged and not yet on the ledger.
func (p *Pipeline) Pending() int { return p.queue.Pending() }

// Close stops batching (transactions in flight finish or stay queued for
// replay) and closes the queue. It does not close the backends.
func (p *Pipeline) Close() error {
	p.cancel()
	p.wg.Wait()
	return p.queue.Close()
}

// LedgerRecorder records batches with the medprov chaincode's
// RecordReadings through a ledger backend.
type LedgerRecorder struct{ Ledger ledger.Transactor }

// RecordReadings implements Recorder.
func (r LedgerRecorder) RecordReadings(ctx context.Context, items []wire.ReadingInput) (*BatchResult, error) {
	in, err := json.Marshal(wire.BatchInput{Readings: items})
	if err != nil {
		return nil, fmt.Errorf("encode batch: %w", err)
	}
	cm, err := r.Ledger.Submit(ctx, ledger.Proposal{Function: wire.FnRecordReadings, Args: []string{string(in)}})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", wire.FnRecordReadings, err)
	}
	var res wire.BatchResult
	if err := json.Unmarshal(cm.Payload, &res); err != nil {
		return nil, fmt.Errorf("%s: decode result: %w", wire.FnRecordReadings, err)
	}
	return &BatchResult{TxID: cm.TxID, Block: cm.Block, Results: res.Results}, nil
}
