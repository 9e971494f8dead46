// Package client is the Go SDK for the medprov gateway's HTTP API.
//
// A Client speaks the v1 routes: admins register actors with a bearer
// token; devices submit readings signed with their device key; operators,
// patients, researchers and regulators sign every action (and every GET)
// with their actor key, so the gateway never has to be trusted for who did
// what. Builders (NewReading, SignReading, NewActionHeader, SignPayload,
// SignedGetHeader) produce the exact wire payloads, and
// VerifyReleasedReading checks what a researcher receives against the
// ledger's hash and the device's signature, locally. RevokeActor,
// RevokeOrgActor, RotateKey and ErasePatient cover an identity's lifecycle;
// Devices, Device and Actors read the ledger's registries (registry.go);
// Backup streams a backup of the node (admin token). SetRelyingParty,
// Invite, EnrolmentOptions and Enrol enrol people with passkeys, and a
// client made WithPasskey signs with one (passkeys.go).
//
// Refusals come back as *APIError, which matches the sentinel errors
// (ErrNotFound, ErrForbidden, ...) with errors.Is. The client never retries
// on its own: a signed action carries a nonce the ledger accepts once, so
// retrying is a decision for the caller (resending the same reading envelope
// is safe: the gateway answers "exists").
package client

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/medprov/medprov/wire"
)

// MaxResponseBytes bounds the size of a response body the client reads.
const MaxResponseBytes = 64 << 20

// Client calls one medprov gateway. It is safe for concurrent use.
type Client struct {
	base       *url.URL
	http       *http.Client
	adminToken string
	actorID    string
	actorKey   *ecdsa.PrivateKey
	passkey    PasskeySigner // WithPasskey: signs instead of actorKey
	now        func() time.Time
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient makes the client send requests with hc instead of
// http.DefaultClient.
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.http = hc } }

// WithAdminToken sets the bearer token RegisterActor sends.
func WithAdminToken(token string) Option { return func(c *Client) { c.adminToken = token } }

// WithActor makes the client sign actions and GET requests as actor id with
// key. Without it, signed routes fail before any request is sent.
func WithActor(id string, key *ecdsa.PrivateKey) Option {
	return func(c *Client) { c.actorID, c.actorKey = id, key }
}

// WithClock sets the clock used for issuedAt (default time.Now).
func WithClock(now func() time.Time) Option { return func(c *Client) { c.now = now } }

