package embedded

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/comparer"
	"github.com/syndtr/goleveldb/leveldb/filter"
	"github.com/syndtr/goleveldb/leveldb/iterator"
	"github.com/syndtr/goleveldb/leveldb/memdb"
	"github.com/syndtr/goleveldb/leveldb/opt"
	"github.com/syndtr/goleveldb/leveldb/storage"
	"github.com/syndtr/goleveldb/leveldb/util"
)

// ErrStoreFormat reports a data directory holding a ledger in a storage
// format this version cannot read (such as the bbolt ledger.db of earlier
// versions). New refuses it rather than starting an empty chain beside it.
var ErrStoreFormat = errors.New("unsupported ledger store format")

// StoreDir is the name of the LevelDB directory inside Config.Dir.
const StoreDir = storeDirName

const (
	storeDirName = "ledger.leveldb"
	// oldStoreFile is the bbolt file of earlier versions.
	oldStoreFile = "ledger.db"
	// storeFormat is recorded in the meta records; New refuses any other
	// but the two earlier formats, which it upgrades in place.
	storeFormat = "leveldb/3"
	// unsignedStoreFormat is the format of stores whose blocks and
	// transactions carry no signatures. Its blocks stay readable and
	// verifiable (by their hashes) and are reported unsigned.
	unsignedStoreFormat = "leveldb/2"
	// legacyStoreFormat is the format of stores whose block headers carry
	// no write-set hash (and no signatures). Its blocks stay readable and
	// verifiable: their data hash covers the transactions, write sets
	// included.
	legacyStoreFormat = "leveldb/1"
)

// One LevelDB holds everything; the first byte of a key names the record
// kind (what bbolt buckets separated before).
const (
	prefixState   byte = 's' // s || key → version || value
	prefixHistory byte = 'h' // h || uvarint(len(key)) || key || block || tx → history pointer
	prefixBlock   byte = 'b' // b || block → header; b || block || tx → transaction
	prefixTx      byte = 't' // t || txID → location
	prefixEvent   byte = 'e' // e || block || tx → event
	prefixMeta    byte = 'm' // m || name → value
)

var (
	keyHeight = metaKey("height")
	keyTip    = metaKey("tip")
	keyFormat = metaKey("format")
	// keyWriteSetFrom holds the number of the first block whose header
	// carries a write-set hash: 0 for a store created in format leveldb/2
	// or later, the height at the upgrade for one created in leveldb/1.
	keyWriteSetFrom = metaKey("wsfrom")
	// keySignedFrom holds the number of the first signed block (orderer
	// signature, creator signatures and endorsements): 0 for a store
	// created in format leveldb/3, whose genesis block holds the channel
	// configuration, the height at the upgrade for an earlier one.
	keySignedFrom = metaKey("sigfrom")
)

func metaKey(name string) []byte { return append([]byte{prefixMeta}, name...) }

func stateKey(key string) []byte {
	b := make([]byte, 0, 1+len(key))
	return append(append(b, prefixState), key...)
}

// stateRange is the store range of state keys in [start, end); end ""
// means no upper bound.
func stateRange(start, end string) *util.Range {
	r := &util.Range{Start: stateKey(start), Limit: []byte{prefixState + 1}}
	if end != "" {
		r.Limit = stateKey(end)
	}
	return r
}

func txKey(txID string) []byte {
	b := make([]byte, 0, 1+len(txID))
	return append(append(b, prefixTx), txID...)
}

func blockKey(n uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{prefixBlock}, n)
}

func blockTxKey(n uint64, txNum uint32) []byte {
	return binary.BigEndian.AppendUint32(blockKey(n), txNum)
}

// eventKey is the store key of the event of transaction txNum of block
// block; keys order events by commit.
func eventKey(block uint64, txNum uint32) []byte {
	b := binary.BigEndian.AppendUint64([]byte{prefixEvent}, block)
	return binary.BigEndian.AppendUint32(b, txNum)
}

func splitEventKey(k []byte) (uint64, uint32, bool) {
	if len(k) != 13 || k[0] != prefixEvent {
		return 0, 0, false
	}
	return binary.BigEndian.Uint64(k[1:]), binary.BigEndian.Uint32(k[9:]), true
}

// historyPrefix is uvarint(len(key)) || key under the history prefix, so
// that one key's modifications are contiguous, ordered by commit, and no
// other key's entries share the prefix.
func historyPrefix(key string) []byte {
	b := binary.AppendUvarint([]byte{prefixHistory}, uint64(len(key)))
	return append(b, key...)
}

func historyKey(key string, v Version) []byte {
	b := historyPrefix(key)
	b = binary.BigEndian.AppendUint64(b, v.Block)
	return binary.BigEndian.AppendUint32(b, v.Tx)
}

// store is the LevelDB database and the file storage it runs on (which
// leveldb.Open leaves to its caller to close).
type store struct {
	*leveldb.DB
	files storage.Storage
}

// Close closes the database, then its file storage.
func (s *store) Close() error { return errors.Join(s.DB.Close(), s.files.Close()) }

