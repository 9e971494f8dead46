package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/medprov/medprov/envelope"
	"github.com/medprov/medprov/wire"
)

// signedAction reads a signed action envelope from the body, in either
// form (a plain envelope or a passkey envelope, envelope.ParseSigned),
// decodes its payload into p with the strict decoder the chaincode uses,
// checks the action name, the issuedAt window and the signature under the
// actor's key or passkey (actorSigned), and only then charges the actor's
// rate limit; a request that fails
// authentication is charged to its client address instead, so forged
// requests naming an actor cannot spend its budget. It returns the
// envelope re-encoded for the chaincode, which authenticates it again and
// consumes the nonce.
func (s *Server) signedAction(c *gin.Context, action string, p wire.Action) (string, error) {
	client := clientKey(c)
	if err := s.clientBlocked(client); err != nil {
		return "", err
	}
	body, err := readBody(c)
	if err != nil {
		return "", err
	}
	env, err := envelope.ParseSigned(body)
	if err != nil {
		return "", &apiError{Code: wire.CodeInvalid, Message: `malformed envelope: expected {"payload","signature"} or {"payload","webauthn"} in base64`, cause: err}
	}
	if err := wire.DecodeStrict(env.Payload, p); err != nil {
		return "", badRequest("signed payload must be a %s action object: %s", action, wire.JSONProblem(err))
	}
	h := p.Header()
	if h.Action != action {
		return "", badRequest("signed payload action must be %q", action)
	}
	if !wire.ValidID(h.ActorID) {
		return "", badRequest("actorId must match %s", wire.IDPattern)
	}
	if !wire.ValidNonce(h.Nonce) {
		return "", badRequest("nonce must be 16..128 base64, base64url or hex characters")
	}
	issued, err := time.Parse(time.RFC3339Nano, h.IssuedAt)
	if err != nil {
		return "", badRequest("issuedAt must be RFC 3339")
	}
	// The chaincode applies the same window to the transaction time.
	if d := s.cfg.Now().Sub(issued); d > wire.IssuedAtWindow || d < -wire.IssuedAtWindow {
		s.failLim.charge(client)
		return "", errf(wire.CodeUnauthenticated, "stale issuedAt: more than %s from the gateway's time", wire.IssuedAtWindow)
	}
	if _, err := s.actorSigned(c, h.ActorID, env); err != nil {
		if errors.Is(err, errBadSignature) {
			s.failLim.charge(client)
		}
		return "", err
	}
	if s.nonces.seenBefore(nonceAction, h.ActorID, h.Nonce, issued) {
		s.failLim.charge(client)
		return "", errf(wire.CodeConflict, "replayed nonce")
	}
	if !s.actLim.allow(h.ActorID) {
		return "", &apiError{Code: wire.CodeRateLimited, Message: "too many requests for this actor", RetryAfter: max(s.actLim.wait(h.ActorID), time.Second)}
	}
	c.Set(ctxAuthenticated, true)
	c.Set(ctxActionNonce, actionNonce{actor: h.ActorID, nonce: h.Nonce, issued: issued})
	out, err := json.Marshal(env)
	if err != nil {
		return "", err
	}
	return string(out), nil
}

// checkNewActor refuses (400) an id or role no actor can be registered
// with.
func checkNewActor(id, role string) error {
	if !wire.ValidID(id) {
		return badRequest("id must match %s", wire.IDPattern)
	}
	if !wire.ValidRole(role) {
		return badRequest("role must be patient, operator, researcher or regulator")
	}
	return nil
}

func (s *Server) registerActor(c *gin.Context) {
	body, err := readBody(c)
	if err != nil {
		fail(c, err)
		return
	}
	var in wire.ActorInput
	if err := wire.DecodeStrict(body, &in); err != nil {
		fail(c, badRequest(`body must be {"id","role","publicKey"}: %s`, wire.JSONProblem(err)))
		return
	}
	if err := checkNewActor(in.ID, in.Role); err != nil {
		fail(c, err)
		return
	}
	if in.Passkey != nil {
		fail(c, badRequest("passkeys are enrolled by invitation (POST /v1/invites), not registered here"))
		return
	}
	if _, err := envelope.ParsePublicKey([]byte(in.PublicKey)); err != nil {
		fail(c, err)
		return
	}
	arg, err := json.Marshal(in)
	if err != nil {
		fail(c, err)
		return
	}
	var a wire.Actor
	if _, err := s.chain.submit(c, &a, true, wire.FnRegisterActor, string(arg)); err != nil {
		fail(c, err)
		return
	}
	s.keys.forgetActor(in.ID) // it may be remembered as unknown
	c.JSON(http.StatusCreated, a)
}

