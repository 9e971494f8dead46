package gateway

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/medprov/medprov/envelope"
	"github.com/medprov/medprov/ledger"
	"github.com/medprov/medprov/wire"
)

// deviceKey is what the gateway caches of a registered device.
type deviceKey struct {
	ID        string
	PatientID string
	Status    string
	key       *ecdsa.PublicKey
	fetched   time.Time
}

// actorKey is what the gateway caches of a registered actor.
type actorKey struct {
	ID     string
	Role   string
	Status string
	// Org is the MSP ID of the actor's org, whose relying party its
	// passkeys are checked against.
	Org string
	// key is nil for an actor that signs with passkeys only.
	key     *ecdsa.PublicKey
	fetched time.Time
}

// errUnknown marks a lookup of an ID the ledger does not hold.
var errUnknown = errors.New("not registered on the ledger")

// unknownTTL is how long a lookup of an ID the ledger does not hold is
// remembered: long enough that a flood naming unregistered IDs does not
// become a flood of ledger queries, short enough that a registration made
// through another gateway is seen soon.
const unknownTTL = 2 * time.Second

// keyCache holds device and actor keys read from the ledger for ttl. A
// device revocation seen by this gateway (its own route or a ledger event)
// drops the entry at once; the ttl bounds staleness for revocations made
// through another gateway. The chaincode re-checks every reading anyway.
//
// Every map is bounded, least recently used first out: registered keys
// (Limits.MaxKeys per kind) and, apart from them so that a flood of junk
// IDs cannot push out the keys of genuine devices, the IDs found
// unregistered (Limits.MaxUnknownKeys).
type keyCache struct {
	chain   *chain
	ttl     time.Duration
	now     func() time.Time
	dev     *lru.Cache[string, *deviceKey]
	act     *lru.Cache[string, *actorKey]
	unknown *lru.Cache[string, time.Time] // "d\x00id" or "a\x00id": until when
}

func newKeyCache(c *chain, ttl time.Duration, now func() time.Time, size, unknown int) *keyCache {
	return &keyCache{chain: c, ttl: ttl, now: now, dev: mustLRU[*deviceKey](size), act: mustLRU[*actorKey](size),
		unknown: mustLRU[time.Time](unknown)}
}

func mustLRU[V any](size int) *lru.Cache[string, V] {
	c, err := lru.New[string, V](size)
	if err != nil {
		panic("gateway: cache bound must be positive") // setDefaults guarantees it
	}
	return c
}

// isUnknown reports whether key was found unregistered less than
// unknownTTL ago.
func (k *keyCache) isUnknown(key string) bool {
	until, ok := k.unknown.Get(key)
	return ok && k.now().Before(until)
}

func (k *keyCache) device(ctx context.Context, id string) (*deviceKey, error) {
	if d, ok := k.dev.Get(id); ok && k.now().Sub(d.fetched) < k.ttl {
		return d, nil
	}
	if k.isUnknown("d\x00" + id) {
		return nil, fmt.Errorf("device: %w", errUnknown)
	}
	rec, err := k.chain.device(ctx, id)
	if isNotFound(err) {
		k.dev.Remove(id)
		k.unknown.Add("d\x00"+id, k.now().Add(unknownTTL))
		return nil, fmt.Errorf("device: %w", errUnknown)
	}
	if err != nil {
		return nil, err
	}
	pub, err := envelope.ParsePublicKey([]byte(rec.PublicKey))
	if err != nil {
		return nil, fmt.Errorf("device key on ledger: %w", err)
	}
	d := &deviceKey{ID: rec.ID, PatientID: rec.PatientID, Status: rec.Status, key: pub, fetched: k.now()}
	k.dev.Add(id, d)
	return d, nil
}

// actor returns the actor's cached key; an ID the ledger does not hold
// fails with errUnknown.
func (k *keyCache) actor(ctx context.Context, id string) (*actorKey, error) {
	if a, ok := k.act.Get(id); ok && k.now().Sub(a.fetched) < k.ttl {
		return a, nil
	}
	return k.fetchActor(ctx, id)
}

// freshActor is actor, except that an entry older than minAge is read
// again from the ledger: for a signature that does not verify under the
// cached key, in case the actor's key changed through another gateway.
// minAge bounds the ledger queries that forged signatures can cause.
func (k *keyCache) freshActor(ctx context.Context, id string, minAge time.Duration) (*actorKey, error) {
	if a, ok := k.act.Get(id); ok && k.now().Sub(a.fetched) < minAge {
		return a, nil
	}
	return k.fetchActor(ctx, id)
}

func (k *keyCache) fetchActor(ctx context.Context, id string) (*actorKey, error) {
	if k.isUnknown("a\x00" + id) {
		return nil, fmt.Errorf("actor: %w", errUnknown)
	}
	rec, err := k.chain.actor(ctx, id)
	if isNotFound(err) {
		k.act.Remove(id)
		k.unknown.Add("a\x00"+id, k.now().Add(unknownTTL))
		return nil, fmt.Errorf("actor: %w", errUnknown)
	}
	if err != nil {
		return nil, err
	}
	var pub *ecdsa.PublicKey // none: a passkey-only actor
	if rec.PublicKey != "" {
		if pub, err = envelope.ParsePublicKey([]byte(rec.PublicKey)); err != nil {
			return nil, fmt.Errorf("actor key on ledger: %w", err)
		}
	}
	a := &actorKey{ID: rec.ID, Role: rec.Role, Status: rec.Status, Org: rec.Org, key: pub, fetched: k.now()}
	k.act.Add(id, a)
	return a, nil
}

// forgetDevice drops a device from the cache (on revocation or registration).
func (k *keyCache) forgetDevice(id string) {
	k.dev.Remove(id)
	k.unknown.Remove("d\x00" + id)
}

func isNotFound(err error) bool {
	var ce *ledger.ChaincodeError
	if errors.As(err, &ce) {
		if cc, ok := wire.ParseError(ce.Message); ok {
			return cc.Code == wire.CodeNotFound
		}
	}
	return false
}

// forgetActor drops an actor from the cache (on registration or any change
// of its key or status).
func (k *keyCache) forgetActor(id string) {
	k.act.Remove(id)
	k.unknown.Remove("a\x00" + id)
}
