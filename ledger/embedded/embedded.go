// Package embedded is the default medprov ledger backend: it runs the medprov
// chaincode in-process against a persistent LevelDB store, with hash-chained
// and signed blocks, key history, chaincode events and a local MSP whose
// certificates carry Fabric NodeOUs, so chaincode identity checks (pkg/cid)
// behave as on a Fabric peer.
//
// Execution model: each transaction is simulated on a consistent snapshot
// of committed state, concurrently with other simulations. A single
// committer validates the read sets (MVCC, including range queries) in
// arrival order and commits every valid transaction waiting at that moment
// in one block, written as one atomic, synced LevelDB batch. A transaction
// whose reads went stale is simulated again (and, after repeated conflicts,
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
// Signatures: as on Fabric, the orderer identity signs every block's
// header, the creator (the client or admin identity that submitted) signs
// every transaction's proposal (Transaction.ProposalBytes) and the peer
// identity endorses every transaction's outcome, its writes included
// (Transaction.ResponseBytes). The genesis block holds the channel
// configuration: the organisation's CA, the orderer and the policies.
// RawBlock exports a block, ParseBlock turns it into the backend-neutral
// evidence of package evidence, and Trust states what a regulator pins to
// check it offline.
//
// Durability: every block is one LevelDB batch, synced to disk before
// Submit returns; a crash leaves the chain at the last whole block. Store
// layout in Dir: ledger.leveldb/ (state, history, blocks, transaction and
// event indexes), ledger.tip (the chain anchor) and msp/ (CA; admin,
// client, orderer and peer identities). Dir and everything in it is kept
// 0700/0600: New tightens looser modes (or refuses, saying which file it
// cannot change), and files LevelDB creates later are made 0600 as they
// appear. A Dir holding the bbolt ledger.db of earlier versions is refused
// with ErrStoreFormat; a store of format leveldb/2 (unsigned blocks) or
// leveldb/1 (unsigned blocks whose headers carry no write-set hashes) is
// upgraded in place to leveldb/3, its blocks kept as they are and still
// verified, and the orderer and peer identities are added to its MSP:
// blocks from the upgrade on are signed.
//
// Integrity: LevelDB runs with every strict check, so a journal, table or
// manifest whose checksum fails is an error, never records silently
// dropped. Each block header commits to the block's transactions with
// their signatures (data hash), to its state changes (write-set hash) and
// to the previous header, and the orderer signs it. New refuses to open a
// store (with an error wrapping ErrCorrupt, a *TamperError naming the
// block when there is one) if LevelDB refuses a file, if the last blocks
// do not verify (hashes and orderer signatures) or disagree with the
// recorded height and tip, or if the chain ends before the tip recorded in
// the chain anchor (a journal that lost its tail); it also refuses a local
// MSP other than the one the genesis block names. Verify, and VerifyDir
// offline, replay the whole chain, check every signature and also check
// current state and every index against it.
//
// Backup: Ledger.Backup copies the ledger, as one snapshot sees it, into a
// directory that New and VerifyDir open like any other, while commits go
// on; it is how a node's backups hold the ledger.
package embedded

import (
	"bytes"
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
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hyperledger/fabric-chaincode-go/v2/shim"
	"github.com/hyperledger/fabric-protos-go-apiv2/peer"
	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/opt"
	"github.com/syndtr/goleveldb/leveldb/util"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/medprov/medprov/ledger"
)

