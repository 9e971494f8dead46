package gateway

import (
	"context"
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

// fail writes err as the response and logs its cause.
func fail(c *gin.Context, err error) {
	ae := toAPIError(err)
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
