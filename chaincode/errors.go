package chaincode

import (
	"fmt"
	"strings"
)

// Code classifies a refusal by the chaincode. Each code maps to one HTTP
// status at the gateway (see Status).
type Code string

// Refusal codes. They are part of the wire contract: the gateway maps them to
// HTTP statuses and clients branch on them.
const (
	// CodeInvalid: malformed input (400).
	CodeInvalid Code = "invalid"
	// CodeUnauthenticated: signature, key, issuedAt or actor cannot be
	// authenticated (401).
	CodeUnauthenticated Code = "unauthenticated"
	// CodeForbidden: authenticated but not allowed, e.g. wrong role, revoked
	// or unknown device (403).
	CodeForbidden Code = "forbidden"
	// CodeNotFound: the named record does not exist (404).
	CodeNotFound Code = "not_found"
	// CodeConflict: duplicate id, duplicate seq, replayed nonce, already
	// revoked (409).
	CodeConflict Code = "conflict"
)

const errorMarker = "[medprov:"

// Error is every refusal the chaincode returns. Its Error() text is
// "[medprov:<code>] <message>", which survives Fabric's wrapping of chaincode
// messages and is recovered with ParseError. Messages carry identifiers
// (pseudonymous ids, hashes) at most: never PHI, never secrets.
type Error struct {
	Code    Code
	Message string
}

// Error implements error.
func (e *Error) Error() string { return errorMarker + string(e.Code) + "] " + e.Message }

// Status returns the HTTP status the code stands for (400, 401, 403, 404,
// 409), or 500 for an unknown code.
func (e *Error) Status() int {
	switch e.Code {
	case CodeInvalid:
		return 400
	case CodeUnauthenticated:
		return 401
	case CodeForbidden:
		return 403
	case CodeNotFound:
		return 404
	case CodeConflict:
		return 409
	}
	return 500
}

// ParseError finds a chaincode refusal marker anywhere in msg (Fabric wraps
// chaincode messages, e.g. "chaincode response 500, [medprov:forbidden]
// device revoked") and returns the refusal. The message runs from after the
// marker to the end of msg. It reports false if msg holds no marker with a
// known code.
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
		code := Code(rest[:j])
		switch code {
		case CodeInvalid, CodeUnauthenticated, CodeForbidden, CodeNotFound, CodeConflict:
			return &Error{Code: code, Message: strings.TrimSpace(rest[j+1:])}, true
		}
	}
}

func refuse(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

func invalid(format string, args ...any) *Error { return refuse(CodeInvalid, format, args...) }
