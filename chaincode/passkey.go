package chaincode

import (
	"crypto/ecdsa"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"

	"github.com/hyperledger/fabric-chaincode-go/v2/pkg/cid"
	"github.com/hyperledger/fabric-chaincode-go/v2/shim"
	"github.com/hyperledger/fabric-contract-api-go/v2/contractapi"

	"github.com/medprov/medprov/envelope"
	"github.com/medprov/medprov/wire"
)

// SetRelyingParty records the WebAuthn relying party of the caller's org:
// the rpId its members' passkeys are bound to and the origins their
// assertions may come from. Only an org admin (OU "admin") may call it,
// for its own MSP. rpJSON is a RelyingPartyInput: rpId a lower-case DNS
// name (wire.ValidRPID), 1..MaxOrigins distinct origins valid for it
// (wire.ValidOrigin). Setting it again replaces it (the earlier settings
// stay in the key history): passkeys registered under another rpId stop
// authenticating, and assertions from origins no longer listed are
// refused.
func (c *Contract) SetRelyingParty(ctx contractapi.TransactionContextInterface, rpJSON string) (*wire.RelyingParty, error) {
	t, err := newTx(ctx)
	if err != nil {
		return nil, err
	}
	msp, err := adminMSP(t.stub, "set the relying party")
	if err != nil {
		return nil, err
	}
	var in wire.RelyingPartyInput
	if err := wire.DecodeStrict([]byte(rpJSON), &in); err != nil {
		return nil, invalid("malformed relying party: %s", wire.JSONProblem(err))
	}
	if !wire.ValidRPID(in.RPID) {
		return nil, invalid("rpId must be a lower-case DNS name")
	}
	if len(in.Origins) == 0 || len(in.Origins) > wire.MaxOrigins {
		return nil, invalid("origins must hold 1..%d entries", wire.MaxOrigins)
	}
	for i, o := range in.Origins {
		if !wire.ValidOrigin(o, in.RPID) {
			return nil, invalid("origins[%d] must be https://host[:port] (http only for localhost) with host the rpId or a subdomain of it", i)
		}
		if slices.Contains(in.Origins[:i], o) {
			return nil, invalid("origins must be distinct")
		}
	}
	rp := &wire.RelyingParty{DocType: "relyingParty", Org: msp, RPID: in.RPID, Origins: in.Origins, SetTx: t.id, SetAt: t.at}
	k, err := key(t.stub, objRelyingParty, msp)
	if err != nil {
		return nil, fmt.Errorf("relying party key: %w", err)
	}
	if err := putJSON(t.stub, k, rp); err != nil {
		return nil, err
	}
	if err := t.writeAudit(wire.AuditRelyingPartySet, "org:"+msp, nil, msp, ""); err != nil {
		return nil, err
	}
	if err := setEvent(t.stub, wire.EventRelyingPartySet, rp); err != nil {
		return nil, err
	}
	return rp, nil
}

// GetRelyingParty returns the relying party of the org with that MSP ID,
// or a not_found refusal.
func (c *Contract) GetRelyingParty(ctx contractapi.TransactionContextInterface, msp string) (*wire.RelyingParty, error) {
	if !wire.ValidID(msp) {
		return nil, invalid("MSP ID is malformed")
	}
	rp, found, err := getRelyingParty(ctx.GetStub(), msp)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, refuse(wire.CodeNotFound, "org %s has no relying party", msp)
	}
	return rp, nil
}

// RegisterPasskey adds a passkey to an existing actor. Only an org admin
// (OU "admin") may call it, for an active actor its own MSP registered
// (forbidden otherwise), once the org's relying party is set (forbidden
// before). passkeyJSON is a PasskeyInput: the credential id is canonical
// base64url of 16..1023 bytes, the key a PEM ECDSA P-256 key (converted
// from the registration's COSE key, envelope.ParseCOSEKey), signCount the
// registration's counter. A credential id or key already registered (to
// anyone, in any role) is a conflict. The passkey is bound to the org's
// current rpId. From this transaction on the actor may sign with the
// passkey as well as with its PEM key; an actor may hold several
// passkeys. The gateway calls it after a registration ceremony it
// verified; an actor enrolled by invitation is registered with its first
// passkey by RegisterActor instead.
func (c *Contract) RegisterPasskey(ctx contractapi.TransactionContextInterface, passkeyJSON string) (*wire.Passkey, error) {
	t, err := newTx(ctx)
	if err != nil {
		return nil, err
	}
	msp, err := adminMSP(t.stub, "register passkeys")
	if err != nil {
		return nil, err
	}
	var in wire.PasskeyInput
	if err := wire.DecodeStrict([]byte(passkeyJSON), &in); err != nil {
		return nil, invalid("malformed passkey: %s", wire.JSONProblem(err))
	}
	if !wire.ValidID(in.ActorID) {
		return nil, invalid("actorId is malformed")
	}
	pub, err := parsePasskeyCredential(in.PasskeyCredential)
	if err != nil {
		return nil, err
	}
	actor, found, err := getActor(t.stub, in.ActorID)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, refuse(wire.CodeNotFound, "actor %s not found", in.ActorID)
	}
	if actor.Org != msp {
		return nil, refuse(wire.CodeForbidden, "actor %s belongs to another org", actor.ID)
	}
	if actor.Status != wire.StatusActive {
		return nil, refuse(wire.CodeForbidden, "actor %s is not active", actor.ID)
	}
	pk, err := t.putPasskey(actor.ID, msp, in.PasskeyCredential, pub)
	if err != nil {
		return nil, err
	}
	if err := t.writeAudit(wire.AuditPasskeyRegistered, "org:"+msp, patientOf(actor), actor.ID, ""); err != nil {
		return nil, err
	}
	if err := setEvent(t.stub, wire.EventPasskeyRegistered, pk); err != nil {
		return nil, err
	}
	return pk, nil
}

