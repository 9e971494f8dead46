package envelope

import (
	"crypto/ecdsa"
	"crypto/sha256"
	"sync"
	"sync/atomic"
)

// VerifierFunc gives a verification function the VerifyDigest method of
// VerifyMemo, so callers can take either; VerifierFunc(VerifyDigest)
// verifies every signature with ECDSA.
type VerifierFunc func(pub *ecdsa.PublicKey, digest, sig []byte) error

// VerifyDigest calls f.
func (f VerifierFunc) VerifyDigest(pub *ecdsa.PublicKey, digest, sig []byte) error {
	return f(pub, digest, sig)
}

// VerifyMemo verifies signatures over digests and remembers the triples
// (public key, digest, signature) that verified, so that a second check of
// the identical triple in the same process costs a hash instead of an ECDSA
// verification. A triple is remembered only after a real verification
// succeeded; a miss (never seen, or evicted) verifies for real, so the memo
// never changes an answer, only its cost. It is safe for concurrent use.
//
// medprov uses one memo only where the gateway and the chaincode run in the
// same process (the embedded ledger): the gateway verifies every device
// signature before it acknowledges a reading, and the in-process chaincode
// then checks the same triple again. On Fabric each endorsing peer verifies
// independently and no memo is shared.
type VerifyMemo struct {
	computed   atomic.Uint64
	remembered atomic.Uint64

	mu   sync.Mutex
	set  map[[sha256.Size]byte]struct{}
	ring [][sha256.Size]byte
	next int
}

// NewVerifyMemo returns a memo holding at most capacity triples; the oldest
// is forgotten first.
func NewVerifyMemo(capacity int) *VerifyMemo {
	capacity = max(capacity, 1)
	return &VerifyMemo{set: make(map[[sha256.Size]byte]struct{}, capacity), ring: make([][sha256.Size]byte, 0, capacity)}
}

// VerifyDigest is VerifyDigest with the memo: it returns nil at once for a
// triple that verified before, and otherwise verifies it.
func (m *VerifyMemo) VerifyDigest(pub *ecdsa.PublicKey, digest, sig []byte) error {
	if pub == nil {
		return ErrBadSignature
	}
	pk, err := pub.Bytes()
	if err != nil {
		return ErrBadSignature
	}
	h := sha256.New()
	for _, part := range [][]byte{pk, digest, sig} {
		var n [4]byte
		n[0], n[1], n[2], n[3] = byte(len(part)>>24), byte(len(part)>>16), byte(len(part)>>8), byte(len(part))
		h.Write(n[:])
		h.Write(part)
	}
	var k [sha256.Size]byte
	h.Sum(k[:0])
	m.mu.Lock()
	_, ok := m.set[k]
	m.mu.Unlock()
	if ok {
		m.remembered.Add(1)
		return nil
	}
	m.computed.Add(1)
	if err := VerifyDigest(pub, digest, sig); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.set[k]; ok {
		return nil
	}
	if len(m.ring) < cap(m.ring) {
		m.ring = append(m.ring, k)
	} else {
		delete(m.set, m.ring[m.next])
		m.ring[m.next] = k
		m.next = (m.next + 1) % len(m.ring)
	}
	m.set[k] = struct{}{}
	return nil
}

// Counts returns how many checks ran a real ECDSA verification and how many
// were answered from the memo, since the memo was made.
func (m *VerifyMemo) Counts() (computed, remembered uint64) {
	return m.computed.Load(), m.remembered.Load()
}
