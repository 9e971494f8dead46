package gateway

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/medprov/medprov/envelope"
	"github.com/medprov/medprov/ingest"
	"github.com/medprov/medprov/payload"
	"github.com/medprov/medprov/wire"
)

// maxFutureSkew bounds how far in the future a device clock may put
// measuredAt before the reading is refused as malformed.
const maxFutureSkew = 10 * time.Minute

// readBody reads the (size-limited) body; an oversized body is 413.
func readBody(c *gin.Context) ([]byte, error) {
	b, err := io.ReadAll(c.Request.Body)
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, errf(wire.CodeTooLarge, "request body exceeds %d bytes", mbe.Limit)
	}
	if err != nil {
		return nil, badRequest("could not read request body")
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, badRequest("request body is empty")
	}
	return b, nil
}

// prepare checks one signed reading from client (a clientKey): shape,
// device, signature and rate. What passes is ready for the ingest
// pipeline. The device's budget is charged only once the signature
// verifies; an unknown or revoked device or a bad signature is charged to
// the client's address instead, and a client whose budget of such failures
// is spent is refused before anything is looked up or verified.
//
// device, when set, is the device the transport itself authenticated (an
// MQTT client certificate): a reading naming any other device is refused
// before anything is looked up, and charged to the client.
//
// The signed payload may be in either form (package payload); form, when
// set, is the one form the front door accepts: POST /v1/readings, the
// batch route and MQTT take the medprov reading JSON their contract names,
// POST /fhir/R4/Observation takes FHIR Observations only.
func (s *Server) prepare(ctx context.Context, client, device string, form payload.Form, raw []byte, tokens bool) (ingest.Reading, error) {
	if err := s.clientBlocked(client); err != nil {
		s.m.rejected.WithLabelValues("client_rate_limited").Inc()
		return ingest.Reading{}, err
	}
	env, err := envelope.Parse(raw)
	if err != nil {
		return ingest.Reading{}, err
	}
	p, err := payload.Parse(env.Payload)
	if err != nil {
		return ingest.Reading{}, err
	}
	if form != "" && p.Form != form {
		return ingest.Reading{}, badRequest("the signed payload must be a reading in the %s form here (a FHIR Observation on /fhir/R4)", form)
	}
	measured := p.Measured
	if device != "" && p.DeviceID != device {
		s.failLim.charge(client)
		s.m.rejected.WithLabelValues("other_device").Inc()
		return ingest.Reading{}, errf(wire.CodeForbidden, "reading names another device than the one authenticated")
	}
	if measured.After(s.cfg.Now().Add(maxFutureSkew)) {
		return ingest.Reading{}, badRequest("measuredAt is in the future")
	}
	dev, err := s.keys.device(ctx, p.DeviceID)
	if errors.Is(err, errUnknown) {
		s.failLim.charge(client)
		s.m.rejected.WithLabelValues("unknown_device").Inc()
		return ingest.Reading{}, errf(wire.CodeForbidden, "unknown device")
	}
	if err != nil {
		return ingest.Reading{}, err
	}
	if dev.Status != wire.StatusActive {
		s.failLim.charge(client)
		s.m.rejected.WithLabelValues("revoked_device").Inc()
		return ingest.Reading{}, errf(wire.CodeForbidden, "device is revoked")
	}
	// A device over its budget is refused before the ECDSA verification,
	// which is not charged for.
	if w := s.devLim.wait(dev.ID); tokens && w > 0 {
		s.m.rejected.WithLabelValues("rate_limited").Inc()
		return ingest.Reading{}, &apiError{Code: wire.CodeRateLimited, Message: "too many readings for this device", RetryAfter: w}
	}
	h := env.Hash()
	if err := s.cfg.Verifier.VerifyDigest(dev.key, h[:], env.Signature); err != nil {
		s.failLim.charge(client)
		s.m.rejected.WithLabelValues("bad_signature").Inc()
		return ingest.Reading{}, errf(wire.CodeUnauthenticated, "device signature does not verify")
	}
	if tokens && !s.devLim.allow(dev.ID) {
		s.m.rejected.WithLabelValues("rate_limited").Inc()
		return ingest.Reading{}, &apiError{Code: wire.CodeRateLimited, Message: "too many readings for this device", RetryAfter: time.Second}
	}
	return ingest.Reading{
		PatientID: dev.PatientID, Payload: env.Payload, Signature: env.Signature, DataHash: hex.EncodeToString(h[:]),
		DeviceID: p.DeviceID, Seq: p.Seq, Type: p.Type, Unit: p.Unit, MeasuredAt: measured.UTC().Format(time.RFC3339Nano),
	}, nil
}

