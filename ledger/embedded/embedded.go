// Package embedded is the default medprov ledger backend: it runs the medprov
// chaincode in-process against a persistent bbolt store, with hash-chained
// blocks, key history, chaincode events and a local MSP whose admin and
// client certificates carry Fabric NodeOUs, so chaincode identity checks
// (pkg/cid) behave as on a Fabric peer.
//
// Execution model: each transaction is simulated on a consistent snapshot
// of committed state, concurrently with other simulations. A single
// committer validates the read sets (MVCC, including range queries) in
// arrival order and commits every valid transaction waiting at that moment
// in one block, with one durable bbolt commit per block. A transaction whose
// reads went stale is simulated again (and, after repeated conflicts,
// executed inside the committer), so callers never see MVCC conflicts.
//
// Fabric semantics the chaincode can observe are kept: reads see committed
// state only, never the transaction's own writes; PutState with an empty
// value records a delete (the peer's write set does the same); keys must be
// valid UTF-8; GetStateByRange refuses composite keys; paginated queries
// return the peer's bookmark (the first key after the page) and are allowed
// in read-only transactions only; GetHistoryForKey lists modifications
// newest first; one event per transaction, the last SetEvent wins. Private
// data, rich queries, chaincode-to-chaincode calls and key-level
// endorsement return errors wrapping ErrNotSupported.
//
// Durability: every block is one bbolt transaction, synced to disk before
// Submit returns. Store layout in Dir: ledger.db (state, history, blocks,
// transaction and event indexes) and msp/ (CA, admin and client identities,
// private keys 0600).
package embedded

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hyperledger/fabric-chaincode-go/v2/shim"
	"github.com/hyperledger/fabric-protos-go-apiv2/peer"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/medprov/medprov/ledger"
)

// Config configures an embedded ledger.
type Config struct {
	// Dir is the data directory, created (0700) if absent.
	Dir string
	// Chaincode is the chaincode run in-process, e.g. chaincode.NewChaincode().
	Chaincode shim.Chaincode
	// ChannelID is what GetChannelID returns; default "medprov".
	ChannelID string
	// ChaincodeName names the chaincode; default "medprov".
	ChaincodeName string
	// MSPID is the local organisation's MSP ID; default "HospitalMSP".
	MSPID string
	// Now is the transaction timestamp source; default time.Now.
	Now func() time.Time
	// Logger receives operational logs; default slog.Default().
	Logger *slog.Logger
}

// ErrClosed reports use of a closed ledger. It wraps ledger.ErrUnavailable.
var ErrClosed = fmt.Errorf("embedded ledger closed: %w", ledger.ErrUnavailable)

const (
	dbFileName = "ledger.db"
	// maxBlockTxs bounds how many transactions one block takes.
	maxBlockTxs = 512
	// maxBlockBytes stops a block from taking more transactions once their
	// arguments and writes reach this size.
	maxBlockBytes = 64 << 20
	// optimisticAttempts is how many times a transaction is simulated on a
	// snapshot before it is executed inside the committer.
	optimisticAttempts = 3
	// eventBatch bounds how many events one read transaction loads.
	eventBatch = 1024
)

var (
	bucketState   = []byte("state")
	bucketHistory = []byte("history")
	bucketBlocks  = []byte("blocks")
	bucketTxs     = []byte("txs")
	bucketEvents  = []byte("events")
	bucketMeta    = []byte("meta")
	keyHeight     = []byte("height")
	keyTip        = []byte("tip")
)

// Ledger is an embedded, persistent ledger running one chaincode. It
// implements ledger.Transactor and is safe for concurrent use.
type Ledger struct {
	cfg       Config
	log       *slog.Logger
	db        *bolt.DB
	msp       *localMSP
	queue     chan *commitRequest
	closing   chan struct{}
	stopped   chan struct{}
	closeOnce sync.Once

	height atomic.Uint64
	tip    []byte // header hash of the last block; committer only

	mu       sync.Mutex
	newBlock chan struct{} // closed and replaced on every commit
}

var _ ledger.Transactor = (*Ledger)(nil)

