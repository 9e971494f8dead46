package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/medprov/medprov/envelope"
	"github.com/medprov/medprov/ingest"
	"github.com/medprov/medprov/ipfs"
	"github.com/medprov/medprov/ledger"
	"github.com/medprov/medprov/seal"
	"github.com/medprov/medprov/wire"
)

// apiError is an error with its code (which fixes the HTTP status) and a
// message safe to show.
type apiError struct {
	Code       wire.Code
	Message    string
	RetryAfter time.Duration
	cause      error
}

// Status returns the HTTP status of the error's code.
func (e *apiError) Status() int { return e.Code.Status() }

func (e *apiError) Error() string {
	if e.cause != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.cause)
	}
	return string(e.Code) + ": " + e.Message
}

func (e *apiError) Unwrap() error { return e.cause }

func errf(code wire.Code, format string, args ...any) *apiError {
	return &apiError{Code: code, Message: fmt.Sprintf(format, args...)}
}

func badRequest(format string, args ...any) *apiError {
	return errf(wire.CodeInvalid, format, args...)
}

// toAPIError is the one place that maps errors to statuses and client
// messages. Messages of chaincode refusals are the chaincode's own, which
// carry no PHI; anything unexpected becomes a constant message.
func toAPIError(err error) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	var we *wire.Error
	if errors.As(err, &we) {
		// A refusal by the chaincode or by the wire contract's own checks;
		// its message names fields and identifiers, never values.
		return &apiError{Code: we.Code, Message: we.Message, cause: err}
	}
	var ce *ledger.ChaincodeError
	if errors.As(err, &ce) {
		if cc, ok := wire.ParseError(ce.Message); ok {
			return &apiError{Code: cc.Code, Message: cc.Message, cause: err}
		}
		// Not the chaincode's verdict: a peer, chaincode server or orderer
		// failed, or the transaction lost an MVCC race. Worth retrying.
		return &apiError{Code: wire.CodeUnavailable, Message: "ledger could not complete the transaction, retry later", RetryAfter: 2 * time.Second, cause: err}
	}
	switch {
	case errors.Is(err, ledger.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		return &apiError{Code: wire.CodeUnavailable, Message: "ledger unavailable, retry later", RetryAfter: 2 * time.Second, cause: err}
	case errors.Is(err, ipfs.ErrUnavailable):
		return &apiError{Code: wire.CodeUnavailable, Message: "blob store unavailable, retry later", RetryAfter: 2 * time.Second, cause: err}
	case errors.Is(err, ingest.ErrQueueFull):
		return &apiError{Code: wire.CodeUnavailable, Message: "ingest queue full, retry later", RetryAfter: time.Second, cause: err}
	case errors.Is(err, seal.ErrErased):
		return &apiError{Code: wire.CodeForbidden, Message: "the patient erased their data: nothing more is stored for the patient", cause: err}
	case errors.Is(err, ingest.ErrConflict):
		return &apiError{Code: wire.CodeConflict, Message: "seq already used by a different reading of this device", cause: err}
	case errors.Is(err, envelope.ErrBadSignature):
		return &apiError{Code: wire.CodeUnauthenticated, Message: "signature does not verify", cause: err}
	case errors.Is(err, envelope.ErrMalformed):
		return &apiError{Code: wire.CodeInvalid, Message: "malformed envelope: expected {\"payload\",\"signature\"} in base64", cause: err}
	case errors.Is(err, envelope.ErrBadKey):
		return &apiError{Code: wire.CodeInvalid, Message: "public key must be a PEM ECDSA P-256 key", cause: err}
	}
	return &apiError{Code: wire.CodeInternal, Message: "internal error", cause: err}
}

// ctxErrCode holds the code of the error a request was answered with.
const ctxErrCode = "errCode"

// fail writes err as the response and records it for the request log
// (which logs its code and class, errKind, never its text).
func fail(c *gin.Context, err error) {
	ae := toAPIError(err)
	c.Set(ctxErrCode, ae.Code)
	if ae.RetryAfter > 0 {
		c.Header("Retry-After", strconv.Itoa(int((ae.RetryAfter+time.Second-1)/time.Second)))
	}
	if ae.Status() >= 500 {
		c.Error(err) //nolint:errcheck // recorded for the access log
	} else if ae.cause != nil {
		c.Error(ae.cause) //nolint:errcheck
	}
	c.AbortWithStatusJSON(ae.Status(), wire.ErrorResponse{Error: ae.body()})
}

// body is the error's wire form.
func (e *apiError) body() wire.ErrorBody { return wire.ErrorBody{Code: e.Code, Message: e.Message} }

// outcomeError is the error of a reading the ledger rejected.
func outcomeError(o ingest.Outcome) *apiError {
	code := o.Code
	if code.Status() == http.StatusInternalServerError {
		code = wire.CodeInvalid // a refusal without a known code is still about the input
	}
	return &apiError{Code: code, Message: o.Message}
}

// errKind names the class of err for the log: the sentinel or type it
// wraps, never its text. Error texts from the ledger, the chaincode and the
// keyring name pseudonymous IDs (patients, devices, actors, consents,
// readings), which must not reach the log; the request ID ties a log line
// to its request, and the class says which layer failed and how.
func errKind(err error) string {
	var ce *ledger.ChaincodeError
	var we *wire.Error
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case err == nil:
		return ""
	case errors.As(err, &ce):
		if cc, ok := wire.ParseError(ce.Message); ok {
			return "chaincode_refusal:" + string(cc.Code)
		}
		return "chaincode_failure:" + strconv.Itoa(int(ce.Status))
	case errors.As(err, &we):
		return "refusal:" + string(we.Code)
	}
	for _, k := range errKinds {
		if errors.Is(err, k.err) {
			return k.name
		}
	}
	switch {
	case errors.As(err, &se), errors.As(err, &te):
		return "json_decode"
	}
	var ae *apiError
	if errors.As(err, &ae) && ae.cause == nil {
		return "gateway:" + string(ae.Code)
	}
	leaf := err
	for {
		next := errors.Unwrap(leaf)
		if next == nil {
			break
		}
		leaf = next
	}
	return fmt.Sprintf("unclassified:%T", leaf)
}

// errKinds are the sentinels errKind recognises, most specific first.
var errKinds = []struct {
	err  error
	name string
}{
	{ledger.ErrUnavailable, "ledger_unavailable"},
	{ledger.ErrNotFound, "ledger_not_found"},
	{ipfs.ErrUnavailable, "blobs_unavailable"},
	{ipfs.ErrNotFound, "blob_not_found"},
	{ipfs.ErrCorrupt, "blob_corrupt"},
	{seal.ErrErased, "seal_erased"},
	{seal.ErrWrongKey, "seal_wrong_key"},
	{seal.ErrCorrupt, "seal_corrupt"},
	{seal.ErrClosed, "seal_closed"},
	{errEvidence, "evidence_mismatch"},
	{errUnknown, "unregistered"},
	{ingest.ErrQueueFull, "queue_full"},
	{ingest.ErrConflict, "seq_conflict"},
	{envelope.ErrBadSignature, "bad_signature"},
	{envelope.ErrMalformed, "malformed_envelope"},
	{envelope.ErrBadKey, "bad_key"},
	{context.DeadlineExceeded, "deadline_exceeded"},
	{context.Canceled, "canceled"},
}
