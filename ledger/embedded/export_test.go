package embedded

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/opt"

	"github.com/medprov/medprov/envelope"
)

// BlockHeaderKey is the store key of block n's header record.
func BlockHeaderKey(n uint64) []byte { return blockKey(n) }

// BlockTxKey is the store key of transaction i of block n.
func BlockTxKey(n uint64, i uint32) []byte { return blockTxKey(n, i) }

// EventKey is the store key of the event of transaction i of block n.
func EventKey(n uint64, i uint32) []byte { return eventKey(n, i) }

// ForgeBlock re-encodes blk after change, with a data hash that matches the
// forged transactions: the records (store key to bytes) a careful attacker
// with file access would write. The block keeps its orderer signature,
// which no longer verifies.
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
	var seal *blockSeal
	if blk.Signature != nil {
		seal = &blockSeal{signer: blk.Signer, signature: blk.Signature}
	}
	records := map[string][]byte{string(blockKey(h.Number)): encodeHeaderRecord(h, len(encoded), seal)}
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

// Store formats of earlier versions.
const (
	// FormatUnsigned is the format whose blocks carry write-set hashes
	// but no signatures.
	FormatUnsigned = unsignedStoreFormat
	// FormatLegacy is the format whose blocks carry neither.
	FormatLegacy = legacyStoreFormat
)

// Downgrade rewrites the closed ledger in dir as an earlier version would
// have written it, in store format (FormatUnsigned or FormatLegacy):
// blocks and transactions without signatures, a genesis block without a
// channel configuration, for FormatLegacy headers without write-set hashes
// and no write-set marker (the chain relinked over the rewritten headers),
// and a local MSP without the orderer and peer identities. The chain
// anchor names the new tip (FormatUnsigned) or is removed (FormatLegacy,
// which had none).
func Downgrade(dir, format string) error {
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
		rec, raw, _, err := loadBlock(db, n)
		if err != nil {
			return errors.Join(err, db.Close())
		}
		for i, r := range raw {
			tx, err := decodeTransaction(r)
			if err != nil {
				return errors.Join(err, db.Close())
			}
			tx.Signature, tx.Endorsements = nil, nil
			raw[i] = tx.encode()
			b.Put(blockTxKey(n, uint32(i)), raw[i])
		}
		h := rec.header
		h.PreviousHash, h.DataHash = prev, dataHash(raw)
		if format == legacyStoreFormat {
			h.WriteSetHash = nil
		}
		b.Put(blockKey(n), encodeHeaderRecord(h, len(raw), nil))
		prev = h.Hash()
	}
	b.Put(keyTip, prev)
	b.Put(keyFormat, []byte(format))
	b.Delete(keySignedFrom)
	if format == legacyStoreFormat {
		b.Delete(keyWriteSetFrom)
	}
	if err := db.Write(b, &opt.WriteOptions{Sync: true}); err != nil {
		return errors.Join(err, db.Close())
	}
	if err := db.Close(); err != nil {
		return err
	}
	for _, d := range []string{orderersDir, peersDir} {
		if err := os.RemoveAll(filepath.Join(dir, mspDirName, d)); err != nil {
			return err
		}
	}
	if format == legacyStoreFormat {
		return os.Remove(filepath.Join(dir, anchorFileName))
	}
	return os.WriteFile(filepath.Join(dir, anchorFileName), anchor{height: height, tip: prev}.encode(), 0o600)
}

// ResealChain rewrites the closed ledger in dir as someone holding the
// orderer's key (it is in dir/msp) but no other would: change alters the
// transactions of block n (n > 0, a signed block), whose data and
// write-set hashes are recomputed, and every header from n on is relinked
// and signed again with the orderer's key; the tip and the chain anchor
// name the new last block. Signatures change leaves alone are kept.
func ResealChain(dir string, n uint64, change func(*Transaction)) error {
	keyPEM, err := os.ReadFile(filepath.Join(dir, mspDirName, orderersDir, ordererName, keyFile))
	if err != nil {
		return err
	}
	key, err := envelope.ParsePrivateKey(keyPEM)
	if err != nil {
		return err
	}
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
	for i := n; i < height; i++ {
		rec, raw, _, err := loadBlock(db, i)
		if err != nil {
			return errors.Join(err, db.Close())
		}
		if rec.seal == nil {
			return errors.Join(fmt.Errorf("block %d is not signed", i), db.Close())
		}
		h := rec.header
		if i == n {
			blk, err := decodeBlock(rec, raw)
			if err != nil {
				return errors.Join(err, db.Close())
			}
			for j := range blk.Transactions {
				change(&blk.Transactions[j])
				raw[j] = blk.Transactions[j].encode()
				b.Put(blockTxKey(i, uint32(j)), raw[j])
			}
			h.DataHash, h.WriteSetHash = dataHash(raw), WriteSetHash(blk.Transactions)
		} else {
			h.PreviousHash = prev
		}
		prev = h.Hash()
		seal := *rec.seal
		if seal.signature, err = sign(key, prev); err != nil {
			return errors.Join(err, db.Close())
		}
		b.Put(blockKey(i), encodeHeaderRecord(h, len(raw), &seal))
	}
	b.Put(keyTip, prev)
	if err := db.Write(b, &opt.WriteOptions{Sync: true}); err != nil {
		return errors.Join(err, db.Close())
	}
	if err := db.Close(); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, anchorFileName), anchor{height: height, tip: prev}.encode(), 0o600)
}
