package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/medprov/medprov/envelope"
	"github.com/medprov/medprov/wire"
)

// Shredder destroys a patient's keys (crypto-shredding), so that nothing
// sealed for the patient opens again.
//
// Shred MUST be idempotent: shredding a patient already erased, or one
// without keys, succeeds and leaves the patient erased. Once it returned
// nil, the Opener MUST fail with seal.ErrErased for the patient (and the
// ingest Sealer too). It MUST be safe for concurrent use. seal.Keyring is
// one.
type Shredder interface {
	Shred(ctx context.Context, patientID string) error
}

// shredder runs a Shredder, remembering the patients this process already
// shredded so that the erasure route and the PatientErased event do not
// both rewrite the keyring. Entries are erased patients, which only a
// committed, patient-signed transaction creates.
type shredder struct {
	s    Shredder
	mu   sync.Mutex
	done map[string]bool
}

func newShredder(s Shredder) *shredder { return &shredder{s: s, done: map[string]bool{}} }

// shred destroys the patient's keys unless this process already did.
func (sh *shredder) shred(ctx context.Context, patientID string) error {
	sh.mu.Lock()
	done := sh.done[patientID]
	sh.mu.Unlock()
	if done {
		return nil
	}
	if err := sh.s.Shred(ctx, patientID); err != nil {
		return err
	}
	sh.mu.Lock()
	sh.done[patientID] = true
	sh.mu.Unlock()
	return nil
}

// shredUntilDone shreds the patient's keys, retrying with backoff (1s up to
// 30s) until it succeeds or ctx is done, whose error it then returns. The
// PatientErased event is only checkpointed once this returned nil, so a
// failure or a crash is retried after a restart too.
func (s *Server) shredUntilDone(ctx context.Context, patientID string) error {
	backoff := time.Second
	for {
		err := s.shredder.shred(ctx, patientID)
		if err == nil {
			return nil
		}
		s.log.Error("crypto-shredding an erased patient's keys failed; retrying", "errKind", errKind(err), "backoff", backoff)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 30*time.Second)
	}
}

// adminOrSigned authenticates a route that takes either the admin token or
// a signed action: a request with an Authorization header must carry the
// admin token (requireAdmin); one without is a signed action, which the
// handler authenticates.
func (s *Server) adminOrSigned(c *gin.Context) {
	if c.GetHeader("Authorization") != "" {
		s.requireAdmin(c)
		return
	}
	c.Next()
}

// revokeActor revokes the actor of the path: with the admin token as the
// org admin (RevokeOrgActor, actors of this gateway's org only), else from a
// signed actor.revoke of a regulator or of the actor itself (RevokeActor).
func (s *Server) revokeActor(c *gin.Context) {
	id := c.Param("id")
	var (
		a   wire.Actor
		err error
		fn  string
		arg string
	)
	if c.GetHeader("Authorization") != "" { // verified by adminOrSigned
		arg, err = adminRevocation(c, id)
		fn = wire.FnRevokeOrgActor
	} else {
		var p wire.ActorRevokeAction
		arg, err = s.signedAction(c, wire.ActionActorRevoke, &p)
		if err == nil && p.TargetID != id {
			err = badRequest("signed targetId does not match the path")
		}
		if err == nil && !wire.ValidToken(p.Reason) {
			err = badRequest("reason must match ^[a-z0-9._-]{1,64}$")
		}
		fn = wire.FnRevokeActor
	}
	if err != nil {
		fail(c, err)
		return
	}
	cm, err := s.chain.submit(c, &a, fn == wire.FnRevokeOrgActor, fn, arg)
	s.keys.forgetActor(id)
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, wire.ActorReceipt{ActorID: a.ID, TxID: cm.TxID, Block: cm.Block, Actor: a})
}

