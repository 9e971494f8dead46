package embedded

// StoreDir is the LevelDB directory inside Config.Dir.
const StoreDir = storeDirName

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
	records := map[string][]byte{string(blockKey(h.Number)): encodeHeaderRecord(h, len(encoded))}
	for i, tx := range encoded {
		records[string(blockTxKey(h.Number, uint32(i)))] = tx
	}
	return records
}
