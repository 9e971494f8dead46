package gateway

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/medprov/medprov/envelope"
	"github.com/medprov/medprov/wire"
)

// Context keys the authentication steps set.
const (
	// ctxAuthenticated is set once the request proved who sent it (a
	// signature or the admin token verified); logRequest bounds the log
	// lines of 4xx answers to requests without it.
	ctxAuthenticated = "authenticated"
	// ctxActionNonce holds the actionNonce of a verified signed action.
	ctxActionNonce = "actionNonce"
	// ctxActionCommitted marks a signed action the ledger committed though
	// the answer is not 2xx (an access denial).
	ctxActionCommitted = "actionCommitted"
)

// errBadSignature answers every signature that cannot be verified, whether
// the key is wrong or the actor unknown, so the answer does not tell which
// actor IDs exist.
var errBadSignature = errf(wire.CodeUnauthenticated, "signature does not verify")

// requireAdmin checks the bearer admin token in constant time.
func (s *Server) requireAdmin(c *gin.Context) {
	if !s.admitClient(c) {
		return
	}
	h := c.GetHeader("Authorization")
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || subtle.ConstantTimeCompare([]byte(tok), []byte(s.cfg.AdminToken)) != 1 {
		s.authFailed(c, errf(wire.CodeUnauthenticated, "admin bearer token required"))
		return
	}
	c.Set(ctxAuthenticated, true)
	c.Next()
}

// admitClient refuses, with 429 and Retry-After, a request whose client
// address has spent its budget of failed authentications, before anything
// is parsed, looked up or verified. It reports whether to go on.
func (s *Server) admitClient(c *gin.Context) bool {
	if err := s.clientBlocked(clientKey(c)); err != nil {
		fail(c, err)
		return false
	}
	return true
}

// clientBlocked is admitClient for one client address.
func (s *Server) clientBlocked(client string) error {
	if w := s.failLim.wait(client); w > 0 {
		return &apiError{Code: wire.CodeRateLimited, Message: "too many failed authentications from this address", RetryAfter: w}
	}
	return nil
}

// authFailed answers err and charges the failure to the client's address,
// never to the device or actor the request names.
func (s *Server) authFailed(c *gin.Context, err error) {
	s.failLim.charge(clientKey(c))
	fail(c, err)
}

// actorSigned returns the actor who signed env: with its PEM key for a
// plain envelope, with one of its passkeys for a passkey envelope
// (passkeySigned). A plain signature that does not verify under the cached
// key is checked again under the key on the ledger, read at most once a
// second per actor, in case the key changed through another gateway (a
// passkey-only actor has no PEM key, so its plain envelopes never
// verify). An unknown actor and a bad signature are both errBadSignature;
// a passkey assertion that fails a check is passkeyRefused, which wraps
// it.
func (s *Server) actorSigned(ctx context.Context, id string, env envelope.Signed) (*actorKey, error) {
	act, err := s.keys.actor(ctx, id)
	switch {
	case err != nil:
	case env.WebAuthn != nil:
		err = s.passkeySigned(ctx, act, env.Payload, env.WebAuthn)
	case env.Envelope().Verify(act.key) != nil:
		cached := act
		act, err = s.keys.freshActor(ctx, id, time.Second)
		if err == nil && (act == cached || env.Envelope().Verify(act.key) != nil) {
			err = errBadSignature
		}
	}
	if errors.Is(err, errUnknown) {
		err = errBadSignature
	}
	if err != nil {
		return nil, err
	}
	return act, nil
}

