package gateway

import (
	"container/heap"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Nonce kinds: the nonces of signed GETs and those of signed actions are
// separate namespaces.
const (
	nonceGET    = "get"
	nonceAction = "action"
)

// nonceSlack is how long past the signature window a nonce is kept, so that
// a clock stepped back a little does not re-admit it.
const nonceSlack = time.Minute

var (
	bucketNonces = []byte("nonces")
	bucketMeta   = []byte("meta")
	keyFloor     = []byte("floor")
)

// nonceStore remembers the nonces of accepted signed requests until their
// issuedAt has left the signature window (after which the window alone
// refuses them), so that none is accepted twice.
//
// With a path the store is durable: a nonce is written to a bbolt file
// before the request it authenticates proceeds, and the file is loaded at
// start, so a nonce stays refused across restarts and a captured
// X-Medprov-Signature header does not replay after one. The cost is one
// fsync per signed GET, shared by concurrent requests (bbolt batches
// them). The cheaper alternative, refusing after a restart every signature
// issued before the process started, was rejected: the window admits an
// issuedAt up to the window ahead of the gateway's clock (a client clock
// running fast), so such a header would still replay after a restart, and
// closing that gap would refuse every client for a whole window after each
// restart. Without a path the store is in memory only (tests).
//
// The store holds at most size nonces. When full, the nonce issued
// earliest is dropped and its issuedAt becomes the floor: any signature
// issued at or before the floor is refused as if replayed, so dropping a
// nonce never re-opens a replay. Under sustained overload the floor trails
// the clock by about size/rate, and only signatures older than that are
// refused. The floor is durable too.
//
// Each gateway has its own store: a header accepted by one gateway of a
// deployment is not known to another.
type nonceStore struct {
	keep time.Duration // how long after issuedAt a nonce is kept
	size int
	now  func() time.Time
	db   *bolt.DB // nil: memory only

	mu    sync.Mutex
	seen  map[nonceKey]struct{}
	order nonceHeap // the same nonces, earliest expiry first
	floor int64     // unix ns; see the type's comment
	// Not yet written to db: nonces dropped from memory, and whether the
	// floor moved.
	gone       []nonceKey
	floorMoved bool
}

type nonceKey [sha256.Size]byte

func keyOf(kind, actor, nonce string) nonceKey {
	return sha256.Sum256([]byte(kind + "\x00" + actor + "\x00" + nonce))
}

// openNonceStore opens (creating it 0600) the store at path, or an
// in-memory store when path is empty. window is the signature window.
func openNonceStore(path string, window time.Duration, size int, now func() time.Time) (*nonceStore, error) {
	n := &nonceStore{keep: window + nonceSlack, size: max(size, 1), now: now, seen: map[nonceKey]struct{}{}}
	if path == "" {
		return n, nil
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("nonce store %s: %w", path, err)
	}
	db.MaxBatchDelay = time.Millisecond
	if err := db.Update(n.load); err != nil {
		return nil, errors.Join(fmt.Errorf("nonce store %s: %w", path, err), db.Close())
	}
	n.db = db
	return n, nil
}

// load reads the floor and the unexpired nonces of the file and deletes the
// expired ones.
func (n *nonceStore) load(tx *bolt.Tx) error {
	meta, err := tx.CreateBucketIfNotExists(bucketMeta)
	if err != nil {
		return err
	}
	if v := meta.Get(keyFloor); len(v) == 8 {
		n.floor = int64(binary.BigEndian.Uint64(v))
	}
	b, err := tx.CreateBucketIfNotExists(bucketNonces)
	if err != nil {
		return err
	}
	now := n.now().UnixNano()
	var drop [][]byte
	err = b.ForEach(func(k, v []byte) error {
		if len(k) != sha256.Size || len(v) != 8 || int64(binary.BigEndian.Uint64(v)) <= now {
			drop = append(drop, append([]byte(nil), k...))
			return nil
		}
		var key nonceKey
		copy(key[:], k)
		n.seen[key] = struct{}{}
		n.order = append(n.order, nonceEntry{exp: int64(binary.BigEndian.Uint64(v)), key: key})
		return nil
	})
	if err != nil {
		return err
	}
	heap.Init(&n.order)
	for len(n.order) > n.size {
		n.evict()
	}
	for _, k := range drop {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return n.flush(tx, n.takeWrites())
}

// use reports whether (kind, actor, nonce) is new and, if so, remembers it
// (durably, when the store has a file) before returning. issued must lie
// within the signature window: the caller checks it first.
func (n *nonceStore) use(kind, actor, nonce string, issued time.Time) (bool, error) {
	k := keyOf(kind, actor, nonce)
	exp := issued.Add(n.keep).UnixNano()
	n.mu.Lock()
	if n.refused(k, issued) {
		n.mu.Unlock()
		return false, nil
	}
	n.prune()
	n.seen[k] = struct{}{}
	heap.Push(&n.order, nonceEntry{exp: exp, key: k})
	for len(n.order) > n.size {
		n.evict()
	}
	_, kept := n.seen[k] // not kept: it was the earliest, now under the floor
	w := n.takeWrites()
	n.mu.Unlock()
	if !kept {
		return false, nil
	}
	return true, n.persist(w, &k, exp)
}

// seenBefore reports whether use would refuse (kind, actor, nonce) now,
// without remembering it.
func (n *nonceStore) seenBefore(kind, actor, nonce string, issued time.Time) bool {
	k := keyOf(kind, actor, nonce)
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.refused(k, issued)
}

// len returns the number of nonces remembered.
func (n *nonceStore) len() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.seen)
}

