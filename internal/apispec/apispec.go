// Package apispec checks real HTTP traffic against the gateway's OpenAPI
// document, so that the contract served at /openapi.yaml cannot drift from
// what the gateway does.
//
// A Spec validates one exchange at a time: the request (route, path and
// query parameters, body, presence of the declared credential) and then the
// response (status declared for the operation, headers, content type, body
// schema). NewTransport wraps a client's http.RoundTripper and NewHandler
// wraps the gateway's http.Handler, so that every exchange of a test is
// checked and each mismatch is reported through testing.TB; Spec.Validate
// and Spec.Assert check a recorded pair, e.g. from httptest. Signatures are not verified here: the gateway does that, and
// the spec only promises which credential a request carries.
package apispec

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/medprov/medprov/gateway"
)

// Sentinel errors a *Mismatch wraps, for errors.Is.
var (
	// ErrNoOperation: the spec declares no operation for the request's
	// method and path.
	ErrNoOperation = errors.New("no operation in the spec for this method and path")
	// ErrRequest: the request does not conform to its operation
	// (parameters, body or credential).
	ErrRequest = errors.New("request does not conform to the spec")
	// ErrUndeclaredStatus: the operation does not declare the response's
	// status.
	ErrUndeclaredStatus = errors.New("response status is not declared for the operation")
	// ErrResponse: the response does not conform to what the operation
	// declares for its status (headers, content type or body).
	ErrResponse = errors.New("response does not conform to the spec")
)

// Mismatch reports an HTTP exchange that does not conform to the spec. It
// wraps one or more of the sentinel errors together with the validator's
// description of each problem.
type Mismatch struct {
	// Method and Target (path and query) of the request.
	Method, Target string
	// Status of the response.
	Status int
	// Operation is the operationId the request was routed to, or "" if
	// none matched.
	Operation string
	// Err describes what does not conform.
	Err error
}

// Error names the exchange and what does not conform.
func (m *Mismatch) Error() string {
	op := ""
	if m.Operation != "" {
		op = " (" + m.Operation + ")"
	}
	return fmt.Sprintf("%s %s -> %d%s: %v", m.Method, m.Target, m.Status, op, m.Err)
}

// Unwrap returns what does not conform.
func (m *Mismatch) Unwrap() error { return m.Err }

// Option changes what a Spec accepts.
type Option func(*Spec)

// AllowRefused makes a request that the spec does not allow acceptable when
// the gateway refused it, which is what a suite probing refusals (malformed
// bodies, missing signatures, unknown routes) does on purpose. Such a
// request passes when its response is a 4xx that its operation declares and
// that conforms, or, for a method and path with no operation, a 404 (405
// for a known path) whose body conforms to the spec's "Error" schema. A
// non-conforming request that the gateway accepted (2xx) is still a
// mismatch, and so is every non-conforming response.
//
// Without this option every non-conforming request and every request
// without an operation is a mismatch, whatever the answer.
func AllowRefused() Option { return func(s *Spec) { s.allowRefused = true } }

// Spec is a loaded, validated OpenAPI 3 document that checks HTTP exchanges
// against it. It is safe for concurrent use.
type Spec struct {
	doc          *openapi3.T
	router       routers.Router
	errorSchema  *openapi3.Schema
	allowRefused bool
}

// Load parses data (YAML or JSON), resolves its internal references and
// validates it as an OpenAPI 3 document, examples included. External
// references are refused.
func Load(ctx context.Context, data []byte, opts ...Option) (*Spec, error) {
	loader := openapi3.NewLoader()
	loader.Context = ctx
	doc, err := loader.LoadFromData(data)
	if err != nil {
		return nil, fmt.Errorf("apispec: load: %w", err)
	}
	if err := doc.Validate(ctx); err != nil {
		return nil, fmt.Errorf("apispec: validate: %w", err)
	}
	// Route by path alone: the servers list names where the gateway
	// usually runs, while tests serve it on any host and port.
	routed := *doc
	routed.Servers = nil
	router, err := legacy.NewRouter(&routed)
	if err != nil {
		return nil, fmt.Errorf("apispec: router: %w", err)
	}
	s := &Spec{doc: doc, router: router}
	if doc.Components != nil {
		if ref := doc.Components.Schemas["Error"]; ref != nil {
			s.errorSchema = ref.Value
		}
	}
	for _, o := range opts {
		o(s)
	}
	return s, nil
}