// adminRevocation reads an admin's {"reason"} body and returns the
// RevokeOrgActor argument for actor id.
func adminRevocation(c *gin.Context, id string) (string, error) {
	body, err := readBody(c)
	if err != nil {
		return "", err
	}
	var in wire.AdminRevokeRequest
	if err := wire.DecodeStrict(body, &in); err != nil {
		return "", badRequest(`body must be {"reason"}: %s`, wire.JSONProblem(err))
	}
	if !wire.ValidID(id) {
		return "", badRequest("actor id must match %s", wire.IDPattern)
	}
	if !wire.ValidToken(in.Reason) {
		return "", badRequest("reason must match ^[a-z0-9._-]{1,64}$")
	}
	arg, err := jsonString(wire.ActorRevokeInput{ID: id, Reason: in.Reason})
	if err != nil {
		return "", err
	}
	return arg, nil
}

// rotateActor replaces the key of the actor of the path from a signed
// actor.rotate, signed with its current key.
func (s *Server) rotateActor(c *gin.Context) {
	var p wire.ActorRotateAction
	env, err := s.signedAction(c, wire.ActionActorRotate, &p)
	if err != nil {
		fail(c, err)
		return
	}
	if p.ActorID != c.Param("id") {
		fail(c, badRequest("signed actorId does not match the path"))
		return
	}
	if _, err := envelope.ParsePublicKey([]byte(p.PublicKey)); err != nil {
		fail(c, err)
		return
	}
	var a wire.Actor
	cm, err := s.chain.submit(c, &a, false, wire.FnRotateActorKey, env)
	s.keys.forgetActor(p.ActorID)
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, wire.ActorReceipt{ActorID: a.ID, TxID: cm.TxID, Block: cm.Block, Actor: a})
}

// erasePatient erases the patient of the path from its signed
// patient.erase: the ledger records the erasure first, so it is evidenced,
// then this gateway crypto-shreds the patient's keys. If shredding fails,
// or the gateway stops in between, the PatientErased event shreds them
// (followEvents retries until it succeeds); meanwhile the ledger already
// denies every access to the patient.
func (s *Server) erasePatient(c *gin.Context) {
	var p wire.PatientEraseAction
	env, err := s.signedAction(c, wire.ActionPatientErase, &p)
	if err != nil {
		fail(c, err)
		return
	}
	if p.ActorID != c.Param("id") {
		fail(c, badRequest("signed actorId does not match the path: a patient erases only its own data"))
		return
	}
	if !wire.ValidToken(p.Reason) {
		fail(c, badRequest("reason must match ^[a-z0-9._-]{1,64}$"))
		return
	}
	var er wire.Erasure
	cm, err := s.chain.submit(c, &er, false, wire.FnErasePatient, env)
	if err != nil {
		fail(c, err)
		return
	}
	s.keys.forgetActor(er.PatientID)
	// The erasure is committed: finish shredding even if the client left.
	shredded := true
	if err := s.shredder.shred(context.WithoutCancel(c), er.PatientID); err != nil {
		shredded = false
		s.log.Error("crypto-shredding an erased patient's keys failed; the PatientErased event retries it",
			"requestId", c.GetString("requestID"), "errKind", errKind(err))
	}
	c.JSON(http.StatusOK, wire.ErasureReceipt{PatientID: er.PatientID, TxID: cm.TxID, Block: cm.Block, Erasure: er, KeysShredded: shredded})
}

// recordWithheld records on the ledger the granted readings of access
// event accessID that were withheld, with their reasons, submitted with
// this gateway's org identity. The researcher's answer lists them either
// way; a failure here is logged, since the release itself is already
// evidenced by the access event.
func (s *Server) recordWithheld(c *gin.Context, accessID string, held []wire.Withheld) {
	arg, err := jsonString(wire.WithheldInput{AccessID: accessID, Withheld: held})
	if err == nil {
		_, err = s.chain.submit(context.WithoutCancel(c), nil, false, wire.FnRecordWithheld, arg)
	}
	if err != nil {
		s.log.Error("recording withheld readings on the ledger failed",
			"requestId", c.GetString("requestID"), "withheld", len(held), "errKind", errKind(err))
	}
}

// jsonString marshals a chaincode argument.
func jsonString(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("encode chaincode argument: %w", err)
	}
	return string(b), nil
}
