package gateway

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/medprov/medprov/envelope"
	"github.com/medprov/medprov/wire"
)

// Portal sessions (wire.Session). A person signs in with a passkey over a
// session.start payload the gateway issued (once, for
// wire.SessionChallengeTTL); the gateway checks the assertion exactly as it
// checks a passkey-signed GET (passkeySigned: credential of an active
// actor, the org's relying party, UP and UV, ES256, counter) and answers a
// random session token in an HttpOnly, Secure, SameSite=Strict cookie.
//
// The cookie authenticates what a signed GET authenticates, with the same
// authorisation and the same per-actor budget (signedGET accepts either);
// it never authorises an action: every action is an envelope the passkey
// signs, which the chaincode verifies. SameSite=Strict keeps the cookie off
// cross-site requests, and the session routes refuse a request whose Origin
// or Sec-Fetch-Site says it came from another site.
//
// Sessions live in the gateway's memory (bounded by Limits.MaxSessions,
// least recently used evicted first) and only their tokens' SHA-256: a
// restart, or another gateway, signs people out; they sign in again with
// the same passkey. A session ends after wire.SessionIdle without use,
// wire.SessionMaxAge after sign-in, at sign-out, or as soon as its actor
// is no longer active (checked on every use, with the actor cache's
// freshness).

// session is one signed-in person.
type session struct {
	actorID  string
	created  time.Time
	lastUsed time.Time
}

// sessionStore holds pending sign-in payloads and live sessions.
type sessionStore struct {
	mu       sync.Mutex
	now      func() time.Time
	pending  *lru.Cache[string, time.Time] // payload SHA-256 → issued
	sessions *lru.Cache[[sha256.Size]byte, *session]
}

func newSessionStore(now func() time.Time, size int) *sessionStore {
	pending, _ := lru.New[string, time.Time](size)            // size > 0: cannot fail
	sessions, _ := lru.New[[sha256.Size]byte, *session](size) // idem
	return &sessionStore{now: now, pending: pending, sessions: sessions}
}

// issue returns a fresh session.start payload and remembers it.
func (st *sessionStore) issue() ([]byte, error) {
	nonce := make([]byte, 24)
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	now := st.now()
	payload, err := json.Marshal(wire.SessionStartAction{
		Action:   wire.ActionSessionStart,
		IssuedAt: now.UTC().Format(time.RFC3339Nano),
		Nonce:    base64.RawURLEncoding.EncodeToString(nonce),
	})
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(payload)
	st.mu.Lock()
	st.pending.Add(string(sum[:]), now)
	st.mu.Unlock()
	return payload, nil
}

// take consumes a payload issued within wire.SessionChallengeTTL,
// reporting whether it was.
func (st *sessionStore) take(payload []byte) bool {
	sum := sha256.Sum256(payload)
	st.mu.Lock()
	defer st.mu.Unlock()
	issued, ok := st.pending.Get(string(sum[:]))
	if !ok {
		return false
	}
	st.pending.Remove(string(sum[:]))
	return st.now().Sub(issued) <= wire.SessionChallengeTTL
}

// start creates a session for actorID and returns its token.
func (st *sessionStore) start(actorID string) (string, *session, error) {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", nil, err
	}
	token := base64.RawURLEncoding.EncodeToString(raw)
	now := st.now()
	ses := &session{actorID: actorID, created: now, lastUsed: now}
	st.mu.Lock()
	st.sessions.Add(sha256.Sum256([]byte(token)), ses)
	st.mu.Unlock()
	return token, ses, nil
}

// use returns the live session of token and marks it used; an unknown,
// idle or too old session is ended and reported absent.
func (st *sessionStore) use(token string) (*session, bool) {
	if token == "" || len(token) > 64 {
		return nil, false
	}
	k := sha256.Sum256([]byte(token))
	now := st.now()
	st.mu.Lock()
	defer st.mu.Unlock()
	ses, ok := st.sessions.Get(k)
	if !ok {
		return nil, false
	}
	if now.Sub(ses.lastUsed) > wire.SessionIdle || now.Sub(ses.created) > wire.SessionMaxAge {
		st.sessions.Remove(k)
		return nil, false
	}
	ses.lastUsed = now
	return ses, true
}

// end ends the session of token, if any.
func (st *sessionStore) end(token string) {
	st.mu.Lock()
	st.sessions.Remove(sha256.Sum256([]byte(token)))
	st.mu.Unlock()
}

// expires is when ses ends at the latest if it keeps being used.
func (ses *session) expires() time.Time { return ses.created.Add(wire.SessionMaxAge) }

var (
	errNoSession    = errf(wire.CodeUnauthenticated, "not signed in, or the session ended: sign in again")
	errCrossSite    = errf(wire.CodeForbidden, "cross-site request refused")
	errSignInExpiry = errf(wire.CodeUnauthenticated, "the sign-in payload is unknown, used or expired: ask for new options")
)

// sameSite refuses, before anything else, a session request that a
// browser says came from another site (Sec-Fetch-Site), or whose Origin
// is not this request's host, so that no other site can sign a person in
// or out. Clients that send neither header (not browsers) are not
// affected: without a cookie they hold no session to abuse.
func (s *Server) sameSite(c *gin.Context) {
	if site := c.GetHeader("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		fail(c, errCrossSite)
		return
	}
	if o := c.GetHeader("Origin"); o != "" && !originOfHost(o, c.Request.Host) {
		fail(c, errCrossSite)
		return
	}
	c.Next()
}

// originOfHost reports whether origin is http(s)://host.
func originOfHost(origin, host string) bool {
	return origin == "https://"+host || origin == "http://"+host
}