// New opens the ledger in cfg.Dir, creating its store, genesis block and
// local MSP on first start, and starts its committer.
func New(ctx context.Context, cfg Config) (*Ledger, error) {
	if cfg.Dir == "" {
		return nil, errors.New("embedded ledger: Config.Dir is required")
	}
	if cfg.Chaincode == nil {
		return nil, errors.New("embedded ledger: Config.Chaincode is required")
	}
	if cfg.ChannelID == "" {
		cfg.ChannelID = "medprov"
	}
	if cfg.ChaincodeName == "" {
		cfg.ChaincodeName = "medprov"
	}
	if cfg.MSPID == "" {
		cfg.MSPID = "HospitalMSP"
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Dir, dirPerm); err != nil {
		return nil, fmt.Errorf("embedded ledger: %w", err)
	}
	m, err := loadOrCreateMSP(cfg.Dir, cfg.MSPID, time.Now())
	if err != nil {
		return nil, fmt.Errorf("embedded ledger: %w", err)
	}
	db, err := bolt.Open(filepath.Join(cfg.Dir, dbFileName), secretPerm, &bolt.Options{
		Timeout:         time.Second,
		NoFreelistSync:  true,
		FreelistType:    bolt.FreelistMapType,
		InitialMmapSize: 1 << 30,
	})
	if err != nil {
		return nil, fmt.Errorf("embedded ledger: open store: %w", err)
	}
	l := &Ledger{
		cfg:      cfg,
		log:      cfg.Logger.With("component", "ledger/embedded"),
		db:       db,
		msp:      m,
		queue:    make(chan *commitRequest),
		closing:  make(chan struct{}),
		stopped:  make(chan struct{}),
		newBlock: make(chan struct{}),
	}
	if err := l.open(); err != nil {
		return nil, errors.Join(err, db.Close())
	}
	go l.commitLoop()
	l.log.Info("embedded ledger open", "dir", cfg.Dir, "height", l.height.Load(), "mspID", cfg.MSPID)
	return l, nil
}

// open creates the buckets and the genesis block if needed and loads the
// chain tip.
func (l *Ledger) open() error {
	return l.db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketState, bucketHistory, bucketBlocks, bucketTxs, bucketEvents, bucketMeta} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return fmt.Errorf("embedded ledger: create bucket %s: %w", b, err)
			}
		}
		meta := tx.Bucket(bucketMeta)
		if h := meta.Get(keyHeight); h != nil {
			if len(h) != 8 {
				return fmt.Errorf("embedded ledger: %w: height", errCorrupt)
			}
			l.height.Store(beUint64(h))
			l.tip = append([]byte(nil), meta.Get(keyTip)...)
			return nil
		}
		genesis := BlockHeader{Number: 0, DataHash: dataHash(nil)}
		if err := tx.Bucket(bucketBlocks).Put(be64(0), encodeBlock(genesis, nil)); err != nil {
			return err
		}
		l.tip = genesis.Hash()
		l.height.Store(1)
		if err := meta.Put(keyTip, l.tip); err != nil {
			return err
		}
		return meta.Put(keyHeight, be64(1))
	})
}

// Close stops the committer and closes the store. Submits in flight either
// commit before Close returns or fail with ErrClosed.
func (l *Ledger) Close() error {
	var err error
	l.closeOnce.Do(func() {
		close(l.closing)
		<-l.stopped
		err = l.db.Close()
	})
	return err
}

// Height returns the number of blocks, genesis included.
func (l *Ledger) Height() uint64 { return l.height.Load() }

// Identity returns the local MSP identity transactions are submitted with:
// the admin (certificate OU "admin") or the client (OU "client").
func (l *Ledger) Identity(admin bool) *Identity {
	if admin {
		return l.msp.admin
	}
	return l.msp.client
}

// CACertPEM returns the local MSP's CA certificate.
func (l *Ledger) CACertPEM() []byte { return l.msp.caCertPEM }

