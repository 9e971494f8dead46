package gateway

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/medprov/medprov/envelope"
	"github.com/medprov/medprov/ingest"
)

// readingPayload is what a device signs. Value is kept raw: the gateway
// never interprets it, it only checks that it is present.
type readingPayload struct {
	DeviceID   string          `json:"deviceId"`
	Seq        *uint64         `json:"seq"`
	Type       string          `json:"type"`
	Unit       string          `json:"unit"`
	Value      json.RawMessage `json:"value"`
	MeasuredAt string          `json:"measuredAt"`
	Nonce      string          `json:"nonce"`
}

var (
	idPattern    = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)
	tokenPattern = regexp.MustCompile(`^[a-z0-9._-]{1,64}$`)
	unitPattern  = regexp.MustCompile(`^[\x21-\x7e]{1,32}$`)
)

// maxFutureSkew bounds how far in the future a device clock may put
// measuredAt before the reading is refused as malformed.
const maxFutureSkew = 10 * time.Minute

// prepared is a reading that passed every gateway check and is ready to be
// sealed and queued.
type prepared struct {
	env     envelope.Envelope
	p       readingPayload
	dev     *deviceKey
	id      string
	hash    string
	dup     *ingest.Seen // set when the identical reading is already known
	seq     uint64
	sealed  []byte
	measure string
}

// readBody reads the (size-limited) body; an oversized body is 413.
func readBody(c *gin.Context) ([]byte, error) {
	b, err := io.ReadAll(c.Request.Body)
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, errf(http.StatusRequestEntityTooLarge, CodeTooLarge, "request body exceeds %d bytes", mbe.Limit)
	}
	if err != nil {
		return nil, badRequest("could not read request body")
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, badRequest("request body is empty")
	}
	return b, nil
}

