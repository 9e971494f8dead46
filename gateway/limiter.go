package gateway

import (
	"math"
	"net/netip"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/hashicorp/golang-lru/v2/simplelru"
	"golang.org/x/time/rate"
)

// limiterSet is a token bucket per key, for a bounded number of keys. When it is
// full the least recently used bucket is dropped: it is the idlest, and
// dropping a bucket only forgets tokens spent, so the bound costs at most a
// fresh burst for a key that comes back. A nil *limiterSet allows
// everything.
type limiterSet struct {
	mu    sync.Mutex
	r     rate.Limit
	burst int
	now   func() time.Time
	m     *simplelru.LRU[string, *rate.Limiter]
}

// newLimiterSet returns a set of buckets refilled at perSec up to burst,
// holding at most size keys; a negative perSec disables the limit (nil).
func newLimiterSet(perSec float64, burst, size int, now func() time.Time) *limiterSet {
	if perSec < 0 {
		return nil
	}
	m, err := simplelru.NewLRU[string, *rate.Limiter](size, nil)
	if err != nil {
		panic("gateway: limiter set bound must be positive") // setDefaults guarantees it
	}
	return &limiterSet{r: rate.Limit(perSec), burst: max(burst, 1), now: now, m: m}
}

// bucket returns key's bucket, creating a full one; l.mu is held.
func (l *limiterSet) bucket(key string) *rate.Limiter {
	b, ok := l.m.Get(key)
	if !ok {
		b = rate.NewLimiter(l.r, l.burst)
		l.m.Add(key, b)
	}
	return b
}

// allow takes a token from key's bucket and reports whether there was one.
func (l *limiterSet) allow(key string) bool {
	if l == nil {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.bucket(key).AllowN(l.now(), 1)
}

// charge takes a token from key's bucket if it has one. It is allow for
// callers that refuse the request anyway.
func (l *limiterSet) charge(key string) { l.allow(key) }

// wait reports how long key must wait for its next token: zero if it has
// one now. It takes nothing, and creates no bucket.
func (l *limiterSet) wait(key string) time.Duration {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.m.Peek(key)
	if !ok {
		return 0
	}
	missing := 1 - b.TokensAt(l.now())
	if missing <= 0 {
		return 0
	}
	if l.r <= 0 {
		return time.Hour
	}
	return time.Duration(math.Ceil(missing / float64(l.r) * float64(time.Second)))
}

// len returns the number of buckets held.
func (l *limiterSet) len() int {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.m.Len()
}

// clientKey names the client address a request's failures are charged to:
// the TCP peer's address (the engine trusts no proxy header), an IPv6
// address reduced to its /64, the smallest block a single site is given.
func clientKey(c *gin.Context) string { return addrKey(c.ClientIP()) }

// addrKey is clientKey for a peer's IP address.
func addrKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	a = a.Unmap()
	if a.Is6() {
		if p, err := a.Prefix(64); err == nil {
			return p.String()
		}
	}
	return a.String()
}
