package gateway

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	bolt "go.etcd.io/bbolt"

	"github.com/medprov/medprov/wire"
)

// Invitations. The org admin invites a person by id and role (POST
// /v1/invites); the answer holds a one-time token, 32 random bytes in
// base64url, and the portal path /enrol/<token>. The gateway keeps only
// SHA-256 of the token, with the actor id, role, a random user handle and
// the expiry (inviteStore). Opening the link, the person's browser asks
// for creation options (POST /v1/enrol/{token}/options), which issue a
// fresh challenge, kept with the invitation and valid once for
// wire.EnrolmentTimeout, and posts the new credential (POST
// /v1/enrol/{token}). Posting takes the challenge (a second post needs new
// options); the ceremony is verified (verifyRegistration), the ledger
// registers the actor with the passkey as its only credential
// (RegisterActor, with the org's admin identity) and the invitation is
// deleted as soon as the ledger accepted it, whatever happens after. A
// refusal by the ledger leaves the invitation usable until it expires.
// An unknown, expired or used token is one 404, charged to the client's
// address like a failed authentication.

// errNoInvite answers every token that enrols nobody.
var errNoInvite = errf(wire.CodeNotFound, "invitation not found, expired or already used")

// errNoEnrolment answers the invitation routes of a gateway that does not
// know its org (Config.Org).
var errNoEnrolment = errf(wire.CodeNotFound, "this gateway enrols no passkeys")

// rpName is the relying party name a registration ceremony shows.
const rpName = "medprov"

var bucketInvites = []byte("invites")

// invite is an invitation as the store keeps it.
type invite struct {
	ActorID    string    `json:"actorId"`
	Role       string    `json:"role"`
	UserHandle []byte    `json:"userHandle"`
	ExpiresAt  time.Time `json:"expiresAt"`
	// Challenge is the pending creation challenge, if any, valid until
	// ChallengeExpiresAt.
	Challenge          []byte    `json:"challenge,omitempty"`
	ChallengeExpiresAt time.Time `json:"challengeExpiresAt,omitzero"`
}

// inviteStore keeps invitations by the SHA-256 of their token. With a
// path it is a bbolt file (created 0600) written through on every change,
// so an invitation survives a restart and a used one stays used; without
// one it is in memory only. Expired invitations are dropped when the store
// opens and whenever an invitation is created. It is safe for concurrent
// use; changes are serialised.
type inviteStore struct {
	now func() time.Time
	db  *bolt.DB

	mu  sync.Mutex
	all map[[sha256.Size]byte]invite
}

// openInviteStore opens (creating it 0600) the store at path, or an
// in-memory store when path is empty.
func openInviteStore(path string, now func() time.Time) (*inviteStore, error) {
	st := &inviteStore{now: now, all: map[[sha256.Size]byte]invite{}}
	if path == "" {
		return st, nil
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("invite store %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketInvites)
		if err != nil {
			return err
		}
		return b.ForEach(func(k, v []byte) error {
			var inv invite
			if len(k) != sha256.Size || json.Unmarshal(v, &inv) != nil {
				return fmt.Errorf("invite store: unreadable entry")
			}
			st.all[[sha256.Size]byte(k)] = inv
			return nil
		})
	})
	if err != nil {
		return nil, errors.Join(fmt.Errorf("invite store %s: %w", path, err), db.Close())
	}
	st.db = db
	st.mu.Lock()
	defer st.mu.Unlock()
	if err := st.sweep(); err != nil {
		return nil, errors.Join(fmt.Errorf("invite store %s: %w", path, err), db.Close())
	}
	return st, nil
}

func (st *inviteStore) close() error {
	if st.db == nil {
		return nil
	}
	return st.db.Close()
}

func (st *inviteStore) len() int {
	st.mu.Lock()
	defer st.mu.Unlock()
	return len(st.all)
}

// tokenKey returns the store key of a token, or false for text that is
// not a token.
func tokenKey(token string) ([sha256.Size]byte, bool) {
	b, err := base64.RawURLEncoding.Strict().DecodeString(token)
	if err != nil || len(b) != wire.InviteTokenBytes {
		return [sha256.Size]byte{}, false
	}
	return sha256.Sum256(b), true
}