// Gateway loads the document the gateway serves at /openapi.yaml.
func Gateway(ctx context.Context, opts ...Option) (*Spec, error) {
	return Load(ctx, gateway.OpenAPI(), opts...)
}

// Document returns the loaded document. Callers must not modify it.
func (s *Spec) Document() *openapi3.T { return s.doc }

// CredentialPresent is an openapi3filter.AuthenticationFunc that accepts a
// security scheme when the request carries the credential the scheme
// declares (an HTTP bearer or basic Authorization header, or an API key in
// its header, query parameter or cookie), without judging its value: the
// gateway verifies tokens and signatures itself.
func CredentialPresent(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	ss := in.SecurityScheme
	req := in.RequestValidationInput.Request
	switch ss.Type {
	case "http":
		scheme, cred, ok := strings.Cut(req.Header.Get("Authorization"), " ")
		if !ok || !strings.EqualFold(scheme, ss.Scheme) || strings.TrimSpace(cred) == "" {
			return fmt.Errorf("missing Authorization: %s credential", ss.Scheme)
		}
	case "apiKey":
		present := false
		switch ss.In {
		case "header":
			present = req.Header.Get(ss.Name) != ""
		case "query":
			present = req.URL.Query().Get(ss.Name) != ""
		case "cookie":
			c, err := req.Cookie(ss.Name)
			present = err == nil && c.Value != ""
		}
		if !present {
			return fmt.Errorf("missing %s %q", ss.In, ss.Name)
		}
	default:
		return fmt.Errorf("security scheme type %q is not supported by apispec", ss.Type)
	}
	return nil
}

// Validate checks one exchange: req, whose body was reqBody (req.Body is
// not read), and resp, its response. resp.Body is read and replaced by a
// reader of the same bytes, so the caller can still read it. It returns nil
// when the exchange conforms and a *Mismatch otherwise.
func (s *Spec) Validate(ctx context.Context, req *http.Request, reqBody []byte, resp *http.Response) error {
	body, err := io.ReadAll(resp.Body)
	if cerr := resp.Body.Close(); err == nil {
		err = cerr
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("apispec: read response body: %w", err)
	}
	return s.check(ctx, req, reqBody, resp.StatusCode, resp.Header, body)
}

// check validates an exchange whose bodies are in memory.
func (s *Spec) check(ctx context.Context, req *http.Request, reqBody []byte, status int, header http.Header, respBody []byte) error {
	// Validation may read and rewrite the request (body, defaults); it
	// works on a copy so the caller's request is left as it was.
	r := req.Clone(context.WithoutCancel(ctx))
	setBody(r, reqBody)
	m := &Mismatch{Method: req.Method, Target: req.URL.RequestURI(), Status: status}

	route, params, err := s.router.FindRoute(r)
	if err != nil {
		if s.allowRefused {
			err = s.checkUnrouted(err, status, header, respBody)
		} else {
			err = fmt.Errorf("%w: %w", ErrNoOperation, err)
		}
		if err == nil {
			return nil
		}
		m.Err = err
		return m
	}
	m.Operation = route.Operation.OperationID

	opts := s.filterOptions()
	in := &openapi3filter.RequestValidationInput{Request: r, PathParams: params, Route: route, Options: opts}
	var errs []error
	reqErr := openapi3filter.ValidateRequest(ctx, in)
	refused := s.allowRefused && status >= 400 && status < 500
	if reqErr != nil && !refused {
		errs = append(errs, fmt.Errorf("%w: %w", ErrRequest, reqErr))
	}
	if route.Operation.Responses.Status(status) == nil && route.Operation.Responses.Default() == nil {
		errs = append(errs, fmt.Errorf("%w: %s", ErrUndeclaredStatus, declared(route.Operation)))
	} else {
		out := &openapi3filter.ResponseValidationInput{
			RequestValidationInput: in, Status: status, Header: header, Options: opts,
		}
		out.SetBodyBytes(respBody)
		if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
			errs = append(errs, fmt.Errorf("%w: %w", ErrResponse, err))
		}
	}
	if len(errs) == 0 {
		return nil
	}
	if reqErr != nil && refused {
		// The refusal itself is wrong; say what it refused.
		errs = append(errs, fmt.Errorf("%w (refused): %w", ErrRequest, reqErr))
	}
	m.Err = errors.Join(errs...)
	return m
}

