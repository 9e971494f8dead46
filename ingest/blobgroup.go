package ingest

import (
	"context"
	"sync"
)

// blobGroup coalesces concurrent PutMany calls into one store PutMany, so
// that under load ciphertext reaches the blob store in few large requests
// (one HTTP round trip to kubo, one disk batch for the embedded store) and
// not one per reading. A call waits only for the group in progress.
type blobGroup struct {
	store    Blobs
	maxBlobs int
	mu       sync.Mutex
	pending  []*blobReq
	running  bool
}

type blobReq struct {
	ctx  context.Context
	data [][]byte
	cids []string
	err  error
	done chan struct{}
}

func newBlobGroup(store Blobs, maxBlobs int) *blobGroup {
	return &blobGroup{store: store, maxBlobs: maxBlobs}
}

// PutMany stores data and returns its CIDs in order. The first caller to
// find no group running becomes the leader: it stores everything pending,
// round after round, until the queue is empty.
func (g *blobGroup) PutMany(ctx context.Context, data [][]byte) ([]string, error) {
	r := &blobReq{ctx: ctx, data: data, done: make(chan struct{})}
	g.mu.Lock()
	g.pending = append(g.pending, r)
	if g.running {
		g.mu.Unlock()
		select {
		case <-r.done:
			return r.cids, r.err
		case <-ctx.Done():
			// The group may still store the blobs; without a CID the
			// caller acknowledges nothing, so an orphan blob is harmless.
			return nil, ctx.Err()
		}
	}
	g.running = true
	g.mu.Unlock()
	for {
		g.mu.Lock()
		if len(g.pending) == 0 {
			g.running = false
			g.mu.Unlock()
			break
		}
		n, take := 0, 0
		for take < len(g.pending) && (take == 0 || n+len(g.pending[take].data) <= g.maxBlobs) {
			n += len(g.pending[take].data)
			take++
		}
		round := g.pending[:take:take]
		g.pending = append([]*blobReq(nil), g.pending[take:]...)
		g.mu.Unlock()
		g.store1(round, n)
	}
	<-r.done
	return r.cids, r.err
}

// store1 writes one round of requests with a single PutMany. Requests whose
// context already ended are left out.
func (g *blobGroup) store1(round []*blobReq, n int) {
	all := make([][]byte, 0, n)
	var live []*blobReq
	for _, r := range round {
		if r.ctx.Err() != nil {
			r.err = r.ctx.Err()
			close(r.done)
			continue
		}
		live = append(live, r)
		all = append(all, r.data...)
	}
	if len(live) == 0 {
		return
	}
	// The round outlives any one caller's cancellation: other callers
	// share it. The store bounds its own time.
	cids, err := g.store.PutMany(context.WithoutCancel(live[0].ctx), all)
	off := 0
	for _, r := range live {
		if err != nil {
			r.err = err
		} else {
			r.cids = cids[off : off+len(r.data)]
		}
		off += len(r.data)
		close(r.done)
	}
}
