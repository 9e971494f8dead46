package apispec

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// NewTransport returns a RoundTripper that sends each request through base
// (http.DefaultTransport when nil) and checks the exchange against the
// gateway's OpenAPI document, reporting every mismatch as a test failure
// through tb. It fails the test at once if the document does not load, so
// call it from the test's goroutine; the transport itself may be used from
// any goroutine. Request and response bodies stay readable by the caller.
func NewTransport(tb testing.TB, base http.RoundTripper, opts ...Option) http.RoundTripper {
	tb.Helper()
	s, err := Gateway(tb.Context(), opts...)
	require.NoError(tb, err, "load the gateway's OpenAPI document")
	return s.Transport(tb, base)
}

// Transport is NewTransport for this Spec.
func (s *Spec) Transport(tb testing.TB, base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return &transport{tb: tb, spec: s, base: base}
}

// NewHandler returns a handler that serves each request with next and
// checks the exchange against the gateway's OpenAPI document, reporting
// every mismatch as a test failure through tb; put it in front of the
// gateway's handler (httptest.NewServer(NewHandler(t, srv.Handler()))) to
// check every client of a test at once. Like NewTransport, it fails the
// test at once if the document does not load. The response is buffered and
// then written unchanged.
func NewHandler(tb testing.TB, next http.Handler, opts ...Option) http.Handler {
	tb.Helper()
	s, err := Gateway(tb.Context(), opts...)
	require.NoError(tb, err, "load the gateway's OpenAPI document")
	return s.Handler(tb, next)
}

// Handler is NewHandler for this Spec.
func (s *Spec) Handler(tb testing.TB, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, "apispec: read request body: "+err.Error(), http.StatusBadRequest)
			return
		}
		setBody(r, body)
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r)
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes()) // a client gone away is not the spec's concern
		if err := s.check(context.WithoutCancel(r.Context()), r, body, rec.Code, rec.Header(), rec.Body.Bytes()); err != nil {
			assert.Fail(tb, "HTTP exchange does not conform to the OpenAPI document", err.Error())
		}
	})
}

// Assert checks one recorded exchange as Validate does and reports a
// mismatch as a test failure through tb (with assert, so the test goes
// on). It returns whether the exchange conforms.
func (s *Spec) Assert(tb testing.TB, req *http.Request, reqBody []byte, resp *http.Response) bool {
	tb.Helper()
	return assert.NoError(tb, s.Validate(tb.Context(), req, reqBody, resp), "HTTP exchange does not conform to the OpenAPI document")
}

type transport struct {
	tb   testing.TB
	spec *Spec
	base http.RoundTripper
}

// RoundTrip sends a copy of req with its body buffered, then checks the
// exchange. Failing to send is returned as is: it is not the spec's
// concern.
func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil && req.Body != http.NoBody {
		b, err := io.ReadAll(req.Body)
		if cerr := req.Body.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, fmt.Errorf("apispec: read request body: %w", err)
		}
		body = b
	}
	out := req.Clone(req.Context())
	setBody(out, body)
	resp, err := t.base.RoundTrip(out)
	if err != nil {
		return nil, err
	}
	rbody, err := io.ReadAll(resp.Body)
	if cerr := resp.Body.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("apispec: read response body: %w", err)
	}
	resp.Body = io.NopCloser(bytes.NewReader(rbody))
	if err := t.spec.check(context.WithoutCancel(req.Context()), out, body, resp.StatusCode, resp.Header, rbody); err != nil {
		assert.Fail(t.tb, "HTTP exchange does not conform to the OpenAPI document", err.Error())
	}
	return resp, nil
}