// checkUnrouted decides, under AllowRefused, whether a request with no
// operation was refused the way the gateway refuses unknown routes.
func (s *Spec) checkUnrouted(routeErr error, status int, header http.Header, body []byte) error {
	want := http.StatusNotFound
	if routeErr.Error() == routers.ErrMethodNotAllowed.Error() {
		want = http.StatusMethodNotAllowed
	}
	if status != want {
		return fmt.Errorf("%w (%v) and the answer is %d, not a %d refusal", ErrNoOperation, routeErr, status, want)
	}
	if s.errorSchema == nil {
		return nil
	}
	if ct := header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		return fmt.Errorf("%w: refusal of a request with no operation has Content-Type %q, want application/json", ErrResponse, ct)
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return fmt.Errorf("%w: refusal of a request with no operation is not JSON: %w", ErrResponse, err)
	}
	var vopts []openapi3.SchemaValidationOption
	if s.doc.IsOpenAPI31OrLater() {
		vopts = append(vopts, openapi3.EnableJSONSchema2020())
	}
	if err := s.doc.ValidateSchemaJSON(s.errorSchema, v, vopts...); err != nil {
		return fmt.Errorf("%w: refusal of a request with no operation does not match the Error schema: %w", ErrResponse, err)
	}
	return nil
}

func (s *Spec) filterOptions() *openapi3filter.Options {
	opts := &openapi3filter.Options{
		IncludeResponseStatus:             true,
		MultiError:                        true,
		RejectWhenRequestBodyNotSpecified: true,
		SkipSettingDefaults:               true,
		AuthenticationFunc:                CredentialPresent,
	}
	opts.WithCustomSchemaErrorFunc(schemaReason)
	return opts
}

// schemaReason describes a schema violation by where it is and why, without
// echoing the whole schema and value into the test log.
func schemaReason(err *openapi3.SchemaError) string {
	// The JSON Schema 2020-12 validator (OpenAPI 3.1) heads its tree of
	// causes, each naming its location, with a line that says nothing.
	if head, tree, ok := strings.Cut(err.Reason, "\n"); ok && strings.Contains(head, "jsonschema validation failed") {
		return strings.TrimSpace(tree)
	}
	if p := err.JSONPointer(); len(p) > 0 {
		return "at /" + strings.Join(p, "/") + ": " + err.Reason
	}
	return err.Reason
}

// declared lists the statuses an operation declares, for messages.
func declared(op *openapi3.Operation) string {
	var codes []string
	for code := range op.Responses.Map() {
		codes = append(codes, code)
	}
	slices.Sort(codes)
	return "declared: " + strings.Join(codes, ", ")
}

// setBody gives r a body of b that can be read again (GetBody).
func setBody(r *http.Request, b []byte) {
	if len(b) == 0 {
		r.Body, r.GetBody, r.ContentLength = http.NoBody, nil, 0
		return
	}
	r.ContentLength = int64(len(b))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	r.Body = io.NopCloser(bytes.NewReader(b))
}
