package embedded

// ForgeBlock re-encodes blk after change, with a data hash that matches the
// forged transactions: what a careful attacker with file access would write.
func ForgeBlock(blk *Block, change func(*Transaction)) []byte {
	var encoded [][]byte
	for i := range blk.Transactions {
		change(&blk.Transactions[i])
		encoded = append(encoded, blk.Transactions[i].encode())
	}
	h := blk.Header
	h.DataHash = dataHash(encoded)
	return encodeBlock(h, encoded)
}