func (l *Ledger) newProposal(p ledger.Proposal) (*proposal, error) {
	id := l.msp.client
	if p.AsAdmin {
		id = l.msp.admin
	}
	nonce := make([]byte, 24)
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("transaction nonce: %w", err)
	}
	h := sha256.New()
	h.Write(nonce)
	h.Write(id.Serialized)
	args := make([][]byte, 0, len(p.Args)+1)
	args = append(args, []byte(p.Function))
	for _, a := range p.Args {
		args = append(args, []byte(a))
	}
	return &proposal{
		txID:      hex.EncodeToString(h.Sum(nil)),
		nonce:     nonce,
		timestamp: timestamppb.New(l.cfg.Now()),
		creator:   id.Serialized,
		args:      args,
		transient: p.Transient,
	}, nil
}

// simulation is the outcome of executing a proposal.
type simulation struct {
	reads    []KeyRead
	ranges   []*rangeRecord
	writes   []KeyWrite
	event    *ChaincodeEvent
	response Response
}

// execute runs the chaincode for p against tx. A chaincode panic is
// recovered into a 500 response.
func (l *Ledger) execute(ctx context.Context, p *proposal, tx *bolt.Tx) (*simulation, error) {
	st := newStub(ctx, l.cfg.ChannelID, p, tx)
	resp := l.invoke(st)
	st.finish()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("transaction %s: %w", p.txID, err)
	}
	sim := &simulation{response: Response{Status: resp.GetStatus(), Message: resp.GetMessage(), Payload: resp.GetPayload()}}
	sim.reads, sim.ranges, sim.writes, sim.event = st.simulation()
	return sim, nil
}

func (l *Ledger) invoke(st *stub) (resp *peer.Response) {
	defer func() {
		if r := recover(); r != nil {
			fn, _ := st.GetFunctionAndParameters()
			l.log.Error("chaincode panicked", "txID", st.prop.txID, "function", fn, "panic", r, "stack", string(debug.Stack()))
			resp = &peer.Response{Status: shim.ERROR, Message: fmt.Sprintf("chaincode panicked: %v", r)}
		}
	}()
	resp = l.cfg.Chaincode.Invoke(st)
	if resp == nil {
		resp = &peer.Response{Status: shim.ERROR, Message: "chaincode returned no response"}
	}
	return resp
}

// checkOpen returns ErrClosed once Close has been called, else ctx's error.
func (l *Ledger) checkOpen(ctx context.Context) error {
	select {
	case <-l.closing:
		return ErrClosed
	default:
	}
	return ctx.Err()
}

// simulate executes p on a fresh snapshot of committed state.
func (l *Ledger) simulate(ctx context.Context, p *proposal) (*simulation, error) {
	if err := l.checkOpen(ctx); err != nil {
		return nil, err
	}
	tx, err := l.db.Begin(false)
	if err != nil {
		return nil, fmt.Errorf("embedded ledger snapshot: %w: %w", ledger.ErrUnavailable, err)
	}
	sim, err := l.execute(ctx, p, tx)
	if rerr := tx.Rollback(); rerr != nil && err == nil {
		err = fmt.Errorf("embedded ledger snapshot: %w", rerr)
	}
	return sim, err
}

func refused(txID string, r Response) error {
	return &ledger.ChaincodeError{TxID: txID, Status: r.Status, Message: r.Message}
}

// Evaluate runs a proposal on committed state and returns the chaincode's
// payload; nothing is written. A refusal (status >= 400) is a
// *ledger.ChaincodeError.
func (l *Ledger) Evaluate(ctx context.Context, p ledger.Proposal) ([]byte, error) {
	prop, err := l.newProposal(p)
	if err != nil {
		return nil, err
	}
	sim, err := l.simulate(ctx, prop)
	if err != nil {
		return nil, err
	}
	if sim.response.Status >= shim.ERRORTHRESHOLD {
		return nil, refused("", sim.response)
	}
	return sim.response.Payload, nil
}