// New returns a client for the gateway at baseURL, e.g.
// "http://127.0.0.1:8080". A path in baseURL is kept as a prefix of every
// route.
func New(baseURL string, opts ...Option) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil {
		return nil, fmt.Errorf("gateway URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("gateway URL %q: want http(s)://host[:port]", baseURL)
	}
	c := &Client{base: u, http: http.DefaultClient, now: time.Now}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// ActorID returns the id the client signs as, or "" if it has no actor.
func (c *Client) ActorID() string { return c.actorID }

// BaseURL returns the gateway URL the client calls.
func (c *Client) BaseURL() string { return c.base.String() }

// ErrNoActor reports a signed call on a client made without WithActor.
var ErrNoActor = errors.New("client has no actor key (use WithActor)")

// Sentinel errors an *APIError matches with errors.Is, by HTTP status.
var (
	ErrInvalid         = errors.New("invalid request")   // 400
	ErrUnauthenticated = errors.New("unauthenticated")   // 401
	ErrForbidden       = errors.New("forbidden")         // 403
	ErrNotFound        = errors.New("not found")         // 404
	ErrConflict        = errors.New("conflict")          // 409
	ErrTooLarge        = errors.New("request too large") // 413
	ErrRateLimited     = errors.New("rate limited")      // 429
	ErrUnavailable     = errors.New("unavailable")       // 503
)

// APIError is an error response from the gateway.
type APIError struct {
	// Status is the HTTP status code.
	Status int
	// Code is the stable machine-readable code from the body, e.g.
	// "forbidden" or "no_consent"; empty if the body had none.
	Code wire.Code
	// Message is the server's human-readable message.
	Message string
	// AccessID is set when an access request was denied: the denial was
	// still recorded on the ledger under this id.
	AccessID string
	// RetryAfter is the server's Retry-After hint (429, 503), or zero.
	RetryAfter time.Duration
}

// Error implements error.
func (e *APIError) Error() string {
	s := fmt.Sprintf("gateway: %d", e.Status)
	if e.Code != "" {
		s += " " + string(e.Code)
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.AccessID != "" {
		s += " (access " + e.AccessID + ")"
	}
	return s
}

// Is reports whether target is the sentinel error for e's status.
func (e *APIError) Is(target error) bool {
	var want error
	switch e.Status {
	case http.StatusBadRequest:
		want = ErrInvalid
	case http.StatusUnauthorized:
		want = ErrUnauthenticated
	case http.StatusForbidden:
		want = ErrForbidden
	case http.StatusNotFound:
		want = ErrNotFound
	case http.StatusConflict:
		want = ErrConflict
	case http.StatusRequestEntityTooLarge:
		want = ErrTooLarge
	case http.StatusTooManyRequests:
		want = ErrRateLimited
	case http.StatusServiceUnavailable:
		want = ErrUnavailable
	}
	return want != nil && target == want
}

// parseAPIError builds the *APIError for a non-2xx response.
func parseAPIError(resp *http.Response, body []byte) *APIError {
	e := &APIError{Status: resp.StatusCode}
	var v struct {
		Error    *wire.ErrorBody `json:"error"`
		AccessID string          `json:"accessId"`
	}
	if err := json.Unmarshal(body, &v); err == nil && v.Error != nil {
		e.Code, e.Message, e.AccessID = v.Error.Code, v.Error.Message, v.AccessID
	} else {
		e.Message = strings.TrimSpace(string(body))
		if len(e.Message) > 200 {
			e.Message = e.Message[:200] + "..."
		}
		if e.Message == "" {
			e.Message = http.StatusText(resp.StatusCode)
		}
	}
	e.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	return e
}

// parseRetryAfter reads delay-seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// request describes one call.
type request struct {
	method string
	path   string // escaped route path (segments through seg)
	query  url.Values
	body   any  // JSON-marshalled when non-nil
	admin  bool // send the admin token
	signed bool // GET: send X-Medprov-Signature
}

// do sends r and decodes a 2xx body into out (if non-nil). It returns the
// response status.
func (c *Client) do(ctx context.Context, r request, out any) (int, error) {
	u := *c.base
	u.RawPath = c.base.EscapedPath() + r.path
	p, err := url.PathUnescape(u.RawPath)
	if err != nil {
		return 0, fmt.Errorf("request path %q: %w", r.path, err)
	}
	u.Path = p
	if len(r.query) > 0 {
		u.RawQuery = r.query.Encode()
	}
	var body io.Reader
	if r.body != nil {
		b, err := json.Marshal(r.body)
		if err != nil {
			return 0, fmt.Errorf("marshal request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, u.String(), body)
	if err != nil {
		return 0, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	if r.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if r.admin {
		if c.adminToken == "" {
			return 0, errors.New("client has no admin token (use WithAdminToken)")
		}
		req.Header.Set("Authorization", "Bearer "+c.adminToken)
	}
	if r.signed {
		// Sign exactly the request-target the transport will send.
		h, err := c.signGet(ctx, req.URL.RequestURI())
		if err != nil {
			return 0, err
		}
		req.Header.Set(wire.SignatureHeader, h)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, fmt.Errorf("%s %s: %w", r.method, r.path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes+1))
	if err != nil {
		return resp.StatusCode, fmt.Errorf("%s %s: read response: %w", r.method, r.path, err)
	}
	if len(b) > MaxResponseBytes {
		return resp.StatusCode, fmt.Errorf("%s %s: response larger than %d bytes", r.method, r.path, MaxResponseBytes)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, parseAPIError(resp, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: decode response: %w", r.method, r.path, err)
		}
	}
	return resp.StatusCode, nil
}

// seg escapes one path segment.
func seg(s string) string { return url.PathEscape(s) }

func pageQuery(p PageRequest) url.Values {
	q := url.Values{}
	if p.PageSize > 0 {
		q.Set("pageSize", strconv.Itoa(p.PageSize))
	}
	if p.Bookmark != "" {
		q.Set("bookmark", p.Bookmark)
	}
	return q
}

// RetryAfter returns how long to wait before retrying after err: the
// server's Retry-After (at least a second) when err is a rate limit (429) or
// pushback (503), else 0, meaning do not retry.
func RetryAfter(err error) time.Duration {
	var ae *APIError
	if errors.As(err, &ae) && (errors.Is(err, ErrRateLimited) || errors.Is(err, ErrUnavailable)) {
		if ae.RetryAfter > 0 {
			return ae.RetryAfter
		}
		return time.Second
	}
	return 0
}