// put writes inv under k (st.mu held).
func (st *inviteStore) put(k [sha256.Size]byte, inv invite) error {
	if st.db != nil {
		v, err := json.Marshal(inv)
		if err != nil {
			return err
		}
		if err := st.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketInvites).Put(k[:], v) }); err != nil {
			return fmt.Errorf("invite store: %w", err)
		}
	}
	st.all[k] = inv
	return nil
}

// drop deletes the invitations under keys (st.mu held). They are gone
// from memory even if the file cannot be written.
func (st *inviteStore) drop(keys ...[sha256.Size]byte) error {
	for _, k := range keys {
		delete(st.all, k)
	}
	if st.db == nil || len(keys) == 0 {
		return nil
	}
	err := st.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketInvites)
		for _, k := range keys {
			if err := b.Delete(k[:]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("invite store: %w", err)
	}
	return nil
}

// sweep drops the expired invitations (st.mu held).
func (st *inviteStore) sweep() error {
	now := st.now()
	var gone [][sha256.Size]byte
	for k, inv := range st.all {
		if !now.Before(inv.ExpiresAt) {
			gone = append(gone, k)
		}
	}
	return st.drop(gone...)
}

// create stores a new invitation of actorID as role, valid for ttl, and
// returns its token (the only time the token exists outside the client).
func (st *inviteStore) create(actorID, role string, ttl time.Duration) (string, invite, error) {
	tok := make([]byte, wire.InviteTokenBytes)
	handle := make([]byte, 32)
	if _, err := rand.Read(tok); err != nil {
		return "", invite{}, err
	}
	if _, err := rand.Read(handle); err != nil {
		return "", invite{}, err
	}
	inv := invite{ActorID: actorID, Role: role, UserHandle: handle, ExpiresAt: st.now().Add(ttl)}
	st.mu.Lock()
	defer st.mu.Unlock()
	if err := st.sweep(); err != nil {
		return "", invite{}, err
	}
	if err := st.put(sha256.Sum256(tok), inv); err != nil {
		return "", invite{}, err
	}
	return base64.RawURLEncoding.EncodeToString(tok), inv, nil
}

// get returns the live invitation of token (st.mu held), or errNoInvite.
func (st *inviteStore) get(token string) ([sha256.Size]byte, invite, error) {
	k, ok := tokenKey(token)
	if !ok {
		return k, invite{}, errNoInvite
	}
	inv, ok := st.all[k]
	if !ok || !st.now().Before(inv.ExpiresAt) {
		return k, invite{}, errNoInvite
	}
	return k, inv, nil
}

// lookup returns the live invitation of token, or errNoInvite.
func (st *inviteStore) lookup(token string) (invite, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	_, inv, err := st.get(token)
	return inv, err
}

// valid reports whether token is a live invitation.
func (st *inviteStore) valid(token string) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	_, _, err := st.get(token)
	return err == nil
}

