package gateway

import (
	"context"
	"crypto/ecdsa"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/medprov/medprov/envelope"
	"github.com/medprov/medprov/wire"
)

// Passkey-signed requests. An actor action or a signed GET may be signed
// by one of the actor's passkeys instead of its PEM key (envelope.Signed
// with WebAuthn set). The gateway checks the assertion before it charges
// the actor's budget, as it checks a plain signature: the credential must
// be registered to the actor, bound to the current rpId of the actor's
// org, and the assertion must pass envelope.VerifyAssertion against that
// relying party (type, challenge SHA-256(payload), origin, rpIdHash, UP,
// UV, ES256 signature). For actions the chaincode checks all of it again,
// with the signature counter it stores; for signed GETs the gateway is the
// only checker.
//
// The signature counter: the gateway keeps, per credential, the highest
// counter it accepted, and refuses an assertion whose counter does not
// exceed the larger of that and the counter the ledger recorded, unless
// both that and the assertion's are zero (authenticators that keep no
// counter). Only actions advance the ledger's counter; a signed GET's
// counter is known to the gateway that accepted it only, and only until
// it restarts or the credential is evicted from the bounded memory
// (Limits.MaxKeys). A replayed signed GET is refused by its nonce anyway
// (the nonce store, durable across restarts), exactly as a plain one is:
// the counter adds the detection of a cloned authenticator, not replay
// protection.

// passkeyKey is what the gateway caches of a registered passkey.
type passkeyKey struct {
	CredentialID string
	ActorID      string
	RPID         string
	// SignCount is the counter the ledger held when the entry was read.
	SignCount uint32
	key       *ecdsa.PublicKey
	fetched   time.Time
}

// relyingParty is what the gateway caches of an org's relying party.
type relyingParty struct {
	envelope.RelyingParty
	fetched time.Time
}

// passkeyCache holds passkeys and relying parties read from the ledger for
// ttl, and the highest signature counter accepted per credential. Every
// map is bounded, least recently used first out; lookups of credentials
// and orgs the ledger does not hold are remembered apart (unknownTTL), so
// that a flood of junk credential ids neither reaches the ledger nor
// evicts registered passkeys.
type passkeyCache struct {
	chain   *chain
	ttl     time.Duration
	now     func() time.Time
	creds   *lru.Cache[string, *passkeyKey]
	rps     *lru.Cache[string, *relyingParty]
	unknown *lru.Cache[string, time.Time] // "p\x00credentialId" or "r\x00org": until when

	mu       sync.Mutex // serialises counter checks
	counters *lru.Cache[string, uint32]
}

func newPasskeyCache(c *chain, ttl time.Duration, now func() time.Time, size, unknown int) *passkeyCache {
	return &passkeyCache{chain: c, ttl: ttl, now: now, creds: mustLRU[*passkeyKey](size),
		rps: mustLRU[*relyingParty](size), unknown: mustLRU[time.Time](unknown), counters: mustLRU[uint32](size)}
}

func (p *passkeyCache) isUnknown(key string) bool {
	until, ok := p.unknown.Get(key)
	return ok && p.now().Before(until)
}

// credential returns the passkey with that credential id (base64url),
// read from the ledger when not cached or older than maxAge; one the
// ledger does not hold fails with errUnknown.
func (p *passkeyCache) credential(ctx context.Context, id string, maxAge time.Duration) (*passkeyKey, error) {
	if pk, ok := p.creds.Get(id); ok && p.now().Sub(pk.fetched) < maxAge {
		return pk, nil
	}
	if p.isUnknown("p\x00" + id) {
		return nil, fmt.Errorf("passkey: %w", errUnknown)
	}
	var rec wire.Passkey
	err := p.chain.evaluate(ctx, &rec, wire.FnGetPasskey, id)
	if isNotFound(err) {
		p.creds.Remove(id)
		p.unknown.Add("p\x00"+id, p.now().Add(unknownTTL))
		return nil, fmt.Errorf("passkey: %w", errUnknown)
	}
	if err != nil {
		return nil, err
	}
	pub, err := envelope.ParsePublicKey([]byte(rec.PublicKey))
	if err != nil {
		return nil, fmt.Errorf("passkey key on ledger: %w", err)
	}
	pk := &passkeyKey{CredentialID: rec.CredentialID, ActorID: rec.ActorID, RPID: rec.RPID, SignCount: rec.SignCount, key: pub, fetched: p.now()}
	p.creds.Add(id, pk)
	return pk, nil
}

// relyingParty returns the relying party of org (an MSP ID), read from the
// ledger when not cached or older than maxAge; an org without one fails
// with errUnknown.
func (p *passkeyCache) relyingParty(ctx context.Context, org string, maxAge time.Duration) (*relyingParty, error) {
	if rp, ok := p.rps.Get(org); ok && p.now().Sub(rp.fetched) < maxAge {
		return rp, nil
	}
	if p.isUnknown("r\x00" + org) {
		return nil, fmt.Errorf("relying party: %w", errUnknown)
	}
	var rec wire.RelyingParty
	err := p.chain.evaluate(ctx, &rec, wire.FnGetRelyingParty, org)
	if isNotFound(err) {
		p.rps.Remove(org)
		p.unknown.Add("r\x00"+org, p.now().Add(unknownTTL))
		return nil, fmt.Errorf("relying party: %w", errUnknown)
	}
	if err != nil {
		return nil, err
	}
	rp := &relyingParty{RelyingParty: envelope.RelyingParty{ID: rec.RPID, Origins: rec.Origins}, fetched: p.now()}
	p.rps.Add(org, rp)
	return rp, nil
}