func (s *Server) registerDevice(c *gin.Context) {
	var h wire.DeviceRegisterAction
	env, err := s.signedAction(c, wire.ActionDeviceRegister, &h)
	if err != nil {
		fail(c, err)
		return
	}
	var d wire.Device
	if _, err := s.chain.submit(c, &d, false, wire.FnRegisterDevice, env); err != nil {
		fail(c, err)
		return
	}
	s.keys.forgetDevice(h.DeviceID)
	c.JSON(http.StatusCreated, d)
}

func (s *Server) revokeDevice(c *gin.Context) {
	var h wire.DeviceRevokeAction
	env, err := s.signedAction(c, wire.ActionDeviceRevoke, &h)
	if err != nil {
		fail(c, err)
		return
	}
	if h.DeviceID != c.Param("id") {
		fail(c, badRequest("signed deviceId does not match the path"))
		return
	}
	var d wire.Device
	_, err = s.chain.submit(c, &d, false, wire.FnRevokeDevice, env)
	s.keys.forgetDevice(h.DeviceID)
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, d)
}

func (s *Server) grantConsent(c *gin.Context) {
	env, err := s.signedAction(c, wire.ActionConsentGrant, &wire.ConsentGrantAction{})
	if err != nil {
		fail(c, err)
		return
	}
	var con wire.Consent
	cm, err := s.chain.submit(c, &con, false, wire.FnGrantConsent, env)
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, wire.ConsentReceipt{ConsentID: con.ID, TxID: cm.TxID, Block: cm.Block, Consent: con})
}

func (s *Server) revokeConsent(c *gin.Context) {
	var h wire.ConsentRevokeAction
	env, err := s.signedAction(c, wire.ActionConsentRevoke, &h)
	if err != nil {
		fail(c, err)
		return
	}
	if h.ConsentID != c.Param("id") {
		fail(c, badRequest("signed consentId does not match the path"))
		return
	}
	var con wire.Consent
	cm, err := s.chain.submit(c, &con, false, wire.FnRevokeConsent, env)
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, wire.ConsentReceipt{ConsentID: con.ID, TxID: cm.TxID, Block: cm.Block, Consent: con})
}

// mayReadPatient allows the patient themself and regulators.
func mayReadPatient(a *actorKey, patientID string) bool {
	return a != nil && ((a.Role == wire.RolePatient && a.ID == patientID) || a.Role == wire.RoleRegulator)
}

func (s *Server) listConsents(c *gin.Context) {
	out, err := s.patientConsents(c, actorOf(c), c.Param("id"))
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, wire.ConsentList{Items: out, Count: len(out)})
}

// patientConsents returns patient pid's consents, each with its history,
// to a, who must be the patient or a regulator. Every view of consents
// (v1, FHIR) reads them here.
func (s *Server) patientConsents(ctx context.Context, a *actorKey, pid string) ([]wire.Consent, error) {
	if !mayReadPatient(a, pid) {
		return nil, errf(wire.CodeForbidden, "only the patient and regulators may read a patient's consents")
	}
	var out []wire.Consent
	if err := s.chain.evaluate(ctx, &out, wire.FnListConsents, pid); err != nil {
		return nil, err
	}
	if out == nil {
		out = []wire.Consent{}
	}
	return out, nil
}

func (s *Server) accessLog(c *gin.Context) {
	ps, bm, err := pageArgs(c)
	if err != nil {
		fail(c, err)
		return
	}
	page, err := s.patientAccessLog(c, actorOf(c), c.Param("id"), ps, bm)
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, page)
}

// patientAccessLog returns a page of patient pid's access log to a, who
// must be the patient or a regulator. Every view of the access log (v1,
// FHIR) reads it here.
func (s *Server) patientAccessLog(ctx context.Context, a *actorKey, pid, pageSize, bookmark string) (*wire.AccessEventPage, error) {
	if !mayReadPatient(a, pid) {
		return nil, errf(wire.CodeForbidden, "only the patient and regulators may read a patient's access log")
	}
	var page wire.AccessEventPage
	if err := s.chain.evaluate(ctx, &page, wire.FnGetAccessLog, pid, pageSize, bookmark); err != nil {
		return nil, err
	}
	if page.Items == nil {
		page.Items = []wire.AccessEvent{}
	}
	return &page, nil
}

// mustRole refuses the request unless the signed actor has role.
func mustRole(c *gin.Context, role string) bool {
	a := actorOf(c)
	if a == nil || a.Role != role {
		fail(c, errf(wire.CodeForbidden, "only a %s may use this route", role))
		return false
	}
	return true
}

// trimmed returns q's value, or "" when absent.
func trimmed(c *gin.Context, q string) string { return strings.TrimSpace(c.Query(q)) }
