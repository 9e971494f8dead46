package ingest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"runtime"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
)

// countingStore records how many PutMany calls reach it; its "CID" is the
// hex SHA-256 of the bytes, so a mix-up of results between callers shows.
type countingStore struct {
	Blobs
	mu    sync.Mutex
	calls int
	gate  chan struct{}
}

func (c *countingStore) PutMany(_ context.Context, data [][]byte) ([]string, error) {
	<-c.gate
	c.mu.Lock()
	c.calls++
	c.mu.Unlock()
	out := make([]string, len(data))
	for i, d := range data {
		h := sha256.Sum256(d)
		out[i] = hex.EncodeToString(h[:])
	}
	return out, nil
}

func TestBlobGroupCoalescesConcurrentPuts(t *testing.T) {
	cs := &countingStore{gate: make(chan struct{})}
	g := newBlobGroup(cs, 4096)
	const callers = 64
	var wg sync.WaitGroup
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// assert, not require: this is not the test's goroutine.
			data := [][]byte{[]byte(fmt.Sprintf("blob-%d-a", i)), []byte(fmt.Sprintf("blob-%d-b", i))}
			cids, err := g.PutMany(t.Context(), data)
			if !assert.NoError(t, err, "caller %d", i) || !assert.Len(t, cids, len(data), "caller %d", i) {
				return
			}
			for j, d := range data {
				h := sha256.Sum256(d)
				assert.Equal(t, hex.EncodeToString(h[:]), cids[j], "caller %d got another caller's CID", i)
			}
		}()
	}
	// The first round is held in the store until every other caller has
	// queued behind it; they must then share few rounds.
	for {
		g.mu.Lock()
		n := len(g.pending)
		g.mu.Unlock()
		if n == callers-1 {
			break
		}
		runtime.Gosched()
	}
	close(cs.gate)
	wg.Wait()
	assert.Equal(t, 2, cs.calls, "store calls for %d callers, want 2 (the first alone, then all the rest)", callers)
}