// result is the answer for one reading and its HTTP status.
type result struct {
	wire.ReadingReceipt
	status int
}

func (r *result) reject(err error) {
	ae := toAPIError(err)
	r.Status, r.status, r.CID, r.Error = wire.StatusRejected, ae.Status(), "", &wire.ErrorBody{Code: ae.Code, Message: ae.Message}
}

// submit hands prepared readings to the ingest pipeline, releases the
// ingest slot and, if wait is set, waits (bounded by Limits.CommitWait) for
// their ledger outcome; readings whose outcome does not arrive in time stay
// "queued". rs[k] answers in res[at[k]].
func (s *Server) submit(ctx context.Context, rs []ingest.Reading, at []int, res []*result, wait bool, release func()) error {
	recs, err := s.queue(ctx, rs, at, res, wait, release)
	if err != nil || !wait {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, s.cfg.Limits.CommitWait)
	defer cancel()
	s.await(wctx, recs, at, res)
	return nil
}

// queue hands prepared readings to the ingest pipeline and releases the
// ingest slot; with watch, the receipts of the readings queued carry their
// ledger outcome (await). rs[k] answers in res[at[k]].
func (s *Server) queue(ctx context.Context, rs []ingest.Reading, at []int, res []*result, watch bool, release func()) ([]ingest.Receipt, error) {
	recs, err := s.cfg.Ingest.Submit(ctx, rs, watch)
	release() // the slot covers the CPU work, not the wait for a block
	if err != nil {
		return nil, err
	}
	queued := 0
	for k, rc := range recs {
		r := res[at[k]]
		r.ReadingID, r.DataHash = rs[k].ID(), rs[k].DataHash
		switch {
		case rc.Err != nil:
			if errors.Is(rc.Err, ingest.ErrConflict) {
				s.m.rejected.WithLabelValues("duplicate_seq").Inc()
			}
			r.reject(rc.Err)
		case rc.Known:
			r.Status, r.status = rc.Status, http.StatusOK
		default:
			r.Status, r.status, r.CID = rc.Status, http.StatusAccepted, rc.CID
			queued++
		}
	}
	s.m.ingested.Add(float64(queued))
	return recs, nil
}

// await waits until ctx is done for the ledger outcome of watched receipts
// and records each outcome that arrives in res[at[k]]; it returns the
// indexes k of those.
func (s *Server) await(ctx context.Context, recs []ingest.Receipt, at []int, res []*result) []int {
	var got []int
	for k, o := range s.cfg.Ingest.Await(ctx, recs) {
		got = append(got, k)
		r := res[at[k]]
		if o.State != ingest.StateRecorded {
			r.reject(outcomeError(o))
			continue
		}
		r.Status, r.status, r.TxID, r.Block = wire.StatusRecorded, http.StatusCreated, o.TxID, o.Block
	}
	return got
}

func (s *Server) postReading(c *gin.Context) {
	r, err := s.ingestOne(c, payload.FormMedprov)
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(r.status, r.ReadingReceipt)
}