// GetPasskey returns the passkey with that credential id (base64url), or
// a not_found refusal.
func (c *Contract) GetPasskey(ctx contractapi.TransactionContextInterface, credentialID string) (*wire.Passkey, error) {
	if !wire.ValidCredentialID(credentialID) {
		return nil, invalid("credentialId must be canonical base64url of %d..%d bytes", wire.MinCredentialIDBytes, wire.MaxCredentialIDBytes)
	}
	pk, found, err := getPasskey(ctx.GetStub(), credentialID)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, refuse(wire.CodeNotFound, "passkey %s not found", credentialID)
	}
	return pk, nil
}

// ListPasskeys returns the passkeys of an actor, ordered by credential id
// (empty when it has none or does not exist): what a portal lists as the
// allowed credentials of the actor's sign-in.
func (c *Contract) ListPasskeys(ctx contractapi.TransactionContextInterface, actorID string) ([]wire.Passkey, error) {
	stub := ctx.GetStub()
	if !wire.ValidID(actorID) {
		return nil, invalid("actorId is malformed")
	}
	keys, err := partialKeys(stub, objPasskeyByActor, []string{actorID})
	if err != nil {
		return nil, err
	}
	out := make([]wire.Passkey, 0, len(keys))
	for _, attrs := range keys {
		pk, found, err := getPasskey(stub, attrs[1])
		if err != nil {
			return nil, err
		}
		if !found {
			return nil, fmt.Errorf("index names missing passkey %s", attrs[1])
		}
		out = append(out, *pk)
	}
	return out, nil
}

// adminMSP returns the creator's MSP ID if the creator is an org admin,
// and a forbidden refusal naming what it tried to do otherwise.
func adminMSP(stub shim.ChaincodeStubInterface, what string) (string, error) {
	admin, err := cid.HasOUValue(stub, AdminOU)
	if err != nil {
		return "", refuse(wire.CodeForbidden, "creator identity carries no X.509 certificate")
	}
	if !admin {
		return "", refuse(wire.CodeForbidden, "only an org admin may %s", what)
	}
	msp, err := cid.GetMSPID(stub)
	if err != nil {
		return "", fmt.Errorf("read creator MSP ID: %w", err)
	}
	return msp, nil
}

// parsePasskeyCredential checks a credential's form and returns its key.
func parsePasskeyCredential(c wire.PasskeyCredential) (*ecdsa.PublicKey, error) {
	if !wire.ValidCredentialID(c.CredentialID) {
		return nil, invalid("credentialId must be canonical base64url of %d..%d bytes", wire.MinCredentialIDBytes, wire.MaxCredentialIDBytes)
	}
	pub, err := envelope.ParsePublicKey([]byte(c.PublicKey))
	if err != nil {
		return nil, invalid("passkey publicKey must be a PEM ECDSA P-256 public key (PKIX), converted from the credential's COSE key")
	}
	return pub, nil
}