// advance accepts counter got of credential id if it exceeds both the
// highest counter this gateway accepted and ledger, the ledger's, or if
// all are zero, and then remembers it. Check and update are one step, so
// two requests carrying the same counter cannot both pass.
func (p *passkeyCache) advance(id string, ledger, got uint32) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	seen, _ := p.counters.Get(id)
	stored := max(seen, ledger)
	if stored == 0 && got == 0 {
		return true
	}
	if got <= stored {
		return false
	}
	p.counters.Add(id, got)
	return true
}

// forgetCredential drops a passkey (on its registration, here or through
// another gateway).
func (p *passkeyCache) forgetCredential(id string) {
	p.creds.Remove(id)
	p.unknown.Remove("p\x00" + id)
}

// forgetRelyingParty drops an org's relying party (when it is set).
func (p *passkeyCache) forgetRelyingParty(org string) {
	p.rps.Remove(org)
	p.unknown.Remove("r\x00" + org)
}

// errRPMoved reports a passkey bound to an rpId its org no longer uses.
var errRPMoved = errors.New("passkey is bound to another rpId")

// passkeyRefused answers an assertion that names a passkey of the actor
// but fails a check. It is charged like a bad signature (errBadSignature
// is its cause); its message says which check failed, which helps a
// portal's developer and tells a stranger nothing the credential id did
// not (passkey credential ids are not secret).
func passkeyRefused(format string, args ...any) *apiError {
	return &apiError{Code: wire.CodeUnauthenticated, Message: "passkey assertion refused: " + fmt.Sprintf(format, args...), cause: errBadSignature}
}

// passkeySigned checks assertion a of payload by actor act (see the top of
// this file). An unknown credential, or one of another actor, is
// errBadSignature, like an unknown actor; a failed check is passkeyRefused
// (which wraps errBadSignature); a malformed assertion is invalid
// (wrapping envelope.ErrMalformed).
func (s *Server) passkeySigned(ctx context.Context, act *actorKey, payload []byte, a *envelope.Assertion) error {
	id := base64.RawURLEncoding.EncodeToString(a.CredentialID)
	if !wire.ValidCredentialID(id) {
		return errBadSignature
	}
	pk, err := s.passkeys.credential(ctx, id, s.passkeys.ttl)
	if errors.Is(err, errUnknown) || err == nil && pk.ActorID != act.ID {
		return errBadSignature
	}
	if err != nil {
		return err
	}
	verify := func(maxAge time.Duration) (envelope.AuthenticatorData, error) {
		rp, err := s.passkeys.relyingParty(ctx, act.Org, maxAge)
		if err != nil {
			return envelope.AuthenticatorData{}, err
		}
		if pk.RPID != rp.ID {
			return envelope.AuthenticatorData{}, errRPMoved
		}
		return envelope.VerifyAssertion(pk.key, rp.RelyingParty, payload, *a)
	}
	ad, err := verify(s.passkeys.ttl)
	if errors.Is(err, errUnknown) || errors.Is(err, errRPMoved) || errors.Is(err, envelope.ErrOrigin) || errors.Is(err, envelope.ErrRPID) {
		// The org's relying party may have changed through another
		// gateway: read it again, at most once a second.
		ad, err = verify(time.Second)
	}
	switch {
	case errors.Is(err, errUnknown):
		return passkeyRefused("the actor's org has no relying party")
	case errors.Is(err, errRPMoved):
		return passkeyRefused("the passkey is bound to a relying party its org no longer uses")
	case errors.Is(err, envelope.ErrMalformed):
		return &apiError{Code: wire.CodeInvalid, Message: "malformed passkey assertion: " + err.Error(), cause: err}
	case errors.Is(err, envelope.ErrBadSignature):
		return passkeyRefused("signature does not verify")
	case err != nil && isAssertionCheck(err):
		return passkeyRefused("%v", err)
	case err != nil:
		return err
	}
	if !s.passkeys.advance(id, pk.SignCount, ad.SignCount) {
		return passkeyRefused("signature counter did not increase: a replayed assertion or a cloned authenticator")
	}
	return nil
}

// isAssertionCheck reports whether err is one of VerifyAssertion's
// refusals of a well-formed assertion.
func isAssertionCheck(err error) bool {
	for _, e := range []error{envelope.ErrClientDataType, envelope.ErrChallenge, envelope.ErrOrigin, envelope.ErrCrossOrigin,
		envelope.ErrRPID, envelope.ErrUserPresence, envelope.ErrUserVerification} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// setRelyingParty answers PUT /v1/admin/relying-party (admin token): it
// records {rpId, origins} as the relying party of this gateway's org
// (SetRelyingParty, with the org's admin identity) and answers the record.
func (s *Server) setRelyingParty(c *gin.Context) {
	body, err := readBody(c)
	if err != nil {
		fail(c, err)
		return
	}
	var in wire.RelyingPartyInput
	if err := wire.DecodeStrict(body, &in); err != nil {
		fail(c, badRequest(`body must be {"rpId","origins"}: %s`, wire.JSONProblem(err)))
		return
	}
	arg, err := jsonString(in)
	if err != nil {
		fail(c, err)
		return
	}
	var rp wire.RelyingParty
	if _, err := s.chain.submit(c, &rp, true, wire.FnSetRelyingParty, arg); err != nil {
		fail(c, err)
		return
	}
	s.passkeys.forgetRelyingParty(rp.Org)
	c.JSON(http.StatusOK, rp)
}