// Submit executes a proposal and returns once its transaction is committed
// in a block. A refusal by the chaincode (status >= 400 or a panic) is a
// *ledger.ChaincodeError and writes nothing; so does a ctx that ends before
// the transaction is committed.
func (l *Ledger) Submit(ctx context.Context, p ledger.Proposal) (*ledger.Commit, error) {
	prop, err := l.newProposal(p)
	if err != nil {
		return nil, err
	}
	for attempt := 1; ; attempt++ {
		req := &commitRequest{ctx: ctx, prop: prop, done: make(chan commitResult, 1)}
		if attempt <= optimisticAttempts {
			sim, err := l.simulate(ctx, prop)
			if err != nil {
				return nil, err
			}
			if sim.response.Status >= shim.ERRORTHRESHOLD {
				return nil, refused(prop.txID, sim.response)
			}
			req.sim = sim
		}
		select {
		case l.queue <- req:
		case <-l.closing:
			return nil, ErrClosed
		case <-ctx.Done():
			return nil, fmt.Errorf("transaction %s not submitted: %w", prop.txID, ctx.Err())
		}
		res := <-req.done
		if res.conflict {
			l.log.Debug("MVCC conflict, simulating again", "txID", prop.txID, "attempt", attempt)
			continue
		}
		return res.commit, res.err
	}
}

// Tx locates a committed transaction; ledger.ErrNotFound if there is none.
func (l *Ledger) Tx(ctx context.Context, txID string) (*ledger.TxInfo, error) {
	if err := l.checkOpen(ctx); err != nil {
		return nil, err
	}
	var info *ledger.TxInfo
	err := l.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketTxs).Get([]byte(txID))
		if v == nil {
			return fmt.Errorf("transaction %s: %w", txID, ledger.ErrNotFound)
		}
		loc, err := decodeTxLocation(v)
		if err != nil {
			return fmt.Errorf("transaction %s: %w", txID, err)
		}
		info = &ledger.TxInfo{TxID: txID, Block: loc.block, Timestamp: loc.timestamp, Valid: loc.valid}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return info, nil
}

// Block returns block n; ledger.ErrNotFound if the chain is shorter.
func (l *Ledger) Block(ctx context.Context, n uint64) (*Block, error) {
	if err := l.checkOpen(ctx); err != nil {
		return nil, err
	}
	var blk *Block
	err := l.db.View(func(tx *bolt.Tx) error {
		raw := tx.Bucket(bucketBlocks).Get(be64(n))
		if raw == nil {
			return fmt.Errorf("block %d: %w", n, ledger.ErrNotFound)
		}
		b, err := decodeBlock(raw)
		if err != nil {
			return fmt.Errorf("block %d: %w", n, err)
		}
		blk = b
		return nil
	})
	return blk, err
}