// ingestOne runs the body of a request, one signed envelope whose payload
// is in form ("" for either), through the reading path (prepare, then
// submit; ?wait=commit waits for the ledger) and returns its answer, or
// the error to answer instead (a refusal of the reading included).
func (s *Server) ingestOne(c *gin.Context, form payload.Form) (*result, error) {
	body, err := readBody(c)
	if err != nil {
		return nil, err
	}
	wait := c.Query("wait") == "commit"
	release, err := s.admit(c)
	if err != nil {
		return nil, err
	}
	rd, err := s.prepare(c, clientKey(c), "", form, body, true)
	if err != nil {
		release()
		return nil, err
	}
	c.Set(ctxAuthenticated, true)
	res := []*result{{}}
	if err := s.submit(c, []ingest.Reading{rd}, []int{0}, res, wait, release); err != nil {
		return nil, err
	}
	r := res[0]
	if r.Error != nil {
		return nil, &apiError{Code: r.Error.Code, Message: r.Error.Message}
	}
	return r, nil
}

func (s *Server) postReadingBatch(c *gin.Context) {
	body, err := readBody(c)
	if err != nil {
		fail(c, err)
		return
	}
	raws, err := s.decodeBatch(body)
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
	rs, at, res, err := s.prepareAll(c, clientKey(c), "", raws, true)
	if err != nil {
		release()
		fail(c, err) // the ledger is down: refuse the whole batch, retryable
		return
	}
	if len(rs) > 0 {
		c.Set(ctxAuthenticated, true)
	}
	if len(rs) == 0 {
		release()
	} else if err := s.submit(c, rs, at, res, wait, release); err != nil {
		fail(c, err)
		return
	}
	out := wire.BatchReceipt{Results: make([]wire.ReadingReceipt, len(res))}
	for i, r := range res {
		out.Results[i] = r.ReadingReceipt
		if r.Error != nil {
			out.Rejected++
		} else {
			out.Accepted++
		}
	}
	status := http.StatusAccepted
	if wait {
		status = http.StatusOK
	}
	c.JSON(status, out)
}

// decodeBatch reads a batch body, {"readings":[envelope,...]}, of 1 to
// Limits.MaxBatchItems readings.
func (s *Server) decodeBatch(body []byte) ([]json.RawMessage, error) {
	var req wire.BatchRequest
	if err := wire.DecodeStrict(body, &req); err != nil {
		return nil, badRequest(`body must be {"readings":[envelope,...]}: %s`, wire.JSONProblem(err))
	}
	if len(req.Readings) == 0 || len(req.Readings) > s.cfg.Limits.MaxBatchItems {
		return nil, badRequest("a batch holds 1 to %d readings", s.cfg.Limits.MaxBatchItems)
	}
	return req.Readings, nil
}

// prepareAll prepares each reading of raws (see prepare) and returns those
// that passed, with their positions at, and one result per reading; a
// reading refused on its own is answered in its result. An error refusing
// the whole request (the ledger is down) is returned instead. With indexed,
// every result carries its reading's position.
func (s *Server) prepareAll(ctx context.Context, client, device string, raws []json.RawMessage, indexed bool) (rs []ingest.Reading, at []int, res []*result, err error) {
	res = make([]*result, len(raws))
	for i, raw := range raws {
		res[i] = &result{}
		if indexed {
			res[i].Index = &i
		}
		rd, err := s.prepare(ctx, client, device, payload.FormMedprov, raw, true)
		if err != nil {
			if toAPIError(err).Status() >= 500 {
				return nil, nil, nil, err
			}
			res[i].reject(err)
			continue
		}
		rs, at = append(rs, rd), append(at, i)
	}
	return rs, at, res, nil
}

// admit applies ingest pushback and takes an ingest slot; release it with
// the returned function. It refuses with 503 while the ledger is behind.
func (s *Server) admit(ctx context.Context) (func(), error) {
	if lag := s.cfg.Ingest.Lag(); lag > s.cfg.Limits.MaxLag {
		s.m.rejected.WithLabelValues("pushback").Inc()
		return nil, &apiError{Code: wire.CodeUnavailable,
			Message: "ingest is behind the ledger, retry later", RetryAfter: time.Second}
	}
	select {
	case s.slots <- struct{}{}:
		return func() { <-s.slots }, nil
	case <-ctx.Done():
		return nil, &apiError{Code: wire.CodeUnavailable,
			Message: "gateway busy, retry later", RetryAfter: time.Second, cause: ctx.Err()}
	}
}
