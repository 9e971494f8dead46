package gateway

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/medprov/medprov/wire"
)

const requestIDHeader = "X-Request-Id"

// requestID tags each request with an ID (the client's, if well-formed) and
// echoes it in the response.
func (s *Server) requestID(c *gin.Context) {
	id := c.GetHeader(requestIDHeader)
	if len(id) == 0 || len(id) > 64 || !printableASCII(id) {
		var b [12]byte
		if _, err := rand.Read(b[:]); err != nil {
			panic(fmt.Sprintf("crypto/rand failed: %v", err)) // the runtime guarantees it does not
		}
		id = hex.EncodeToString(b[:])
	}
	c.Set("requestID", id)
	c.Header(requestIDHeader, id)
	c.Next()
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// logRequest writes one structured line per request and records metrics.
// It logs the route pattern, never path parameters or bodies, and of an
// error its code and class (errKind), never its text, so no pseudonymous
// ID or reading content reaches the log. 4xx answers to requests that did
// not authenticate (floods of forged, unsigned or malformed requests) are
// logged at a bounded rate (Limits.UnauthenticatedLogRate); the lines left
// out are counted.
func (s *Server) logRequest(c *gin.Context) {
	start := time.Now()
	c.Next()
	route := c.FullPath()
	if route == "" {
		route = "unmatched"
	}
	took := time.Since(start)
	status := c.Writer.Status()
	s.m.requests.WithLabelValues(route, c.Request.Method, strconv.Itoa(status)).Inc()
	s.m.latency.WithLabelValues(route, c.Request.Method).Observe(took.Seconds())
	attrs := []any{
		"requestId", c.GetString("requestID"), "method", c.Request.Method, "route", route,
		"status", status, "durationMs", float64(took.Microseconds()) / 1000,
	}
	if code, ok := c.Get(ctxErrCode); ok {
		attrs = append(attrs, "errCode", code)
	}
	if len(c.Errors) > 0 {
		attrs = append(attrs, "errKind", errKind(c.Errors.Last().Err))
	}
	switch {
	case status >= 500:
		s.log.Error("request", attrs...)
	case status >= 400:
		if s.quietLog != nil && !c.GetBool(ctxAuthenticated) && !s.quietLog.Allow() {
			s.m.logSuppressed.Inc()
			return
		}
		s.log.Info("request", attrs...)
	default:
		s.log.Debug("request", attrs...)
	}
}

// recover turns a panic into a 500 with the constant message; it is a bug,
// so it is logged at error level with the request ID.
func (s *Server) recover(c *gin.Context) {
	defer func() {
		if r := recover(); r != nil {
			if r == http.ErrAbortHandler {
				panic(r)
			}
			s.log.Error("panic in handler", "requestId", c.GetString("requestID"), "panic", fmt.Sprint(r))
			fail(c, errf(wire.CodeInternal, "internal error"))
		}
	}()
	c.Next()
}