// Config configures an embedded ledger.
type Config struct {
	// Dir is the data directory, created if absent; it and everything in
	// it are made owner-only (0700 directories, 0600 files) on open.
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

// Ledger is an embedded, persistent ledger running one chaincode. It
// implements ledger.Transactor and is safe for concurrent use.
type Ledger struct {
	cfg       Config
	log       *slog.Logger
	db        *store
	msp       *localMSP
	anchor    *anchorWriter // committer only, and Close
	queue     chan *commitRequest
	closing   chan struct{}
	stopped   chan struct{}
	closeOnce sync.Once

	// store is held shared by every store read and exclusively by Close,
	// so the store is never closed under a reader; closed is set under it.
	store  sync.RWMutex
	closed bool

	height atomic.Uint64
	tip    []byte // header hash of the last block; committer only
	// recent remembers the keys the last blocks wrote; committer only.
	recent *recentWrites

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
	if err := enforcePerms(cfg.Dir); err != nil {
		return nil, fmt.Errorf("embedded ledger: %w", err)
	}
	m, added, err := loadOrCreateMSP(cfg.Dir, cfg.MSPID, time.Now())
	if err != nil {
		return nil, fmt.Errorf("embedded ledger: %w", err)
	}
	log := cfg.Logger.With("component", "ledger/embedded")
	if len(added) > 0 {
		log.Info("local MSP: identities added for signing blocks and endorsing transactions", "identities", added)
	}
	db, err := openStore(cfg.Dir, false, log)
	if err != nil {
		return nil, fmt.Errorf("embedded ledger: %w", err)
	}
	l := &Ledger{
		cfg:      cfg,
		log:      log,
		db:       db,
		msp:      m,
		queue:    make(chan *commitRequest),
		closing:  make(chan struct{}),
		stopped:  make(chan struct{}),
		newBlock: make(chan struct{}),
	}
	if err := l.open(); err != nil {
		return nil, errors.Join(fmt.Errorf("embedded ledger: %w", err), db.Close())
	}
	go l.commitLoop()
	l.log.Info("embedded ledger open", "dir", cfg.Dir, "height", l.height.Load(), "mspID", cfg.MSPID)
	return l, nil
}

// open writes the genesis block on first start; otherwise it checks the
// store format (upgrading a leveldb/1 store), runs the start-up check
// (quickCheck) and compares the chain with its anchor. It loads the chain
// tip and opens the anchor for the committer.
func (l *Ledger) open() error {
	a, anchored, err := readAnchor(l.cfg.Dir)
	if err != nil {
		return err
	}
	_, err = l.db.Get(keyFormat, nil)
	switch {
	case errors.Is(err, leveldb.ErrNotFound):
		return l.create(a, anchored)
	case err != nil:
		return readError("read store format", err)
	}
	m, err := readMeta(l.db)
	if err != nil {
		return err
	}
	if err := quickCheck(l.db, m, l.msp.caCertPEM); err != nil {
		return err
	}
	if anchored {
		if err := checkAnchor(l.db, a, m.height, m.tip); err != nil {
			return err
		}
	} else {
		l.log.Warn("no chain anchor: lost blocks at the end of the chain cannot be detected on this start; writing one", "file", anchorFileName, "height", m.height)
	}
	if err := l.checkGenesis(m); err != nil {
		return err
	}
	if m.format != storeFormat {
		b := new(leveldb.Batch)
		b.Put(keyFormat, []byte(storeFormat))
		if m.format == legacyStoreFormat {
			b.Put(keyWriteSetFrom, be64(m.height))
		}
		b.Put(keySignedFrom, be64(m.height))
		if err := l.db.Write(b, &opt.WriteOptions{Sync: true}); err != nil {
			return fmt.Errorf("upgrade store format: %w", err)
		}
		l.log.Info("store upgraded: new blocks are signed and commit to their write sets; earlier blocks stay unsigned", "from", m.format, "to", storeFormat, "firstBlock", m.height)
	}
	return l.start(m.height, m.tip)
}

// checkGenesis checks that the channel configuration the genesis block
// holds (a ledger created in format leveldb/3) names the local MSP: its
// CA, MSP ID and orderer. Blocks signed with another MSP's identities
// would not verify against the chain's own configuration.
func (l *Ledger) checkGenesis(m chainMeta) error {
	if m.sigFrom != 0 {
		return nil
	}
	rec, raw, found, err := loadBlock(l.db, 0)
	switch {
	case errors.Is(err, errCorrupt):
		return &TamperError{Block: 0, Reason: err.Error()}
	case err != nil:
		return blockReadError(0, err)
	case !found:
		return &TamperError{Block: 0, Reason: "block missing"}
	}
	blk, err := decodeBlock(rec, raw)
	if err != nil {
		return &TamperError{Block: 0, Reason: err.Error()}
	}
	c := blk.Config
	switch {
	case c == nil:
		return &TamperError{Block: 0, Reason: "the genesis block holds no channel configuration"}
	case c.MSPID != l.cfg.MSPID:
		return fmt.Errorf("the chain's genesis block names MSP %q, the ledger is configured with %q", c.MSPID, l.cfg.MSPID)
	case !bytes.Equal(c.RootCertPEM, l.msp.caCertPEM):
		return fmt.Errorf("the local MSP in %s is not the one the chain's genesis block names (its CA certificate differs): restore it from a backup of this ledger", filepath.Join(l.cfg.Dir, mspDirName))
	case !slices.ContainsFunc(c.Orderers, func(o []byte) bool { return bytes.Equal(o, l.msp.orderer.Serialized) }):
		return fmt.Errorf("the local MSP's orderer in %s is not one the chain's genesis block names: restore it from a backup of this ledger", filepath.Join(l.cfg.Dir, mspDirName))
	}
	return nil
}

// create writes the genesis block into an empty store; a store holding
// records but no format marker, or one whose anchor records a chain, is
// refused.
func (l *Ledger) create(a anchor, anchored bool) error {
	it := l.db.NewIterator(nil, nil)
	empty := !it.First()
	it.Release()
	if err := it.Error(); err != nil {
		return readError("read store", err)
	}
	if !empty {
		return fmt.Errorf("%w: the store holds records but no format marker", ErrStoreFormat)
	}
	if anchored {
		return &TamperError{Block: 0, Reason: fmt.Sprintf("the store is empty, but %s records a chain of %d blocks: the store's records were lost", anchorFileName, a.height)}
	}
	config := newChannelConfig(l.cfg.ChannelID, l.msp).encode()
	genesis := BlockHeader{Number: 0, DataHash: dataHash([][]byte{config}), WriteSetHash: WriteSetHash(nil)}
	tip := genesis.Hash()
	seal, err := l.seal(tip, config)
	if err != nil {
		return fmt.Errorf("genesis block: %w", err)
	}
	b := new(leveldb.Batch)
	putBlock(b, genesis, nil, seal)
	b.Put(keyTip, tip)
	b.Put(keyHeight, be64(1))
	b.Put(keyFormat, []byte(storeFormat))
	b.Put(keyWriteSetFrom, be64(0))
	b.Put(keySignedFrom, be64(0))
	if err := l.db.Write(b, &opt.WriteOptions{Sync: true}); err != nil {
		return fmt.Errorf("write genesis block: %w", err)
	}
	return l.start(1, tip)
}

// start loads the chain tip and opens the anchor at it.
func (l *Ledger) start(height uint64, tip []byte) error {
	w, err := openAnchor(l.cfg.Dir, anchor{height: height, tip: tip})
	if err != nil {
		return err
	}
	l.anchor = w
	l.tip = tip
	l.recent = newRecentWrites(height)
	l.height.Store(height)
	return nil
}

// readTip returns the recorded chain height and the header hash of the
// last block.
func readTip(r reader) (uint64, []byte, error) {
	h, err := r.Get(keyHeight, nil)
	if err != nil {
		return 0, nil, fmt.Errorf("read chain height: %w", err)
	}
	if len(h) != 8 {
		return 0, nil, fmt.Errorf("%w: height", errCorrupt)
	}
	tip, err := r.Get(keyTip, nil)
	if err != nil {
		return 0, nil, fmt.Errorf("read chain tip: %w", err)
	}
	return beUint64(h), tip, nil
}

// Close stops the committer and closes the store. Submits in flight either
// commit before Close returns or fail with ErrClosed; reads in progress
// (simulations, Tx, Block, Verify) finish before the store closes, and later
// calls fail with ErrClosed.
func (l *Ledger) Close() error {
	var err error
	l.closeOnce.Do(func() {
		close(l.closing)
		<-l.stopped
		l.store.Lock()
		defer l.store.Unlock()
		l.closed = true
		err = errors.Join(l.db.Close(), l.anchor.close())
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
		function:  p.Function,
		params:    p.Args,
		transient: p.Transient,
	}, nil
}

// signProposal has p's creator sign its ProposalBytes. It sets p.digest
// at once and p.signature by the time the returned channel yields (nil, or
// why it could not sign): the signature is computed while the proposal is
// simulated.
func (l *Ledger) signProposal(p *proposal, asAdmin bool) <-chan error {
	id := l.Identity(asAdmin)
	p.digest = proposalDigest(p)
	done := make(chan error, 1)
	go func() {
		sig, err := sign(id.Key, p.digest[:])
		if err != nil {
			done <- fmt.Errorf("transaction %s: creator signature: %w: %w", p.txID, ledger.ErrUnavailable, err)
			return
		}
		p.signature = sig
		done <- nil
	}()
	return done
}

// endorse has the peer sign the outcome of p that sim holds (its
// ResponseBytes followed by the peer's serialized identity).
func (l *Ledger) endorse(p *proposal, sim *simulation) error {
	peer := l.msp.peer
	d := endorsementDigest(p.digest, sim, peer.Serialized)
	sig, err := sign(peer.Key, d[:])
	if err != nil {
		return fmt.Errorf("transaction %s: endorsement: %w: %w", p.txID, ledger.ErrUnavailable, err)
	}
	sim.endorsement = Endorsement{Endorser: peer.Serialized, Signature: sig}
	return nil
}

// simulation is the outcome of executing a proposal.
type simulation struct {
	reads    []KeyRead
	ranges   []*rangeRecord
	writes   []KeyWrite
	event    *ChaincodeEvent
	response Response
	// snapHeight is the chain height read just before the snapshot the
	// simulation ran on was taken (the snapshot holds at least those
	// blocks); 0 when unknown, which makes the committer read every key
	// again to validate.
	snapHeight uint64
	// writeSetHash is TxWriteSetHash(writes), computed here rather than
	// in the committer.
	writeSetHash [sha256.Size]byte
	// endorsement is the peer's, set by endorse for a transaction to
	// commit.
	endorsement Endorsement
}

// execute runs the chaincode for p against v. A chaincode panic is
// recovered into a 500 response.
func (l *Ledger) execute(ctx context.Context, p *proposal, v *view) (*simulation, error) {
	st := newStub(ctx, l.cfg.ChannelID, p, v)
	resp := l.invoke(st)
	if err := st.finish(); err != nil {
		return nil, fmt.Errorf("transaction %s: %w: %w", p.txID, ledger.ErrUnavailable, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("transaction %s: %w", p.txID, err)
	}
	sim := &simulation{response: Response{Status: resp.GetStatus(), Message: resp.GetMessage(), Payload: resp.GetPayload()}}
	sim.reads, sim.ranges, sim.writes, sim.event = st.simulation()
	if sim.response.Status < shim.ERRORTHRESHOLD {
		sim.writeSetHash = TxWriteSetHash(sim.writes)
	}
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

// snapshot returns a snapshot of committed state and the function that
// releases it; Close waits for that release.
func (l *Ledger) snapshot(ctx context.Context) (*leveldb.Snapshot, func(), error) {
	if err := l.checkOpen(ctx); err != nil {
		return nil, nil, err
	}
	l.store.RLock()
	if l.closed {
		l.store.RUnlock()
		return nil, nil, ErrClosed
	}
	snap, err := l.db.GetSnapshot()
	if err != nil {
		l.store.RUnlock()
		return nil, nil, fmt.Errorf("embedded ledger snapshot: %w: %w", ledger.ErrUnavailable, err)
	}
	return snap, func() { snap.Release(); l.store.RUnlock() }, nil
}

// simulate executes p on a fresh snapshot of committed state.
func (l *Ledger) simulate(ctx context.Context, p *proposal) (*simulation, error) {
	// Read before the snapshot is taken: the committer stores a block's
	// height after writing it, so the snapshot holds at least h blocks.
	h := l.height.Load()
	snap, release, err := l.snapshot(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	sim, err := l.execute(ctx, p, &view{snap: snap})
	if err != nil {
		return nil, err
	}
	sim.snapHeight = h
	return sim, nil
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
	signed := l.signProposal(prop, p.AsAdmin)
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
			if err := l.endorse(prop, sim); err != nil {
				return nil, err
			}
			req.sim = sim
		}
		if signed != nil {
			if err := <-signed; err != nil {
				return nil, err
			}
			signed = nil
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
	snap, release, err := l.snapshot(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	v, err := snap.Get(txKey(txID), nil)
	if errors.Is(err, leveldb.ErrNotFound) {
		return nil, fmt.Errorf("transaction %s: %w", txID, ledger.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("transaction %s: %w", txID, err)
	}
	loc, err := decodeTxLocation(v)
	if err != nil {
		return nil, fmt.Errorf("transaction %s: %w", txID, err)
	}
	return &ledger.TxInfo{TxID: txID, Block: loc.block, Timestamp: loc.timestamp, Valid: loc.valid}, nil
}

// Block returns block n; ledger.ErrNotFound if the chain is shorter.
func (l *Ledger) Block(ctx context.Context, n uint64) (*Block, error) {
	snap, release, err := l.snapshot(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	rec, raw, found, err := loadBlock(snap, n)
	if err != nil {
		return nil, fmt.Errorf("block %d: %w", n, err)
	}
	if !found {
		return nil, fmt.Errorf("block %d: %w", n, ledger.ErrNotFound)
	}
	blk, err := decodeBlock(rec, raw)
	if err != nil {
		return nil, fmt.Errorf("block %d: %w", n, err)
	}
	return blk, nil
}

// Verify checks the whole ledger as it stood when Verify began (blocks
// committed meanwhile are not checked) by replaying its chain: every
// block's header links to its predecessor's and ends in the recorded tip,
// its data hash matches its transactions and its write-set hash their
// writes; signed blocks (all but those committed before an upgrade from an
// unsigned store format) carry an orderer signature over the header, and
// each of their transactions a creator signature over its proposal and an
// endorsement over its outcome, that verify and whose signers' certificates
// chain to the CA of the genesis block's configuration (or, for an
// upgraded ledger, the local MSP's) with the NodeOU the signature needs;
// the transaction and event indexes (which Tx and Events read)
// match the blocks; and current state and the history index (which the
// chaincode reads) are exactly what the blocks' write sets produce, so a
// state record edited in the store (an actor's role, a consent's status)
// is found. It returns nil, a *TamperError naming the first block at fault
// (and, for a state or history record, its key's object type, never the
// key's IDs), or another error wrapping ErrCorrupt when LevelDB's checksums
// refuse the stored bytes or records of no known kind are found; other
// errors mean the store could not be read. It reads every record, so its
// cost grows with the ledger (see BenchmarkVerify), and it holds one small
// entry per key the chain ever wrote in memory.
func (l *Ledger) Verify(ctx context.Context) error {
	snap, release, err := l.snapshot(ctx)
	if err != nil {
		return err
	}
	defer release()
	_, err = verifyStore(ctx, snap, l.msp.caCertPEM)
	return err
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
				evs, next, err := l.readEvents(ctx, from, l.Height())
				if errors.Is(err, ErrClosed) || ctx.Err() != nil {
					return
				}
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
func (l *Ledger) readEvents(ctx context.Context, from []byte, height uint64) ([]ledger.Event, []byte, error) {
	snap, release, err := l.snapshot(ctx)
	if err != nil {
		return nil, nil, err
	}
	defer release()
	var evs []ledger.Event
	next := from
	it := snap.NewIterator(&util.Range{Start: from, Limit: eventKey(height, 0)}, nil)
	defer it.Release()
	for len(evs) < eventBatch && it.Next() {
		block, txNum, ok := splitEventKey(it.Key())
		if !ok {
			return nil, nil, fmt.Errorf("event key %x: %w", it.Key(), errCorrupt)
		}
		d := decoder{buf: it.Value()}
		ev := ledger.Event{Block: block, TxID: d.string(), Name: d.string(), Payload: d.bytes()}
		if err := d.finish(); err != nil {
			return nil, nil, fmt.Errorf("event %d/%d: %w", block, txNum, err)
		}
		evs = append(evs, ev)
		next = eventKey(block, txNum+1)
	}
	if err := it.Error(); err != nil {
		return nil, nil, fmt.Errorf("read events: %w", err)
	}
	return evs, next, nil
}
