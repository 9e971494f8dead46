package wire

import (
	"fmt"
	"net/http"
	"strings"
)

// Code classifies an error. Clients branch on it; each code has one HTTP
// status ([Code.Status]).
type Code string

// Error codes. The first five are also the chaincode's refusals; the others
// are the gateway's own.
const (
	// CodeInvalid: malformed input (400).
	CodeInvalid Code = "invalid"
	// CodeUnauthenticated: signature, key, issuedAt or actor cannot be
	// authenticated (401).
	CodeUnauthenticated Code = "unauthenticated"
	// CodeForbidden: authenticated but not allowed, e.g. wrong role, revoked
	// or unknown device, no consent (403).
	CodeForbidden Code = "forbidden"
	// CodeNotFound: the named record or route does not exist (404).
	CodeNotFound Code = "not_found"
	// CodeConflict: duplicate id, duplicate seq, replayed nonce, already
	// revoked (409).
	CodeConflict Code = "conflict"
	// CodeMethodNotAllowed: the route exists for another method (405).
	CodeMethodNotAllowed Code = "method_not_allowed"
	// CodeTooLarge: the request body is over its limit (413).
	CodeTooLarge Code = "too_large"
	// CodeRateLimited: too many requests from one device or actor (429).
	CodeRateLimited Code = "rate_limited"
	// CodeInternal: the gateway failed; nothing about the input (500).
	CodeInternal Code = "internal"
	// CodeUnavailable: the ledger or blob store is unreachable or behind;
	// retry after the Retry-After delay (503).
	CodeUnavailable Code = "unavailable"
)

// Status returns the HTTP status of c, or 500 for an unknown code.
func (c Code) Status() int {
	switch c {
	case CodeInvalid:
		return http.StatusBadRequest
	case CodeUnauthenticated:
		return http.StatusUnauthorized
	case CodeForbidden:
		return http.StatusForbidden
	case CodeNotFound:
		return http.StatusNotFound
	case CodeConflict:
		return http.StatusConflict
	case CodeMethodNotAllowed:
		return http.StatusMethodNotAllowed
	case CodeTooLarge:
		return http.StatusRequestEntityTooLarge
	case CodeRateLimited:
		return http.StatusTooManyRequests
	case CodeUnavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// refusal reports whether c is one of the chaincode's refusal codes.
func (c Code) refusal() bool {
	switch c {
	case CodeInvalid, CodeUnauthenticated, CodeForbidden, CodeNotFound, CodeConflict:
		return true
	}
	return false
}

// ErrorBody is the wire form of an error: the value of "error" in every
// error response, {"code","message"}, and of a rejected batch item.
type ErrorBody struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
}

const errorMarker = "[medprov:"

// Error is a refusal with its code. The chaincode returns every refusal as
// an *Error whose text, "[medprov:<code>] <message>", survives Fabric's
// wrapping of chaincode messages and is recovered with [ParseError].
// Messages carry identifiers (pseudonymous ids, hashes) at most: never PHI,
// never secrets.
type Error struct {
	Code    Code
	Message string
}

// Errorf returns an *Error with code and a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Error implements error.
func (e *Error) Error() string { return errorMarker + string(e.Code) + "] " + e.Message }

// Status returns the HTTP status of the error's code.
func (e *Error) Status() int { return e.Code.Status() }

// ParseError finds a chaincode refusal marker anywhere in msg (Fabric wraps
// chaincode messages, e.g. "chaincode response 500, [medprov:forbidden]
// device revoked") and returns the refusal. The message runs from after the
// marker to the end of msg. It reports false if msg holds no marker with a
// refusal code.
func ParseError(msg string) (*Error, bool) {
	rest := msg
	for {
		i := strings.Index(rest, errorMarker)
		if i < 0 {
			return nil, false
		}
		rest = rest[i+len(errorMarker):]
		j := strings.IndexByte(rest, ']')
		if j < 0 {
			return nil, false
		}
		if code := Code(rest[:j]); code.refusal() {
			return &Error{Code: code, Message: strings.TrimSpace(rest[j+1:])}, true
		}
	}
}
