package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/medprov/medprov/chaincode"
	"github.com/medprov/medprov/envelope"
	"github.com/medprov/medprov/ingest"
	"github.com/medprov/medprov/ipfs"
	"github.com/medprov/medprov/ledger"
)

// Error codes of the wire contract.
const (
	CodeInvalid         = "invalid"
	CodeUnauthenticated = "unauthenticated"
	CodeForbidden       = "forbidden"
	CodeNotFound        = "not_found"
	CodeConflict        = "conflict"
	CodeTooLarge        = "too_large"
	CodeRateLimited     = "rate_limited"
	CodeUnavailable     = "unavailable"
	CodeInternal        = "internal"
	CodeMethod          = "method_not_allowed"
)

// apiError is an error with its HTTP status and a message safe to show.
type apiError struct {
	Status     int
	Code       string
	Message    string
	RetryAfter time.Duration
	cause      error
}

func (e *apiError) Error() string {
	if e.cause != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.cause)
	}
	return e.Code + ": " + e.Message
}

func (e *apiError) Unwrap() error { return e.cause }

func errf(status int, code, format string, args ...any) *apiError {
	return &apiError{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

func badRequest(format string, args ...any) *apiError {
	return errf(http.StatusBadRequest, CodeInvalid, format, args...)
}

// toAPIError is the one place that maps errors to statuses and client
// messages. Messages of chaincode refusals are the chaincode's own, which
// carry no PHI; anything unexpected becomes a constant message.
func toAPIError(err error) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	var lr *ledgerRefusal
	if errors.As(err, &lr) {
		cc := chaincode.Error{Code: chaincode.Code(lr.code), Message: lr.msg}
		st := cc.Status()
		if st == http.StatusInternalServerError {
			st = http.StatusBadRequest
		}
		return &apiError{Status: st, Code: lr.code, Message: lr.msg}
	}
	var ce *ledger.ChaincodeError
	if errors.As(err, &ce) {
		if cc, ok := chaincode.ParseError(ce.Message); ok {
			return &apiError{Status: cc.Status(), Code: string(cc.Code), Message: cc.Message, cause: err}
		}
		// Not the chaincode's verdict: a peer, chaincode server or orderer
		// failed, or the transaction lost an MVCC race. Worth retrying.
		return &apiError{Status: http.StatusServiceUnavailable, Code: CodeUnavailable, Message: "ledger could not complete the transaction, retry later", RetryAfter: 2 * time.Second, cause: err}
	}
	switch {
	case errors.Is(err, ledger.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		return &apiError{Status: http.StatusServiceUnavailable, Code: CodeUnavailable, Message: "ledger unavailable, retry later", RetryAfter: 2 * time.Second, cause: err}
	case errors.Is(err, ipfs.ErrUnavailable):
		return &apiError{Status: http.StatusServiceUnavailable, Code: CodeUnavailable, Message: "blob store unavailable, retry later", RetryAfter: 2 * time.Second, cause: err}
	case errors.Is(err, ingest.ErrQueueFull):
		return &apiError{Status: http.StatusServiceUnavailable, Code: CodeUnavailable, Message: "ingest queue full, retry later", RetryAfter: time.Second, cause: err}
	case errors.Is(err, ingest.ErrConflict):
		return &apiError{Status: http.StatusConflict, Code: CodeConflict, Message: "seq already used by a different reading of this device", cause: err}
	case errors.Is(err, envelope.ErrBadSignature):
		return &apiError{Status: http.StatusUnauthorized, Code: CodeUnauthenticated, Message: "signature does not verify", cause: err}
	case errors.Is(err, envelope.ErrMalformed):
		return &apiError{Status: http.StatusBadRequest, Code: CodeInvalid, Message: "malformed envelope: expected {\"payload\",\"signature\"} in base64", cause: err}
	case errors.Is(err, envelope.ErrBadKey):
		return &apiError{Status: http.StatusBadRequest, Code: CodeInvalid, Message: "public key must be a PEM ECDSA P-256 key", cause: err}
	}
	return &apiError{Status: http.StatusInternalServerError, Code: CodeInternal, Message: "internal error", cause: err}
}

// errField is the wire form of an error: {"code","message"}, the value of
// "error" in every error response and in per-item results.
type errField struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// fail writes err as the response and logs its cause.
func fail(c *gin.Context, err error) {
	ae := toAPIError(err)
	if ae.RetryAfter > 0 {
		c.Header("Retry-After", strconv.Itoa(int((ae.RetryAfter+time.Second-1)/time.Second)))
	}
	if ae.Status >= 500 {
		c.Error(err) //nolint:errcheck // recorded for the access log
	} else if ae.cause != nil {
		c.Error(ae.cause) //nolint:errcheck
	}
	c.AbortWithStatusJSON(ae.Status, gin.H{"error": errField{ae.Code, ae.Message}})
}

// ledgerRefusal is a per-item refusal reported inside a committed batch.
type ledgerRefusal struct{ code, msg string }

func (e *ledgerRefusal) Error() string { return e.code + ": " + e.msg }