// prepare checks one signed reading: shape, device, rate, signature and
// whether this gateway has seen it before.
func (s *Server) prepare(ctx context.Context, raw []byte, tokens bool) (*prepared, error) {
	env, err := envelope.Parse(raw)
	if err != nil {
		return nil, err
	}
	var p readingPayload
	dec := json.NewDecoder(bytes.NewReader(env.Payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return nil, badRequest("reading payload must be a JSON object with deviceId, seq, type, unit, value, measuredAt and nonce")
	}
	if dec.More() {
		return nil, badRequest("reading payload has trailing data")
	}
	if !idPattern.MatchString(p.DeviceID) {
		return nil, badRequest("deviceId must match %s", idPattern)
	}
	if p.Seq == nil {
		return nil, badRequest("seq is required")
	}
	if !tokenPattern.MatchString(p.Type) {
		return nil, badRequest("type must match %s", tokenPattern)
	}
	if !unitPattern.MatchString(p.Unit) {
		return nil, badRequest("unit must be 1 to 32 printable ASCII characters")
	}
	if len(p.Value) == 0 || string(p.Value) == "null" {
		return nil, badRequest("value is required")
	}
	switch p.Value[0] {
	case '"', 't', 'f':
		return nil, badRequest("value must be a number, an array or an object")
	}
	mt, err := time.Parse(time.RFC3339Nano, p.MeasuredAt)
	if err != nil {
		return nil, badRequest("measuredAt must be RFC 3339")
	}
	if mt.After(s.cfg.Now().Add(maxFutureSkew)) {
		return nil, badRequest("measuredAt is in the future")
	}
	nonce, err := base64.StdEncoding.DecodeString(p.Nonce)
	if err != nil || len(nonce) < 16 {
		return nil, badRequest("nonce must be base64 of at least 16 random bytes")
	}
	dev, err := s.keys.device(ctx, p.DeviceID)
	if errors.Is(err, errUnknown) {
		s.m.rejected.WithLabelValues("unknown_device").Inc()
		return nil, errf(http.StatusForbidden, CodeForbidden, "unknown device")
	}
	if err != nil {
		return nil, err
	}
	if dev.Status != "active" {
		s.m.rejected.WithLabelValues("revoked_device").Inc()
		return nil, errf(http.StatusForbidden, CodeForbidden, "device is revoked")
	}
	if tokens && !s.devLim.allow(dev.ID) {
		s.m.rejected.WithLabelValues("rate_limited").Inc()
		return nil, &apiError{Status: http.StatusTooManyRequests, Code: CodeRateLimited, Message: "too many readings for this device", RetryAfter: time.Second}
	}
	h := env.Hash()
	if err := s.cfg.Verifier.VerifyDigest(dev.key, h[:], env.Signature); err != nil {
		s.m.rejected.WithLabelValues("bad_signature").Inc()
		return nil, errf(http.StatusUnauthorized, CodeUnauthenticated, "device signature does not verify")
	}
	pr := &prepared{env: env, p: p, dev: dev, seq: *p.Seq, hash: hex.EncodeToString(h[:]),
		measure: mt.UTC().Format(time.RFC3339Nano)}
	pr.id = p.DeviceID + ":" + strconv.FormatUint(pr.seq, 10)
	seen, err := s.queue.Lookup(p.DeviceID, pr.seq)
	if err != nil {
		return nil, err
	}
	if seen.State != ingest.StateUnknown {
		if seen.DataHash != pr.hash {
			s.m.rejected.WithLabelValues("duplicate_seq").Inc()
			return nil, ingest.ErrConflict
		}
		pr.dup = &seen
	}
	return pr, nil
}

// readingResult is the answer for one reading.
type readingResult struct {
	Index     *int      `json:"index,omitempty"`
	ReadingID string    `json:"readingId,omitempty"`
	DataHash  string    `json:"dataHash,omitempty"`
	CID       string    `json:"cid,omitempty"`
	Status    string    `json:"status"`
	TxID      string    `json:"txId,omitempty"`
	Block     *uint64   `json:"block,omitempty"`
	Error     *errField `json:"error,omitempty"`

	status int
}

// ingestPrepared seals, stores and durably queues readings, filling res,
// and returns the records queued and the index of each in prs. Only when
// this returns are the accepted readings acknowledged.
func (s *Server) ingestPrepared(ctx context.Context, prs []*prepared, res []*readingResult) ([]ingest.Record, []int, error) {
	var fresh []int
	for i, pr := range prs {
		if pr == nil {
			continue
		}
		res[i].ReadingID, res[i].DataHash = pr.id, pr.hash
		if pr.dup != nil {
			res[i].Status, res[i].status = pr.dup.State.String(), http.StatusOK
			continue
		}
		sealed, err := s.sealer.Seal(ctx, pr.dev.PatientID, pr.id, pr.env.Payload)
		if err != nil {
			return nil, nil, err
		}
		pr.sealed = sealed
		fresh = append(fresh, i)
	}
	if len(fresh) == 0 {
		return nil, nil, nil
	}
	blobs := make([][]byte, len(fresh))
	for j, i := range fresh {
		blobs[j] = prs[i].sealed
	}
	cids, err := s.puts.PutMany(ctx, blobs)
	if err != nil {
		return nil, nil, err
	}
	recs := make([]ingest.Record, len(fresh))
	now := s.cfg.Now().UTC()
	for j, i := range fresh {
		pr := prs[i]
		ch := sha256.Sum256(pr.sealed)
		res[i].CID = cids[j]
		recs[j] = ingest.Record{PatientID: pr.dev.PatientID, EnqueuedAt: now, Item: ingest.Item{
			DeviceID: pr.p.DeviceID, Seq: pr.seq, Type: pr.p.Type, Unit: pr.p.Unit, MeasuredAt: pr.measure,
			DataHash: pr.hash, Signature: base64.StdEncoding.EncodeToString(pr.env.Signature),
			CID: cids[j], CipherHash: hex.EncodeToString(ch[:]), Size: int64(len(pr.sealed)),
		}}
	}
	errs, err := s.queue.Append(ctx, recs)
	if err != nil {
		return nil, nil, err
	}
	var queued []ingest.Record
	var idx []int
	for j, i := range fresh {
		var dup *ingest.DuplicateError
		switch {
		case errs[j] == nil:
			res[i].Status, res[i].status = "queued", http.StatusAccepted
			queued = append(queued, recs[j])
			idx = append(idx, i)
		case errors.As(errs[j], &dup):
			res[i].Status, res[i].status, res[i].CID = dup.Seen.State.String(), http.StatusOK, ""
		default:
			ae := toAPIError(errs[j])
			res[i].Status, res[i].status, res[i].CID = "rejected", ae.Status, ""
			res[i].Error = &errField{ae.Code, ae.Message}
		}
	}
	s.m.ingested.Add(float64(len(queued)))
	return queued, idx, nil
}

// ingestWithWait acknowledges readings, releases the ingest slot and, if
// wait is set, waits (bounded by Limits.CommitWait) for their ledger outcome. Readings whose outcome
// does not arrive in time stay "queued".
func (s *Server) ingestWithWait(ctx context.Context, prs []*prepared, res []*readingResult, wait bool, release func()) error {
	queued, idx, err := s.ingestPrepared(ctx, prs, res)
	release() // the slot covers the CPU work, not the wait for a block
	if err != nil || len(queued) == 0 {
		return err
	}
	chans := s.batcher.Add(queued, wait)
	if !wait {
		return nil
	}
	timer := time.NewTimer(s.cfg.Limits.CommitWait)
	defer timer.Stop()
	for j, ch := range chans {
		select {
		case o := <-ch:
			applyOutcome(res[idx[j]], o)
		case <-timer.C:
			s.unwatch(queued[j:])
			return nil
		case <-ctx.Done():
			s.unwatch(queued[j:])
			return nil
		}
	}
	return nil
}

func (s *Server) unwatch(recs []ingest.Record) {
	for _, r := range recs {
		s.batcher.Unwatch(r.ID)
	}
}

func applyOutcome(r *readingResult, o ingest.Outcome) {
	if o.State == ingest.StateRecorded {
		r.Status, r.status, r.TxID = "recorded", http.StatusCreated, o.TxID
		if o.Block > 0 {
			b := o.Block
			r.Block = &b
		}
		return
	}
	ae := toAPIError(&ledgerRefusal{code: o.Code, msg: o.Message})
	r.Status, r.status, r.CID = "rejected", ae.Status, ""
	r.Error = &errField{ae.Code, ae.Message}
}

func (s *Server) postReading(c *gin.Context) {
	body, err := readBody(c)
	if err != nil {
		fail(c, err)
		return
	}
	wait := c.Query("wait") == "commit"
	release, err := s.admit(c)
	if err != nil {
		fail(c, err)
		return
	}
	pr, err := s.prepare(c, body, true)
	if err != nil {
		release()
		fail(c, err)
		return
	}
	res := []*readingResult{{}}
	if err := s.ingestWithWait(c, []*prepared{pr}, res, wait, release); err != nil {
		fail(c, err)
		return
	}
	r := res[0]
	if r.Error != nil {
		fail(c, &apiError{Status: r.status, Code: r.Error.Code, Message: r.Error.Message})
		return
	}
	c.JSON(r.status, r)
}

// batchRequest is the body of POST /v1/readings/batch.
type batchRequest struct {
	Readings []json.RawMessage `json:"readings"`
}

func (s *Server) postReadingBatch(c *gin.Context) {
	body, err := readBody(c)
	if err != nil {
		fail(c, err)
		return
	}
	var req batchRequest
	if err := json.Unmarshal(body, &req); err != nil {
		fail(c, badRequest(`body must be {"readings":[envelope,...]}`))
		return
	}
	if len(req.Readings) == 0 || len(req.Readings) > s.cfg.Limits.MaxBatchItems {
		fail(c, badRequest("a batch holds 1 to %d readings", s.cfg.Limits.MaxBatchItems))
		return
	}
	wait := c.Query("wait") == "commit"
	release, err := s.admit(c)
	if err != nil {
		fail(c, err)
		return
	}
	prs := make([]*prepared, len(req.Readings))
	res := make([]*readingResult, len(req.Readings))
	for i, raw := range req.Readings {
		idx := i
		res[i] = &readingResult{Index: &idx}
		pr, err := s.prepare(c, raw, true)
		if err != nil {
			ae := toAPIError(err)
			if ae.Status >= 500 {
				release()
				fail(c, err) // the ledger is down: refuse the whole batch, retryable
				return
			}
			res[i].Status, res[i].status, res[i].Error = "rejected", ae.Status, &errField{ae.Code, ae.Message}
			continue
		}
		prs[i] = pr
	}
	if err := s.ingestWithWait(c, prs, res, wait, release); err != nil {
		fail(c, err)
		return
	}
	accepted, rejected := 0, 0
	for _, r := range res {
		if r.Error != nil {
			rejected++
		} else {
			accepted++
		}
	}
	status := http.StatusAccepted
	if wait {
		status = http.StatusOK
	}
	c.JSON(status, gin.H{"accepted": accepted, "rejected": rejected, "results": res})
}

// admit applies ingest pushback and takes an ingest slot; release it with
// the returned function. It refuses with 503 while the ledger is behind.
func (s *Server) admit(ctx context.Context) (func(), error) {
	if lag := s.batcher.Lag(); lag > s.cfg.Limits.MaxLag {
		s.m.rejected.WithLabelValues("pushback").Inc()
		return nil, &apiError{Status: http.StatusServiceUnavailable, Code: CodeUnavailable,
			Message: "ingest is behind the ledger, retry later", RetryAfter: time.Second}
	}
	select {
	case s.slots <- struct{}{}:
		return func() { <-s.slots }, nil
	case <-ctx.Done():
		return nil, &apiError{Status: http.StatusServiceUnavailable, Code: CodeUnavailable,
			Message: "gateway busy, retry later", RetryAfter: time.Second, cause: ctx.Err()}
	}
}