// openStore opens the LevelDB store in dir: created if it does not exist
// (unless readOnly), else opened with every LevelDB check strict, so that a
// damaged journal, manifest or table is an error wrapping ErrCorrupt
// instead of records silently dropped. A bbolt ledger.db left by an earlier
// version is refused, and so is a missing or empty store in a directory
// whose chain anchor records blocks. Unless readOnly, the store's
// directory and files are kept 0700 and 0600, including those LevelDB
// creates later.
func openStore(dir string, readOnly bool, log *slog.Logger) (*store, error) {
	old := filepath.Join(dir, oldStoreFile)
	switch _, err := os.Stat(old); {
	case err == nil:
		return nil, fmt.Errorf("%w: %s is a bbolt ledger written by an earlier version, which this version cannot read; move it away to start a new chain", ErrStoreFormat, old)
	case !errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("look for an old store: %w", err)
	}
	path := filepath.Join(dir, storeDirName)
	exists, err := storeExists(path)
	if err != nil {
		return nil, err
	}
	if !exists {
		a, found, err := readAnchor(dir)
		if err != nil {
			return nil, err
		}
		if found {
			return nil, &TamperError{Block: 0, Reason: fmt.Sprintf("the store %s is missing or empty, but %s records a chain of %d blocks: the store's files were lost", path, anchorFileName, a.height)}
		}
		if readOnly {
			return nil, fmt.Errorf("no embedded ledger store in %s: %w", dir, fs.ErrNotExist)
		}
		if err := os.MkdirAll(path, dirPerm); err != nil {
			return nil, fmt.Errorf("create store: %w", err)
		}
	}
	files, err := storage.OpenFile(path, readOnly)
	if err != nil {
		return nil, fmt.Errorf("open store %s (is another process using it?): %w", path, err)
	}
	if !readOnly {
		if err := enforcePerms(path); err != nil {
			return nil, errors.Join(err, files.Close())
		}
		files = &permStorage{Storage: files, dir: path, log: log}
	}
	db, err := leveldb.Open(files, &opt.Options{
		// Every check LevelDB has: a journal, manifest or table whose
		// checksum fails is an error, never a record dropped.
		Strict:         opt.StrictAll,
		ErrorIfMissing: exists,
		ReadOnly:       readOnly,
		// Blocks hold up to maxBlockBytes of writes; a larger buffer means
		// fewer, larger level-0 tables to compact.
		WriteBuffer:         32 << 20,
		CompactionTableSize: 8 << 20,
		BlockCacheCapacity:  32 << 20,
		// Most reads the chaincode makes on the hot path are of absent
		// keys (duplicate and replay checks): the filter answers them
		// without reading a table block.
		Filter: filter.NewBloomFilter(10),
		// Every block goes through the journal, so that one synced
		// write makes it durable and atomic, however large it is.
		DisableLargeBatchTransaction: true,
	})
	if err != nil {
		err = errors.Join(storeError(path, exists, err), files.Close())
		return nil, err
	}
	return &store{DB: db, files: files}, nil
}

// storeExists reports whether path holds a LevelDB store: anything but the
// LOCK and LOG files LevelDB creates before the store itself.
func storeExists(path string) (bool, error) {
	entries, err := os.ReadDir(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read store directory: %w", err)
	}
	for _, e := range entries {
		switch e.Name() {
		case "LOCK", "LOG", "LOG.old":
		default:
			return true, nil
		}
	}
	return false, nil
}

// storeError explains why LevelDB did not open the store at path.
func storeError(path string, existed bool, err error) error {
	switch {
	case existed && errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%w: a file of the store %s is missing (%w): restore the ledger directory from a backup", ErrCorrupt, path, err)
	case isCorrupted(err):
		return fmt.Errorf("%w: LevelDB refuses a damaged file in %s (%w); the ledger is not opened rather than dropping committed records: restore the ledger directory from a backup", ErrCorrupt, path, err)
	}
	return fmt.Errorf("open store %s: %w", path, err)
}

// reader is the read access the stub and the validator need: a LevelDB
// snapshot, or a snapshot seen through the block being built.
type reader interface {
	Get(key []byte, ro *opt.ReadOptions) ([]byte, error)
	NewIterator(slice *util.Range, ro *opt.ReadOptions) iterator.Iterator
}

// view is committed state at one point, as a LevelDB snapshot, plus (in
// the committer only) the writes of the transactions already taken into
// the block being built.
type view struct {
	snap  *leveldb.Snapshot
	block *pendingBlock
}

// pendingBlock is what the committer has taken into the block it is
// building: state writes (so later transactions of the block see them, as
// in a Fabric block) and the records the block will write.
type pendingBlock struct {
	num uint64
	// state maps state store keys to version || value; an empty value is
	// a deletion.
	state *memdb.DB
	// history holds the block's modifications per key, oldest first.
	history map[string][]pendingModification
	// txs are the encoded transactions taken so far.
	txs [][]byte
	// writeSet hashes the writes of the transactions taken so far.
	writeSet *writeSetHash
	batch    *leveldb.Batch
	// keys are the state keys the block writes, in order (repeats kept).
	keys []string
}