// issueChallenge gives the invitation of token a fresh creation challenge,
// replacing any pending one, and returns the invitation with it.
func (st *inviteStore) issueChallenge(token string) (invite, error) {
	challenge := make([]byte, 32)
	if _, err := rand.Read(challenge); err != nil {
		return invite{}, err
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	k, inv, err := st.get(token)
	if err != nil {
		return invite{}, err
	}
	inv.Challenge, inv.ChallengeExpiresAt = challenge, st.now().Add(wire.EnrolmentTimeout)
	if err := st.put(k, inv); err != nil {
		return invite{}, err
	}
	return inv, nil
}

// takeChallenge returns the invitation of token with its pending challenge
// and removes the challenge from the store, so that it answers one
// registration only. The challenge is nil when none is pending or it
// expired.
func (st *inviteStore) takeChallenge(token string) (invite, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	k, inv, err := st.get(token)
	if err != nil {
		return invite{}, err
	}
	taken := inv
	if !st.now().Before(inv.ChallengeExpiresAt) {
		taken.Challenge = nil
	}
	if inv.Challenge != nil {
		inv.Challenge, inv.ChallengeExpiresAt = nil, time.Time{}
		if err := st.put(k, inv); err != nil {
			return invite{}, err
		}
	}
	return taken, nil
}

// consume deletes the invitation of token: it enrolled its actor.
func (st *inviteStore) consume(token string) error {
	k, ok := tokenKey(token)
	if !ok {
		return nil
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.drop(k)
}

// createInvite answers POST /v1/invites (admin token): an invitation of
// {id, role} valid for ttl (default wire.DefaultInviteTTL). The org must
// have its relying party (403 before) and the actor must not be
// registered yet (409).
func (s *Server) createInvite(c *gin.Context) {
	if s.cfg.Org == "" {
		fail(c, errNoEnrolment)
		return
	}
	body, err := readBody(c)
	if err != nil {
		fail(c, err)
		return
	}
	var in wire.InviteRequest
	if err := wire.DecodeStrict(body, &in); err != nil {
		fail(c, badRequest(`body must be {"id","role","ttl"}: %s`, wire.JSONProblem(err)))
		return
	}
	if err := checkNewActor(in.ID, in.Role); err != nil {
		fail(c, err)
		return
	}
	ttl := wire.DefaultInviteTTL
	if in.TTL != "" {
		if ttl, err = time.ParseDuration(in.TTL); err != nil || ttl < wire.MinInviteTTL || ttl > wire.MaxInviteTTL {
			fail(c, badRequest("ttl must be a duration such as 72h, from %s to %s", wire.MinInviteTTL, wire.MaxInviteTTL))
			return
		}
	}
	if _, err := s.orgRelyingParty(c); err != nil {
		fail(c, err)
		return
	}
	_, err = s.chain.actor(c, in.ID)
	switch {
	case err == nil:
		fail(c, errf(wire.CodeConflict, "actor %s already registered", in.ID))
		return
	case !isNotFound(err):
		fail(c, err)
		return
	}
	tok, inv, err := s.invites.create(in.ID, in.Role, ttl)
	if err != nil {
		fail(c, &apiError{Code: wire.CodeUnavailable, Message: "could not store the invitation, retry later", RetryAfter: time.Second, cause: err})
		return
	}
	out := wire.Invite{ActorID: inv.ActorID, Role: inv.Role, Token: tok, Path: wire.EnrolPathPrefix + tok,
		ExpiresAt: inv.ExpiresAt.UTC().Format(time.RFC3339)}
	if s.cfg.PublicURL != "" {
		out.URL = strings.TrimSuffix(s.cfg.PublicURL, "/") + out.Path
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusCreated, out)
}

// orgRelyingParty returns the relying party of this gateway's org, read
// afresh at most once a second; an org without one is forbidden.
func (s *Server) orgRelyingParty(ctx context.Context) (*relyingParty, error) {
	rp, err := s.passkeys.relyingParty(ctx, s.cfg.Org, time.Second)
	if errors.Is(err, errUnknown) {
		return nil, errf(wire.CodeForbidden, "the org has no relying party: the admin sets it first (PUT /v1/admin/relying-party)")
	}
	return rp, err
}

// invitation answers GET /v1/enrol/{token}: whom a live invitation
// enrols (the token is the secret; its holder is the invitee).
func (s *Server) invitation(c *gin.Context) {
	if !s.admitClient(c) {
		return
	}
	if s.cfg.Org == "" {
		fail(c, errNoEnrolment)
		return
	}
	inv, err := s.invites.lookup(c.Param("token"))
	if err != nil {
		s.authFailed(c, errNoInvite)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, wire.InvitationStatus{ActorID: inv.ActorID, Role: inv.Role, ExpiresAt: inv.ExpiresAt.UTC().Format(time.RFC3339)})
}

// enrolmentOptions answers POST /v1/enrol/{token}/options: the creation
// options of the invitation's registration ceremony, with a fresh
// challenge that replaces any earlier one.
func (s *Server) enrolmentOptions(c *gin.Context) {
	if !s.admitClient(c) {
		return
	}
	if s.cfg.Org == "" {
		fail(c, errNoEnrolment)
		return
	}
	if !s.invites.valid(c.Param("token")) {
		s.authFailed(c, errNoInvite)
		return
	}
	rp, err := s.orgRelyingParty(c)
	if err != nil {
		fail(c, err)
		return
	}
	inv, err := s.invites.issueChallenge(c.Param("token"))
	if errors.Is(err, errNoInvite) {
		s.authFailed(c, err)
		return
	}
	if err != nil {
		fail(c, &apiError{Code: wire.CodeUnavailable, Message: "could not store the challenge, retry later", RetryAfter: time.Second, cause: err})
		return
	}
	enc := base64.RawURLEncoding.EncodeToString
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, wire.CreationOptions{
		Challenge:        enc(inv.Challenge),
		RP:               wire.RPEntity{ID: rp.ID, Name: rpName},
		User:             wire.UserEntity{ID: enc(inv.UserHandle), Name: inv.ActorID, DisplayName: inv.ActorID},
		PubKeyCredParams: []wire.CredentialParameter{{Type: "public-key", Alg: wire.COSEAlgES256}},
		AuthenticatorSelection: wire.AuthenticatorSelection{
			ResidentKey: "preferred", RequireResidentKey: false, UserVerification: "required",
		},
		Timeout:     wire.EnrolmentTimeout.Milliseconds(),
		Attestation: "none",
	})
}

// enrol answers POST /v1/enrol/{token}: it verifies the registration
// ceremony against the challenge the invitation issued (taking it) and the
// org's relying party, registers the invited actor with the passkey on the
// ledger and consumes the invitation.
func (s *Server) enrol(c *gin.Context) {
	if !s.admitClient(c) {
		return
	}
	if s.cfg.Org == "" {
		fail(c, errNoEnrolment)
		return
	}
	token := c.Param("token")
	if !s.invites.valid(token) {
		s.authFailed(c, errNoInvite)
		return
	}
	body, err := readBody(c)
	if err != nil {
		fail(c, err)
		return
	}
	var in wire.EnrolmentRequest
	if err := wire.DecodeStrict(body, &in); err != nil {
		fail(c, badRequest(`body must be {"credentialId","clientDataJSON","attestationObject"}: %s`, wire.JSONProblem(err)))
		return
	}
	reg, err := decodeRegistration(in)
	if err != nil {
		fail(c, err)
		return
	}
	rp, err := s.orgRelyingParty(c)
	if err != nil {
		fail(c, err)
		return
	}
	inv, err := s.invites.takeChallenge(token)
	if errors.Is(err, errNoInvite) {
		s.authFailed(c, err)
		return
	}
	if err != nil {
		fail(c, &apiError{Code: wire.CodeUnavailable, Message: "could not update the invitation, retry later", RetryAfter: time.Second, cause: err})
		return
	}
	if inv.Challenge == nil {
		s.authFailed(c, ceremonyRefused("no challenge is pending for this invitation: ask for the options again"))
		return
	}
	cred, err := verifyRegistration(rp.RelyingParty, inv.Challenge, reg)
	if errors.Is(err, errBadSignature) {
		s.authFailed(c, err)
		return
	}
	if err != nil {
		fail(c, err)
		return
	}
	arg, err := jsonString(wire.ActorInput{ID: inv.ActorID, Role: inv.Role, Passkey: &cred})
	if err != nil {
		fail(c, err)
		return
	}
	var a wire.Actor
	cm, err := s.chain.submit(c, &a, true, wire.FnRegisterActor, arg)
	if err != nil {
		fail(c, err)
		return
	}
	// The ledger accepted: the invitation is spent, whatever follows.
	if err := s.invites.consume(token); err != nil {
		s.log.Error("deleting a used invitation failed; the ledger refuses to enrol its actor again",
			"requestId", c.GetString("requestID"), "errKind", errKind(err))
	}
	s.keys.forgetActor(a.ID)
	s.passkeys.forgetCredential(cred.CredentialID)
	c.Set(ctxAuthenticated, true)
	c.JSON(http.StatusCreated, wire.EnrolmentReceipt{ActorID: a.ID, CredentialID: cred.CredentialID, TxID: cm.TxID, Block: cm.Block, Actor: a})
}
