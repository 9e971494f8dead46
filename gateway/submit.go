package gateway

import (
	"bytes"
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"net"
	"sync"

	"github.com/medprov/medprov/ingest"
	"github.com/medprov/medprov/wire"
)

// This file is the gateway's reading path for front doors other than its
// HTTP routes (the MQTT listener): the same checks, rate limits, pushback
// and ingest pipeline as POST /v1/readings and /v1/readings/batch.

// Submission is one message of signed readings from a device transport.
type Submission struct {
	// Body is exactly a body of POST /v1/readings (one signed envelope)
	// or of POST /v1/readings/batch ({"readings":[envelope,...]}), with
	// the same size limits (Limits.MaxReadingBytes, MaxBatchBytes).
	Body []byte
	// Peer is the client's IP address (host or host:port). Failed
	// authentications are charged to it, as to an HTTP client's address.
	Peer string
	// Device, if set, is the device the transport authenticated (see
	// AuthenticateDevice): a reading naming any other device is refused
	// (forbidden) before its signature is checked.
	Device string
	// Watch asks for the ledger outcome of the readings queued: see
	// Receipts.Await.
	Watch bool
}

// Receipts answers a Submission, one receipt per reading in body order:
// queued (durably: it survives a crash), exists, recorded, or rejected
// with its error. Receipts of a batch body carry their Index.
type Receipts struct {
	Items []wire.ReadingReceipt

	s    *Server
	res  []*result
	recs []ingest.Receipt
	at   []int
}

// SubmitReadings runs a device's message through exactly what the reading
// routes do: size and shape, the client address's failure budget, the
// device's registration, status, signature and rate limit, ingest pushback
// (Limits.MaxLag) and the durable ingest queue. It returns once every
// reading it reports queued is durable. A reading refused on its own is
// answered in its receipt; an error refuses the whole message and nothing
// of it was queued (ClientError says what to tell the client: e.g.
// unavailable under pushback, invalid or too_large for the body).
func (s *Server) SubmitReadings(ctx context.Context, sub Submission) (*Receipts, error) {
	raws, indexed, err := s.splitBody(sub.Body)
	if err != nil {
		return nil, err
	}
	release, err := s.admit(ctx)
	if err != nil {
		return nil, err
	}
	rs, at, res, err := s.prepareAll(ctx, peerKey(sub.Peer), sub.Device, raws, indexed)
	if err != nil {
		release()
		return nil, err
	}
	r := &Receipts{s: s, res: res, at: at}
	if len(rs) == 0 {
		release()
	} else if r.recs, err = s.queue(ctx, rs, at, res, sub.Watch, release); err != nil {
		return nil, err
	}
	r.Items = make([]wire.ReadingReceipt, len(res))
	for i, x := range res {
		r.Items[i] = x.ReadingReceipt
	}
	return r, nil
}

// Await waits, until ctx is done, for the ledger outcome of the readings
// queued by a Submission with Watch, and returns the receipts of those
// whose outcome arrived: recorded (with TxID and Block) or rejected (with
// the ledger's error). A reading whose outcome has not arrived when ctx
// ends is still queued; its outcome is not reported. Call it once. A
// Receipts not made by SubmitReadings (a test's) awaits nothing.
func (r *Receipts) Await(ctx context.Context) []wire.ReadingReceipt {
	if r.s == nil {
		return nil
	}
	got := r.s.await(ctx, r.recs, r.at, r.res)
	out := make([]wire.ReadingReceipt, len(got))
	for i, k := range got {
		out[i] = r.res[r.at[k]].ReadingReceipt
	}
	return out
}

// splitBody tells the two reading bodies apart and returns the envelopes;
// indexed is true for a batch body.
func (s *Server) splitBody(body []byte) (raws []json.RawMessage, indexed bool, err error) {
	l := s.cfg.Limits
	if int64(len(body)) > l.MaxBatchBytes {
		return nil, false, errf(wire.CodeTooLarge, "body exceeds %d bytes", l.MaxBatchBytes)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, false, badRequest("body is empty")
	}
	if !isBatch(body) {
		if int64(len(body)) > l.MaxReadingBytes {
			return nil, false, errf(wire.CodeTooLarge, "a single reading exceeds %d bytes", l.MaxReadingBytes)
		}
		return []json.RawMessage{body}, false, nil
	}
	raws, err = s.decodeBatch(body)
	return raws, true, err
}

// isBatch reports whether body is a JSON object whose first member is
// "readings" (a batch body); anything else is taken as one envelope, whose
// strict decoding then says what is wrong with it.
func isBatch(body []byte) bool {
	d := json.NewDecoder(bytes.NewReader(body))
	if t, err := d.Token(); err != nil || t != json.Delim('{') {
		return false
	}
	t, err := d.Token()
	return err == nil && t == "readings"
}

// AuthenticateDevice checks that pub is the registered, active key of
// deviceID, for a transport that authenticated the device by that key (an
// MQTT client certificate). A peer (IP address, host or host:port) whose
// budget of failed authentications is spent is refused (rate_limited)
// before anything is looked up; each failure is charged to that budget,
// never to the device. The error says what to tell the client
// (ClientError): forbidden for an unknown or revoked device,
// unauthenticated for another key, unavailable when the ledger cannot be
// read.
func (s *Server) AuthenticateDevice(ctx context.Context, peer, deviceID string, pub crypto.PublicKey) error {
	client := peerKey(peer)
	if err := s.clientBlocked(client); err != nil {
		return err
	}
	if !wire.ValidID(deviceID) {
		s.failLim.charge(client)
		return errf(wire.CodeForbidden, "not a device id")
	}
	dev, err := s.keys.device(ctx, deviceID)
	switch {
	case errors.Is(err, errUnknown):
		s.failLim.charge(client)
		return errf(wire.CodeForbidden, "unknown device")
	case err != nil:
		return err
	case dev.Status != wire.StatusActive:
		s.failLim.charge(client)
		return errf(wire.CodeForbidden, "device is revoked")
	case !dev.key.Equal(pub):
		s.failLim.charge(client)
		return errf(wire.CodeUnauthenticated, "key is not the device's registered key")
	}
	return nil
}

// WatchRevocations calls fn with the id of every device revoked on the
// ledger, as this gateway follows the ledger's events (whichever gateway
// the revocation went through), until stop is called. fn MUST return
// quickly; it is called on the event follower's goroutine.
func (s *Server) WatchRevocations(fn func(deviceID string)) (stop func()) {
	return s.revocations.add(fn)
}

// ClientError returns what a client is told of an error of SubmitReadings
// or AuthenticateDevice: the code and constant message the HTTP routes
// answer, never the cause.
func ClientError(err error) wire.ErrorBody { return toAPIError(err).body() }

// peerKey is addrKey for a host or host:port.
func peerKey(peer string) string {
	if h, _, err := net.SplitHostPort(peer); err == nil {
		peer = h
	}
	return addrKey(peer)
}

// revocationWatchers are the functions WatchRevocations registered.
type revocationWatchers struct {
	mu   sync.Mutex
	next int
	fns  map[int]func(string)
}

func (w *revocationWatchers) add(fn func(string)) func() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fns == nil {
		w.fns = map[int]func(string){}
	}
	id := w.next
	w.next++
	w.fns[id] = fn
	return func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		delete(w.fns, id)
	}
}

func (w *revocationWatchers) notify(deviceID string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, fn := range w.fns {
		fn(deviceID)
	}
}
