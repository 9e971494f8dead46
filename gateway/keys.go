package gateway

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/medprov/medprov/wire"

	"github.com/medprov/medprov/envelope"
	"github.com/medprov/medprov/ledger"
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
	ID      string
	Role    string
	Status  string
	key     *ecdsa.PublicKey
	fetched time.Time
}

// errUnknown marks a lookup of an ID the ledger does not hold.
var errUnknown = errors.New("not registered on the ledger")

// keyCache holds device and actor keys read from the ledger for ttl. A
// device revocation seen by this gateway (its own route or a ledger event)
// drops the entry at once; the ttl bounds staleness for revocations made
// through another gateway. The chaincode re-checks every reading anyway.
type keyCache struct {
	chain *chain
	ttl   time.Duration
	now   func() time.Time
	mu    sync.RWMutex
	dev   map[string]*deviceKey
	act   map[string]*actorKey
}

func newKeyCache(c *chain, ttl time.Duration, now func() time.Time) *keyCache {
	return &keyCache{chain: c, ttl: ttl, now: now, dev: map[string]*deviceKey{}, act: map[string]*actorKey{}}
}

func (k *keyCache) device(ctx context.Context, id string) (*deviceKey, error) {
	k.mu.RLock()
	d, ok := k.dev[id]
	k.mu.RUnlock()
	if ok && k.now().Sub(d.fetched) < k.ttl {
		if d.key == nil {
			return nil, fmt.Errorf("device: %w", errUnknown)
		}
		return d, nil
	}
	rec, err := k.chain.device(ctx, id)
	if isNotFound(err) {
		// Remember briefly that it is unknown, so a flood of readings from
		// an unregistered device does not become a flood of ledger queries.
		k.mu.Lock()
		k.dev[id] = &deviceKey{ID: id, fetched: k.now().Add(-k.ttl + 2*time.Second)}
		k.mu.Unlock()
		return nil, fmt.Errorf("device: %w", errUnknown)
	}
	if err != nil {
		return nil, err
	}
	pub, err := envelope.ParsePublicKey([]byte(rec.PublicKey))
	if err != nil {
		return nil, fmt.Errorf("device key on ledger: %w", err)
	}
	d = &deviceKey{ID: rec.ID, PatientID: rec.PatientID, Status: rec.Status, key: pub, fetched: k.now()}
	k.mu.Lock()
	k.dev[id] = d
	k.mu.Unlock()
	return d, nil
}

func (k *keyCache) actor(ctx context.Context, id string) (*actorKey, error) {
	k.mu.RLock()
	a, ok := k.act[id]
	k.mu.RUnlock()
	if ok && k.now().Sub(a.fetched) < k.ttl {
		return a, nil
	}
	rec, err := k.chain.actor(ctx, id)
	if err != nil {
		return nil, err
	}
	pub, err := envelope.ParsePublicKey([]byte(rec.PublicKey))
	if err != nil {
		return nil, fmt.Errorf("actor key on ledger: %w", err)
	}
	a = &actorKey{ID: rec.ID, Role: rec.Role, Status: rec.Status, key: pub, fetched: k.now()}
	k.mu.Lock()
	k.act[id] = a
	k.mu.Unlock()
	return a, nil
}

// forgetDevice drops a device from the cache (on revocation or registration).
func (k *keyCache) forgetDevice(id string) {
	k.mu.Lock()
	delete(k.dev, id)
	k.mu.Unlock()
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

// forgetActor drops an actor from the cache.
func (k *keyCache) forgetActor(id string) {
	k.mu.Lock()
	delete(k.act, id)
	k.mu.Unlock()
}