// sessionOptions answers POST /v1/session/options: a session.start payload
// to sign with a passkey of this gateway's org.
func (s *Server) sessionOptions(c *gin.Context) {
	if !s.admitClient(c) {
		return
	}
	if s.cfg.Org == "" {
		fail(c, errf(wire.CodeNotFound, "this gateway has no org: portal sign-in is off"))
		return
	}
	rp, err := s.orgRelyingParty(c)
	if err != nil {
		fail(c, err)
		return
	}
	payload, err := s.sessions.issue()
	if err != nil {
		fail(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, wire.SessionOptions{
		Payload:          payload,
		Challenge:        envelope.Challenge(payload),
		RPID:             rp.ID,
		Timeout:          wire.SessionChallengeTTL.Milliseconds(),
		UserVerification: "required",
	})
}

// startSession answers POST /v1/session: the body is a passkey envelope
// over a payload sessionOptions issued; a verified assertion of an active
// actor's passkey starts a session (201, cookie set).
func (s *Server) startSession(c *gin.Context) {
	if !s.admitClient(c) {
		return
	}
	body, err := readBody(c)
	if err != nil {
		fail(c, err)
		return
	}
	env, err := envelope.ParseSigned(body)
	if err != nil || env.WebAuthn == nil {
		fail(c, badRequest(`body must be a passkey envelope {"payload","webauthn"} over the options' payload`))
		return
	}
	var p wire.SessionStartAction
	if err := wire.DecodeStrict(env.Payload, &p); err != nil || p.Action != wire.ActionSessionStart {
		s.authFailed(c, errSignInExpiry)
		return
	}
	if !s.sessions.take(env.Payload) {
		s.authFailed(c, errSignInExpiry)
		return
	}
	// The credential names the actor; passkeySigned then checks that it
	// is that actor's, against the actor's org's relying party.
	pk, err := s.passkeys.credential(c, base64.RawURLEncoding.EncodeToString(env.WebAuthn.CredentialID), s.passkeys.ttl)
	if errors.Is(err, errUnknown) {
		s.authFailed(c, errBadSignature)
		return
	}
	if err != nil {
		fail(c, err)
		return
	}
	act, err := s.actorSigned(c, pk.ActorID, env)
	switch {
	case errors.Is(err, errBadSignature):
		s.authFailed(c, err)
		return
	case err != nil:
		fail(c, err)
		return
	case act.Status != wire.StatusActive:
		s.authFailed(c, errf(wire.CodeUnauthenticated, "actor is not active"))
		return
	}
	token, ses, err := s.sessions.start(act.ID)
	if err != nil {
		fail(c, err)
		return
	}
	http.SetCookie(c.Writer, &http.Cookie{
		Name: wire.SessionCookie, Value: token, Path: "/",
		MaxAge: int(wire.SessionMaxAge.Seconds()), HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode,
	})
	c.Set(ctxAuthenticated, true)
	s.answerSession(c, http.StatusCreated, act, ses)
}

// getSession answers GET /v1/session: the session of the cookie.
func (s *Server) getSession(c *gin.Context) {
	act, ses, err := s.sessionOf(c)
	if err != nil {
		s.authFailed(c, err)
		return
	}
	s.answerSession(c, http.StatusOK, act, ses)
}

// endSession answers DELETE /v1/session: sign out (204), whether or not a
// session was live, and clear the cookie.
func (s *Server) endSession(c *gin.Context) {
	if ck, err := c.Request.Cookie(wire.SessionCookie); err == nil {
		s.sessions.end(ck.Value)
	}
	http.SetCookie(c.Writer, &http.Cookie{
		Name: wire.SessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode,
	})
	c.Status(http.StatusNoContent)
}

func (s *Server) answerSession(c *gin.Context, status int, act *actorKey, ses *session) {
	var keys []wire.Passkey
	if err := s.chain.evaluate(c, &keys, wire.FnListPasskeys, act.ID); err != nil {
		fail(c, err)
		return
	}
	creds := make([]string, 0, len(keys))
	for _, k := range keys {
		creds = append(creds, k.CredentialID)
	}
	slices.Sort(creds)
	c.Header("Cache-Control", "no-store")
	c.JSON(status, wire.Session{
		ActorID: act.ID, Role: act.Role, Org: act.Org,
		ExpiresAt: ses.expires().UTC().Format(time.RFC3339), Credentials: creds,
	})
}

// sessionOf returns the live session of the request's cookie and its
// actor, who must still be active.
func (s *Server) sessionOf(c *gin.Context) (*actorKey, *session, error) {
	ck, err := c.Request.Cookie(wire.SessionCookie)
	if err != nil {
		return nil, nil, errNoSession
	}
	ses, ok := s.sessions.use(ck.Value)
	if !ok {
		return nil, nil, errNoSession
	}
	act, err := s.keys.actor(c, ses.actorID)
	if errors.Is(err, errUnknown) {
		s.sessions.end(ck.Value)
		return nil, nil, errNoSession
	}
	if err != nil {
		return nil, nil, err
	}
	if act.Status != wire.StatusActive {
		s.sessions.end(ck.Value)
		return nil, nil, errNoSession
	}
	return act, ses, nil
}

// sessionGET authenticates a read by its session cookie (signedGET, when
// the request carries no signature header): same actor budget, same
// authorisation as a signed GET.
func (s *Server) sessionGET(c *gin.Context) {
	act, _, err := s.sessionOf(c)
	if err != nil {
		s.authFailed(c, err)
		return
	}
	if !s.actLim.allow(act.ID) {
		fail(c, &apiError{Code: wire.CodeRateLimited, Message: "too many requests for this actor", RetryAfter: time.Second})
		return
	}
	c.Set(ctxAuthenticated, true)
	c.Set("actor", act)
	c.Next()
}