// signedGET authenticates a GET by its X-Medprov-Signature header, or,
// without one, by a portal session cookie (sessionGET). The header: the
// signature must verify under the actor's key on the ledger, or be an
// assertion of one of the actor's passkeys that passes every check of
// passkeySigned (the gateway is the only checker of a read, signature
// counter included), name this exact method and path (with query), be
// issued within the signature window, and carry a nonce not seen before,
// here or before a restart (nonceStore): a passkey-signed GET is kept from
// replay by its nonce, as a plain one is. The verified actor is stored as
// "actor".
//
// A request that fails is charged to its client address; the actor's
// budget is charged only once the signature verifies and the nonce is
// fresh, so neither forged nor replayed headers can spend it.
func (s *Server) signedGET(c *gin.Context) {
	if !s.admitClient(c) {
		return
	}
	raw := c.GetHeader(wire.SignatureHeader)
	if _, err := c.Request.Cookie(wire.SessionCookie); raw == "" && err == nil {
		s.sessionGET(c)
		return
	}
	if raw == "" {
		s.authFailed(c, errf(wire.CodeUnauthenticated, "signed request required: missing %s header", wire.SignatureHeader))
		return
	}
	envJSON, err := base64.StdEncoding.DecodeString(raw)
	if err != nil || len(envJSON) > 8<<10 {
		s.authFailed(c, errf(wire.CodeUnauthenticated, "%s must be base64 of a signed envelope", wire.SignatureHeader))
		return
	}
	env, err := envelope.ParseSigned(envJSON)
	if err != nil {
		s.authFailed(c, errf(wire.CodeUnauthenticated, "%s must be base64 of a signed envelope", wire.SignatureHeader))
		return
	}
	var a wire.HTTPGetAction
	if err := wire.DecodeStrict(env.Payload, &a); err != nil || a.Action != wire.ActionHTTPGet || !wire.ValidID(a.ActorID) || !wire.ValidNonce(a.Nonce) {
		s.authFailed(c, errf(wire.CodeUnauthenticated, "signed payload must be an http.get action with actorId, issuedAt and nonce"))
		return
	}
	if a.Method != c.Request.Method || a.Path != c.Request.URL.RequestURI() {
		s.authFailed(c, errf(wire.CodeUnauthenticated, "signature is for another request"))
		return
	}
	issued, err := time.Parse(time.RFC3339Nano, a.IssuedAt)
	if err != nil {
		s.authFailed(c, errf(wire.CodeUnauthenticated, "issuedAt must be RFC 3339"))
		return
	}
	if d := s.cfg.Now().Sub(issued); d > s.cfg.SignatureWindow || d < -s.cfg.SignatureWindow {
		s.authFailed(c, errf(wire.CodeUnauthenticated, "signature is stale: issuedAt is outside the %s window", s.cfg.SignatureWindow))
		return
	}
	act, err := s.actorSigned(c, a.ActorID, env)
	if errors.Is(err, errBadSignature) {
		s.authFailed(c, err)
		return
	}
	if errors.Is(err, envelope.ErrMalformed) {
		s.authFailed(c, errf(wire.CodeUnauthenticated, "%s holds a malformed passkey assertion", wire.SignatureHeader))
		return
	}
	if err != nil {
		fail(c, err)
		return
	}
	if act.Status != wire.StatusActive {
		s.authFailed(c, errf(wire.CodeUnauthenticated, "actor is not active"))
		return
	}
	if w := s.actLim.wait(a.ActorID); w > 0 {
		fail(c, &apiError{Code: wire.CodeRateLimited, Message: "too many requests for this actor", RetryAfter: w})
		return
	}
	fresh, err := s.nonces.use(nonceGET, a.ActorID, a.Nonce, issued)
	if err != nil {
		fail(c, &apiError{Code: wire.CodeUnavailable, Message: "could not record the request's nonce, retry later", RetryAfter: time.Second, cause: err})
		return
	}
	if !fresh {
		s.authFailed(c, errf(wire.CodeUnauthenticated, "replayed nonce"))
		return
	}
	if !s.actLim.allow(a.ActorID) {
		fail(c, &apiError{Code: wire.CodeRateLimited, Message: "too many requests for this actor", RetryAfter: time.Second})
		return
	}
	c.Set(ctxAuthenticated, true)
	c.Set("actor", act)
	c.Next()
}

func actorOf(c *gin.Context) *actorKey {
	v, _ := c.Get("actor")
	a, _ := v.(*actorKey)
	return a
}

// actionNonce identifies a verified signed action's nonce.
type actionNonce struct {
	actor, nonce string
	issued       time.Time
}

// rememberActionNonce remembers the nonce of a signed action the ledger
// committed (a 2xx answer, or ctxActionCommitted), so that a replay of the
// same envelope is refused by signedAction, and charged to the sender's
// address, before it can spend the actor's budget. A refused action's
// nonce is not remembered: the ledger did not consume it, and the client
// may retry.
func (s *Server) rememberActionNonce(c *gin.Context) {
	c.Next()
	v, ok := c.Get(ctxActionNonce)
	if !ok || (c.Writer.Status() >= 300 && !c.GetBool(ctxActionCommitted)) {
		return
	}
	n, _ := v.(actionNonce)
	if _, err := s.nonces.use(nonceAction, n.actor, n.nonce, n.issued); err != nil {
		s.log.Warn("remembering a signed action's nonce failed", "requestId", c.GetString("requestID"), "errKind", errKind(err))
	}
}
