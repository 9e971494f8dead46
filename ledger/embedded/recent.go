package embedded

// recentBlocks is how many of the last blocks recentWrites remembers. A
// transaction simulated on a snapshot older than that is validated by
// reading every key again.
const recentBlocks = 64

// recentWrites remembers which state keys the last blocks wrote, so that
// the committer validates a transaction's reads by what changed since the
// snapshot it was simulated on, instead of reading every key again: a key
// no block since that snapshot wrote still has the version the
// transaction read. Under load nearly every read is of an absent key (the
// duplicate checks), and reading it again cost as much as reading it the
// first time. Only the committer uses it.
type recentWrites struct {
	// last maps a state key to the last block in the window that wrote it.
	last map[string]uint64
	// keys holds the keys written by blocks from, from+1, ...
	keys [][]string
	from uint64
}

// newRecentWrites starts an empty window at height: it covers snapshots
// taken at height or later.
func newRecentWrites(height uint64) *recentWrites {
	return &recentWrites{last: make(map[string]uint64), from: height}
}

// add records the keys block num wrote; blocks are added in order.
func (r *recentWrites) add(num uint64, keys []string) {
	if num != r.from+uint64(len(r.keys)) {
		// Not the next block (cannot happen with one committer): start
		// the window anew rather than answer wrongly.
		clear(r.last)
		r.keys, r.from = nil, num
	}
	r.keys = append(r.keys, keys)
	for _, k := range keys {
		r.last[k] = num
	}
	for len(r.keys) > recentBlocks {
		for _, k := range r.keys[0] {
			if r.last[k] == r.from {
				delete(r.last, k)
			}
		}
		r.keys[0] = nil
		r.keys = r.keys[1:]
		r.from++
	}
}

// covers reports whether the window holds every block committed since a
// snapshot of a chain of height blocks.
func (r *recentWrites) covers(height uint64) bool {
	return height >= r.from
}

// writtenSince reports whether a block at or after height wrote key.
func (r *recentWrites) writtenSince(key string, height uint64) bool {
	n, ok := r.last[key]
	return ok && n >= height
}