// Verify walks the whole chain and checks every block's data hash, the
// previous-header hashes that link the blocks, and that the transaction and
// event indexes (which Tx and Events read) agree with the blocks. It
// returns nil, a
// *TamperError naming the first block that does not match, or another
// error if the store cannot be read.
func (l *Ledger) Verify(ctx context.Context) error {
	if err := l.checkOpen(ctx); err != nil {
		return err
	}
	height := l.Height()
	var prev []byte
	const perView = 256
	for start := uint64(0); start < height; start += perView {
		err := l.db.View(func(tx *bolt.Tx) error {
			blocks := tx.Bucket(bucketBlocks)
			for n := start; n < height && n < start+perView; n++ {
				if err := ctx.Err(); err != nil {
					return err
				}
				raw := blocks.Get(be64(n))
				if raw == nil {
					return &TamperError{Block: n, Reason: "block missing"}
				}
				h, txs, err := splitBlock(raw)
				if err != nil {
					return &TamperError{Block: n, Reason: err.Error()}
				}
				if h.Number != n {
					return &TamperError{Block: n, Reason: fmt.Sprintf("header says block %d", h.Number)}
				}
				if n > 0 && !equalBytes(h.PreviousHash, prev) {
					return &TamperError{Block: n - 1, Reason: fmt.Sprintf("header hash differs from the previous-header hash recorded in block %d", n)}
				}
				if !equalBytes(h.DataHash, dataHash(txs)) {
					return &TamperError{Block: n, Reason: "data hash does not match the block's transactions"}
				}
				if reason := checkIndexes(tx, n, txs); reason != "" {
					return &TamperError{Block: n, Reason: reason}
				}
				prev = h.Hash()
			}
			if start+perView >= height {
				if tip := tx.Bucket(bucketMeta).Get(keyTip); !equalBytes(tip, prev) {
					return &TamperError{Block: height - 1, Reason: "header hash differs from the recorded chain tip"}
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// Events delivers the chaincode events of committed blocks numbered
// startBlock and above, in order: stored blocks first, then new blocks as
// they commit. The channel is closed when ctx ends or the ledger closes.
func (l *Ledger) Events(ctx context.Context, startBlock uint64) (<-chan ledger.Event, error) {
	if err := l.checkOpen(ctx); err != nil {
		return nil, err
	}
	ch := make(chan ledger.Event, 64)
	go func() {
		defer close(ch)
		from := eventKey(startBlock, 0)
		for {
			wait := l.blockSignal()
			for {
				evs, next, err := l.readEvents(from, l.Height())
				if err != nil {
					l.log.Error("event delivery stopped", "error", err)
					return
				}
				for _, ev := range evs {
					select {
					case ch <- ev:
					case <-ctx.Done():
						return
					case <-l.closing:
						return
					}
				}
				from = next
				if len(evs) < eventBatch {
					break
				}
			}
			select {
			case <-wait:
			case <-ctx.Done():
				return
			case <-l.closing:
				return
			}
		}
	}()
	return ch, nil
}

func (l *Ledger) blockSignal() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.newBlock
}

// readEvents loads up to eventBatch events with keys >= from in blocks
// below height, and returns the key to continue from.
func (l *Ledger) readEvents(from []byte, height uint64) ([]ledger.Event, []byte, error) {
	var evs []ledger.Event
	next := from
	err := l.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketEvents).Cursor()
		for k, v := c.Seek(from); k != nil && len(evs) < eventBatch; k, v = c.Next() {
			block, txNum := splitEventKey(k)
			if block >= height {
				break
			}
			d := decoder{buf: v}
			ev := ledger.Event{Block: block, TxID: d.string(), Name: d.string(), Payload: d.bytes()}
			if err := d.finish(); err != nil {
				return fmt.Errorf("event %d/%d: %w", block, txNum, err)
			}
			evs = append(evs, ev)
			next = eventKey(block, txNum+1)
		}
		return nil
	})
	return evs, next, err
}

// checkIndexes compares block n's transactions with the transaction and
// event indexes; it returns why they disagree, or "".
func checkIndexes(tx *bolt.Tx, n uint64, raw [][]byte) string {
	txs := tx.Bucket(bucketTxs)
	events := tx.Bucket(bucketEvents)
	withEvents := 0
	for i, r := range raw {
		t, err := decodeTransaction(r)
		if err != nil {
			return fmt.Sprintf("transaction %d: %v", i, err)
		}
		v := txs.Get([]byte(t.TxID))
		if v == nil {
			return fmt.Sprintf("transaction %s missing from the index", t.TxID)
		}
		loc, err := decodeTxLocation(v)
		if err != nil || loc.block != n || loc.txNum != uint32(i) || !loc.timestamp.Equal(t.Timestamp) || loc.valid != t.Valid {
			return fmt.Sprintf("transaction index entry of %s does not match the block", t.TxID)
		}
		ev := events.Get(eventKey(n, uint32(i)))
		if (ev != nil) != (t.Event != nil) {
			return fmt.Sprintf("event index of transaction %s does not match the block", t.TxID)
		}
		if t.Event == nil {
			continue
		}
		withEvents++
		if !equalBytes(ev, encodeEvent(t.TxID, t.Event)) {
			return fmt.Sprintf("event index of transaction %s does not match the block", t.TxID)
		}
	}
	indexed := 0
	c := events.Cursor()
	prefix := be64(n)
	for k, _ := c.Seek(prefix); k != nil && len(k) == 12 && equalBytes(k[:8], prefix); k, _ = c.Next() {
		indexed++
	}
	if indexed != withEvents {
		return fmt.Sprintf("event index holds %d events for the block, the block %d", indexed, withEvents)
	}
	return ""
}