// putPasskey registers a checked credential for actorID, bound to the
// current relying party of org msp: the passkey record, its actor index
// and the claim of its key.
func (t *tx) putPasskey(actorID, msp string, c wire.PasskeyCredential, pub *ecdsa.PublicKey) (*wire.Passkey, error) {
	rp, found, err := getRelyingParty(t.stub, msp)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, refuse(wire.CodeForbidden, "org %s has no relying party: set it (SetRelyingParty) before registering passkeys", msp)
	}
	k, err := key(t.stub, objPasskey, c.CredentialID)
	if err != nil {
		return nil, fmt.Errorf("passkey key: %w", err)
	}
	held, err := t.stub.GetState(k)
	if err != nil {
		return nil, fmt.Errorf("read passkey: %w", err)
	}
	if len(held) != 0 {
		return nil, refuse(wire.CodeConflict, "passkey %s already registered", c.CredentialID)
	}
	pemKey, err := claimPublicKey(t.stub, pub, "passkey:"+actorID)
	if err != nil {
		return nil, err
	}
	pk := &wire.Passkey{
		DocType: "passkey", CredentialID: c.CredentialID, ActorID: actorID, PublicKey: pemKey,
		RPID: rp.RPID, SignCount: c.SignCount, RegisteredTx: t.id, RegisteredAt: t.at,
	}
	if err := putJSON(t.stub, k, pk); err != nil {
		return nil, err
	}
	if err := putIndex(t.stub, objPasskeyByActor, actorID, c.CredentialID); err != nil {
		return nil, err
	}
	return pk, nil
}

// verifyPasskey authenticates a passkey-signed payload of actor: the
// assertion names one of the actor's passkeys, bound to the rpId of the
// actor's org; it verifies (envelope.VerifyAssertion) against that
// relying party; and the authenticator's counter advanced. When the stored
// or the new counter is non-zero the new one must be greater (equal or
// lower means a replayed assertion or a cloned authenticator); the new
// value is stored. Both zero (authenticators that keep no counter) is
// accepted, and replays are then refused by the nonce. A malformed
// assertion is invalid, every other failure unauthenticated. A counter
// update writes the passkey record, so two actions of one counting
// passkey in one block conflict (MVCC) and the later one must be signed
// anew (its counter is then stale); counterless passkeys write nothing.
func (t *tx) verifyPasskey(actor *wire.Actor, payload []byte, a *envelope.Assertion) error {
	if len(a.CredentialID) > wire.MaxCredentialIDBytes {
		return invalid("credentialId is longer than %d bytes", wire.MaxCredentialIDBytes)
	}
	pk, found, err := getPasskey(t.stub, base64.RawURLEncoding.EncodeToString(a.CredentialID))
	if err != nil {
		return err
	}
	if !found || pk.ActorID != actor.ID {
		return refuse(wire.CodeUnauthenticated, "unknown passkey for actor %s", actor.ID)
	}
	rp, found, err := getRelyingParty(t.stub, actor.Org)
	if err != nil {
		return err
	}
	if !found {
		return refuse(wire.CodeUnauthenticated, "org %s of actor %s has no relying party", actor.Org, actor.ID)
	}
	if pk.RPID != rp.RPID {
		return refuse(wire.CodeUnauthenticated, "passkey %s is bound to a relying party org %s no longer uses", pk.CredentialID, actor.Org)
	}
	pub, err := envelope.ParsePublicKey([]byte(pk.PublicKey))
	if err != nil {
		return fmt.Errorf("ledger key of passkey %s: %w", pk.CredentialID, err)
	}
	ad, err := envelope.VerifyAssertion(pub, envelope.RelyingParty{ID: rp.RPID, Origins: rp.Origins}, payload, *a)
	if errors.Is(err, envelope.ErrMalformed) {
		return invalid("malformed passkey assertion: %v", err)
	}
	if err != nil {
		return refuse(wire.CodeUnauthenticated, "passkey assertion of actor %s refused: %v", actor.ID, err)
	}
	if pk.SignCount == 0 && ad.SignCount == 0 {
		return nil
	}
	if ad.SignCount <= pk.SignCount {
		return refuse(wire.CodeUnauthenticated, "passkey %s signature counter %d is not above %d: replayed assertion or cloned authenticator", pk.CredentialID, ad.SignCount, pk.SignCount)
	}
	pk.SignCount = ad.SignCount
	k, err := key(t.stub, objPasskey, pk.CredentialID)
	if err != nil {
		return fmt.Errorf("passkey key: %w", err)
	}
	return putJSON(t.stub, k, pk)
}

func getRelyingParty(stub shim.ChaincodeStubInterface, msp string) (*wire.RelyingParty, bool, error) {
	k, err := key(stub, objRelyingParty, msp)
	if err != nil {
		return nil, false, fmt.Errorf("relying party key: %w", err)
	}
	var rp wire.RelyingParty
	found, err := getJSON(stub, k, &rp)
	if err != nil || !found {
		return nil, false, err
	}
	return &rp, true, nil
}

func getPasskey(stub shim.ChaincodeStubInterface, credentialID string) (*wire.Passkey, bool, error) {
	k, err := key(stub, objPasskey, credentialID)
	if err != nil {
		return nil, false, fmt.Errorf("passkey key: %w", err)
	}
	var pk wire.Passkey
	found, err := getJSON(stub, k, &pk)
	if err != nil || !found {
		return nil, false, err
	}
	return &pk, true, nil
}