// wrote reports whether a transaction already taken into the block wrote
// (or deleted) key.
func (pb *pendingBlock) wrote(key string) bool {
	return pb != nil && pb.state.Contains(stateKey(key))
}

func newPendingBlock(num uint64) *pendingBlock {
	return &pendingBlock{
		num:      num,
		state:    memdb.New(comparer.DefaultComparer, 0),
		history:  make(map[string][]pendingModification),
		writeSet: newWriteSetHash(),
		batch:    new(leveldb.Batch),
	}
}

// getState returns the stored state value (version || value) of key, nil
// if absent.
func (v *view) getState(key string) ([]byte, error) {
	sk := stateKey(key)
	if v.block != nil {
		if val, err := v.block.state.Get(sk); err == nil {
			if len(val) == 0 {
				return nil, nil
			}
			return val, nil
		}
	}
	val, err := v.snap.Get(sk, nil)
	if errors.Is(err, leveldb.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read state %q: %w", key, err)
	}
	return val, nil
}

// stateIterator walks state keys in [start, end) in key order. Key and
// Value stay valid until the next call to next.
func (v *view) stateIterator(start, end string) *stateIterator {
	r := stateRange(start, end)
	it := &stateIterator{base: v.snap.NewIterator(r, nil)}
	it.baseOK = it.base.Next()
	if v.block != nil && v.block.state.Len() > 0 {
		it.over = v.block.state.NewIterator(r)
		it.overOK = it.over.Next()
	}
	return it
}

// stateIterator merges committed state with the pending block's writes,
// which take precedence; deletions hide committed keys.
type stateIterator struct {
	base, over     iterator.Iterator
	baseOK, overOK bool
	key, value     []byte // current entry: state key without prefix, stored value
}

// next moves to the next live key; false at the end or on error (see err).
func (it *stateIterator) next() bool {
	for {
		if !it.baseOK && !it.overOK {
			it.key, it.value = nil, nil
			return false
		}
		fromOver := it.overOK && (!it.baseOK || bytes.Compare(it.over.Key(), it.base.Key()) <= 0)
		if !fromOver {
			it.key = append(it.key[:0], it.base.Key()[1:]...)
			it.value = append(it.value[:0], it.base.Value()...)
			it.baseOK = it.base.Next()
			return true
		}
		if it.baseOK && bytes.Equal(it.over.Key(), it.base.Key()) {
			it.baseOK = it.base.Next()
		}
		live := len(it.over.Value()) > 0
		if live {
			it.key = append(it.key[:0], it.over.Key()[1:]...)
			it.value = append(it.value[:0], it.over.Value()...)
		}
		it.overOK = it.over.Next()
		if live {
			return true
		}
	}
}

func (it *stateIterator) err() error {
	if err := it.base.Error(); err != nil {
		return fmt.Errorf("read state: %w", err)
	}
	return nil
}

func (it *stateIterator) release() {
	it.base.Release()
	if it.over != nil {
		it.over.Release()
	}
}

// loadBlock reads block n's header record and raw transactions. found is
// false if the block has no header record; stored bytes that do not parse
// or do not match the header's transaction count give an error wrapping
// errCorrupt.
func loadBlock(r reader, n uint64) (rec headerRecord, txs [][]byte, found bool, err error) {
	raw, err := r.Get(blockKey(n), nil)
	if errors.Is(err, leveldb.ErrNotFound) {
		return headerRecord{}, nil, false, nil
	}
	if err != nil {
		return headerRecord{}, nil, false, fmt.Errorf("read block %d: %w", n, err)
	}
	rec, err = decodeHeaderRecord(raw)
	if err != nil {
		return headerRecord{}, nil, true, err
	}
	count := rec.txCount
	it := r.NewIterator(&util.Range{Start: blockTxKey(n, 0), Limit: blockKey(n + 1)}, nil)
	defer it.Release()
	for it.Next() {
		i := uint64(len(txs))
		if i >= count || !bytes.Equal(it.Key(), blockTxKey(n, uint32(i))) {
			return headerRecord{}, nil, true, fmt.Errorf("%w: transaction records do not match the header's count of %d", errCorrupt, count)
		}
		txs = append(txs, bytes.Clone(it.Value()))
	}
	if err := it.Error(); err != nil {
		return headerRecord{}, nil, true, fmt.Errorf("read block %d: %w", n, err)
	}
	if uint64(len(txs)) != count {
		return headerRecord{}, nil, true, fmt.Errorf("%w: %d transaction records, the header says %d", errCorrupt, len(txs), count)
	}
	return rec, txs, true, nil
}

// putBlock adds block h with its seal and encoded transactions to batch.
func putBlock(batch *leveldb.Batch, h BlockHeader, txs [][]byte, seal *blockSeal) {
	batch.Put(blockKey(h.Number), encodeHeaderRecord(h, len(txs), seal))
	for i, tx := range txs {
		batch.Put(blockTxKey(h.Number, uint32(i)), tx)
	}
}