// close writes what is pending and closes the file.
func (n *nonceStore) close() error {
	if n.db == nil {
		return nil
	}
	n.mu.Lock()
	w := n.takeWrites()
	n.mu.Unlock()
	return errors.Join(n.persist(w, nil, 0), n.db.Close())
}

// refused: under the floor or remembered. n.mu is held.
func (n *nonceStore) refused(k nonceKey, issued time.Time) bool {
	if issued.UnixNano() <= n.floor {
		return true
	}
	_, ok := n.seen[k]
	return ok
}

// prune forgets nonces whose time is up. n.mu is held.
func (n *nonceStore) prune() {
	now := n.now().UnixNano()
	for len(n.order) > 0 && n.order[0].exp <= now {
		e := heap.Pop(&n.order).(nonceEntry)
		delete(n.seen, e.key)
		n.gone = append(n.gone, e.key)
	}
}

// evict drops the nonce issued earliest and raises the floor to its
// issuedAt. n.mu is held.
func (n *nonceStore) evict() {
	e := heap.Pop(&n.order).(nonceEntry)
	delete(n.seen, e.key)
	n.gone = append(n.gone, e.key)
	if issued := e.exp - int64(n.keep); issued > n.floor {
		n.floor, n.floorMoved = issued, true
	}
}

// nonceWrites is what a write to the file must apply besides a new nonce.
type nonceWrites struct {
	gone  []nonceKey
	floor int64 // 0: unchanged
}

// takeWrites hands over the pending writes. n.mu is held.
func (n *nonceStore) takeWrites() nonceWrites {
	w := nonceWrites{gone: n.gone}
	if n.floorMoved {
		w.floor = n.floor
	}
	n.gone, n.floorMoved = nil, false
	return w
}

// persist writes w and, if k is not nil, the nonce k with its expiry.
func (n *nonceStore) persist(w nonceWrites, k *nonceKey, exp int64) error {
	if n.db == nil || (k == nil && len(w.gone) == 0 && w.floor == 0) {
		return nil
	}
	err := n.db.Batch(func(tx *bolt.Tx) error {
		if err := n.flush(tx, w); err != nil {
			return err
		}
		if k == nil {
			return nil
		}
		var v [8]byte
		binary.BigEndian.PutUint64(v[:], uint64(exp))
		return tx.Bucket(bucketNonces).Put(k[:], v[:])
	})
	if err != nil {
		return fmt.Errorf("nonce store: %w", err)
	}
	return nil
}

// flush deletes dropped nonces (unless remembered again since) and records
// a raised floor. It may run more than once per write (bbolt retries the
// calls of a failed batch one by one), so it only sets values.
func (n *nonceStore) flush(tx *bolt.Tx, w nonceWrites) error {
	b := tx.Bucket(bucketNonces)
	for _, k := range w.gone {
		n.mu.Lock()
		_, back := n.seen[k]
		n.mu.Unlock()
		if back {
			continue
		}
		if err := b.Delete(k[:]); err != nil {
			return err
		}
	}
	if w.floor == 0 {
		return nil
	}
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], uint64(w.floor))
	return tx.Bucket(bucketMeta).Put(keyFloor, v[:])
}

type nonceEntry struct {
	exp int64 // unix ns
	key nonceKey
}

// nonceHeap orders nonces by expiry (container/heap).
type nonceHeap []nonceEntry

func (h nonceHeap) Len() int           { return len(h) }
func (h nonceHeap) Less(i, j int) bool { return h[i].exp < h[j].exp }
func (h nonceHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *nonceHeap) Push(x any)        { *h = append(*h, x.(nonceEntry)) }
func (h *nonceHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}
