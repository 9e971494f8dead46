package embedded

import (
	"errors"
	"os"
	"path/filepath"

	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/opt"
)

// BlockHeaderKey is the store key of block n's header record.
func BlockHeaderKey(n uint64) []byte { return blockKey(n) }

// BlockTxKey is the store key of transaction i of block n.
func BlockTxKey(n uint64, i uint32) []byte { return blockTxKey(n, i) }

// EventKey is the store key of the event of transaction i of block n.
func EventKey(n uint64, i uint32) []byte { return eventKey(n, i) }

// ForgeBlock re-encodes blk after change, with a data hash that matches the
// forged transactions: the records (store key to bytes) a careful attacker
// with file access would write.
func ForgeBlock(blk *Block, change func(*Transaction)) map[string][]byte {
	var encoded [][]byte
	for i := range blk.Transactions {
		change(&blk.Transactions[i])
		encoded = append(encoded, blk.Transactions[i].encode())
	}
	h := blk.Header
	h.DataHash = dataHash(encoded)
	if h.WriteSetHash != nil {
		h.WriteSetHash = WriteSetHash(blk.Transactions)
	}
	records := map[string][]byte{string(blockKey(h.Number)): encodeHeaderRecord(h, len(encoded))}
	for i, tx := range encoded {
		records[string(blockTxKey(h.Number, uint32(i)))] = tx
	}
	return records
}

// StateKey is the store key of state key key.
func StateKey(key string) []byte { return stateKey(key) }

// HistoryKey is the store key of the history entry of key written by
// transaction tx of block block.
func HistoryKey(key string, block uint64, tx uint32) []byte {
	return historyKey(key, Version{Block: block, Tx: tx})
}

// TxKey is the store key of the transaction index entry of txID.
func TxKey(txID string) []byte { return txKey(txID) }

// Meta record keys.
var (
	HeightKey = keyHeight
	TipKey    = keyTip
	FormatKey = keyFormat
)

// EncodeHeight is the stored form of a chain height.
func EncodeHeight(h uint64) []byte { return be64(h) }

// DowngradeToLegacy rewrites the closed ledger store in dir as a store of
// format leveldb/1 would hold it: headers without write-set hashes (the
// chain relinked over them), no write-set marker, no chain anchor.
func DowngradeToLegacy(dir string) error {
	db, err := leveldb.OpenFile(filepath.Join(dir, storeDirName), &opt.Options{ErrorIfMissing: true})
	if err != nil {
		return err
	}
	height, _, err := readTip(db)
	if err != nil {
		return errors.Join(err, db.Close())
	}
	b := new(leveldb.Batch)
	var prev []byte
	for n := range height {
		h, raw, _, err := loadBlock(db, n)
		if err != nil {
			return errors.Join(err, db.Close())
		}
		h.WriteSetHash, h.PreviousHash = nil, prev
		b.Put(blockKey(n), encodeHeaderRecord(h, len(raw)))
		prev = h.Hash()
	}
	b.Put(keyTip, prev)
	b.Put(keyFormat, []byte(legacyStoreFormat))
	b.Delete(keyWriteSetFrom)
	if err := db.Write(b, &opt.WriteOptions{Sync: true}); err != nil {
		return errors.Join(err, db.Close())
	}
	if err := db.Close(); err != nil {
		return err
	}
	return os.Remove(filepath.Join(dir, anchorFileName))
}
