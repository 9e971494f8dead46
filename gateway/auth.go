package gateway

import (
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"golang.org/x/time/rate"

	"github.com/medprov/medprov/envelope"
	"github.com/medprov/medprov/wire"
)

// requireAdmin checks the bearer admin token in constant time.
func (s *Server) requireAdmin(c *gin.Context) {
	h := c.GetHeader("Authorization")
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || subtle.ConstantTimeCompare([]byte(tok), []byte(s.cfg.AdminToken)) != 1 {
		fail(c, errf(wire.CodeUnauthenticated, "admin bearer token required"))
		return
	}
	c.Next()
}

// signedGET authenticates a GET by its X-Medprov-Signature header: the
// signature must verify under the actor's key on the ledger, name this exact
// method and path (with query), be issued within the signature window, and
// carry a nonce not seen before. The verified actor is stored as "actor".
func (s *Server) signedGET(c *gin.Context) {
	raw := c.GetHeader(wire.SignatureHeader)
	if raw == "" {
		fail(c, errf(wire.CodeUnauthenticated, "signed request required: missing %s header", wire.SignatureHeader))
		return
	}
	envJSON, err := base64.StdEncoding.DecodeString(raw)
	if err != nil || len(envJSON) > 8<<10 {
		fail(c, errf(wire.CodeUnauthenticated, "%s must be base64 of a signed envelope", wire.SignatureHeader))
		return
	}
	env, err := envelope.Parse(envJSON)
	if err != nil {
		fail(c, errf(wire.CodeUnauthenticated, "%s must be base64 of a signed envelope", wire.SignatureHeader))
		return
	}
	var a wire.HTTPGetAction
	if err := wire.DecodeStrict(env.Payload, &a); err != nil || a.Action != wire.ActionHTTPGet || !wire.ValidID(a.ActorID) || !wire.ValidNonce(a.Nonce) {
		fail(c, errf(wire.CodeUnauthenticated, "signed payload must be an http.get action with actorId, issuedAt and nonce"))
		return
	}
	if a.Method != c.Request.Method || a.Path != c.Request.URL.RequestURI() {
		fail(c, errf(wire.CodeUnauthenticated, "signature is for another request"))
		return
	}
	issued, err := time.Parse(time.RFC3339Nano, a.IssuedAt)
	if err != nil {
		fail(c, errf(wire.CodeUnauthenticated, "issuedAt must be RFC 3339"))
		return
	}
	if d := s.cfg.Now().Sub(issued); d > s.cfg.SignatureWindow || d < -s.cfg.SignatureWindow {
		fail(c, errf(wire.CodeUnauthenticated, "signature is stale: issuedAt is outside the %s window", s.cfg.SignatureWindow))
		return
	}
	act, err := s.keys.actor(c, a.ActorID)
	if err != nil {
		if ae := toAPIError(err); ae.Status() == http.StatusNotFound {
			fail(c, errf(wire.CodeUnauthenticated, "unknown actor"))
			return
		}
		fail(c, err)
		return
	}
	if act.Status != "active" {
		fail(c, errf(wire.CodeUnauthenticated, "actor is not active"))
		return
	}
	if err := env.Verify(act.key); err != nil {
		fail(c, errf(wire.CodeUnauthenticated, "signature does not verify"))
		return
	}
	if !s.actLim.allow(a.ActorID) {
		fail(c, &apiError{Code: wire.CodeRateLimited, Message: "too many requests for this actor", RetryAfter: time.Second})
		return
	}
	if !s.nonces.use(a.ActorID, a.Nonce) {
		fail(c, errf(wire.CodeUnauthenticated, "replayed nonce"))
		return
	}
	c.Set("actor", act)
	c.Next()
}

func actorOf(c *gin.Context) *actorKey {
	v, _ := c.Get("actor")
	a, _ := v.(*actorKey)
	return a
}

// nonceCache remembers nonces of signed GETs for twice the signature window,
// after which issuedAt alone refuses a replay. It is in memory: a restart
// forgets it, which re-opens a replay window of at most the signature window
// for reads (never for writes, whose nonces the chaincode keeps forever).
type nonceCache struct {
	mu    sync.Mutex
	ttl   time.Duration
	now   func() time.Time
	seen  map[string]time.Time
	sweep time.Time
}

func newNonceCache(ttl time.Duration, now func() time.Time) *nonceCache {
	return &nonceCache{ttl: ttl, now: now, seen: map[string]time.Time{}}
}

// use reports whether (actor, nonce) is new, and remembers it.
func (n *nonceCache) use(actor, nonce string) bool {
	k := actor + "\x00" + nonce
	now := n.now()
	n.mu.Lock()
	defer n.mu.Unlock()
	if now.Sub(n.sweep) > n.ttl/4 {
		for key, exp := range n.seen {
			if now.After(exp) {
				delete(n.seen, key)
			}
		}
		n.sweep = now
	}
	if exp, ok := n.seen[k]; ok && now.Before(exp) {
		return false
	}
	n.seen[k] = now.Add(n.ttl)
	return true
}

// limiterSet is a token bucket per key. Idle buckets are dropped.
type limiterSet struct {
	mu    sync.Mutex
	r     rate.Limit
	burst int
	m     map[string]*limEntry
	ops   int
}

type limEntry struct {
	l    *rate.Limiter
	last time.Time
}

func newLimiterSet(perSec float64, burst int) *limiterSet {
	if perSec < 0 {
		return nil
	}
	return &limiterSet{r: rate.Limit(perSec), burst: max(burst, 1), m: map[string]*limEntry{}}
}

// allow reports whether key may make n more requests now.
func (l *limiterSet) allow(key string) bool { return l.allowN(key, 1) }

func (l *limiterSet) allowN(key string, n int) bool {
	if l == nil {
		return true
	}
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ops++
	if l.ops%4096 == 0 {
		for k, e := range l.m {
			if now.Sub(e.last) > time.Minute {
				delete(l.m, k)
			}
		}
	}
	e, ok := l.m[key]
	if !ok {
		e = &limEntry{l: rate.NewLimiter(l.r, l.burst)}
		l.m[key] = e
	}
	e.last = now
	return e.l.AllowN(now, n)
}
