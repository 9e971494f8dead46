package chaincode

import (
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"

	"github.com/medprov/medprov/wire"

	"github.com/hyperledger/fabric-chaincode-go/v2/shim"
	"github.com/hyperledger/fabric-contract-api-go/v2/contractapi"

	"github.com/medprov/medprov/envelope"
)

// RegisterActor registers an actor. Only an org admin (creator certificate
// with OU "admin") may call it. actorJSON is {"id","role","publicKey"}; the
// key must be a PEM ECDSA P-256 PKIX key not already registered to another
// actor or device. A duplicate id is a conflict. The actor's org is the
// creator's MSP ID.
//
// Instead of publicKey, actorJSON may carry "passkey" (a
// PasskeyCredential, checked as RegisterPasskey checks it): the actor is
// then registered with that passkey as its only credential (publicKey ""),
// which is how a person enrolled by invitation joins. Both at once are
// invalid. The passkey needs the org's relying party (forbidden before
// SetRelyingParty).
func (c *Contract) RegisterActor(ctx contractapi.TransactionContextInterface, actorJSON string) (*wire.Actor, error) {
	t, err := newTx(ctx)
	if err != nil {
		return nil, err
	}
	msp, err := adminMSP(t.stub, "register actors")
	if err != nil {
		return nil, err
	}
	var in wire.ActorInput
	if err := wire.DecodeStrict([]byte(actorJSON), &in); err != nil {
		return nil, invalid("malformed actor: %s", wire.JSONProblem(err))
	}
	if !wire.ValidID(in.ID) {
		return nil, invalid("actor id must match %s", wire.IDPattern)
	}
	if !wire.ValidRole(in.Role) {
		return nil, invalid("role must be patient, operator, researcher or regulator")
	}
	var pub, passkeyPub *ecdsa.PublicKey
	switch {
	case in.Passkey != nil && in.PublicKey != "":
		return nil, invalid("give publicKey or passkey, not both")
	case in.Passkey != nil:
		if passkeyPub, err = parsePasskeyCredential(*in.Passkey); err != nil {
			return nil, err
		}
	default:
		if pub, err = envelope.ParsePublicKey([]byte(in.PublicKey)); err != nil {
			return nil, invalid("publicKey must be a PEM ECDSA P-256 public key (PKIX)")
		}
	}
	k, err := key(t.stub, objActor, in.ID)
	if err != nil {
		return nil, fmt.Errorf("actor key: %w", err)
	}
	var existing wire.Actor
	found, err := getJSON(t.stub, k, &existing)
	if err != nil {
		return nil, err
	}
	if found {
		return nil, refuse(wire.CodeConflict, "actor %s already registered", in.ID)
	}
	pemKey := "" // a passkey-only actor
	if pub != nil {
		if pemKey, err = claimPublicKey(t.stub, pub, "actor:"+in.ID); err != nil {
			return nil, err
		}
	}
	a := &wire.Actor{
		DocType: "actor", ID: in.ID, Role: in.Role, PublicKey: pemKey, Org: msp,
		Status: wire.StatusActive, RegisteredTx: t.id, RegisteredAt: t.at,
	}
	if err := putJSON(t.stub, k, a); err != nil {
		return nil, err
	}
	if in.Passkey != nil {
		if _, err := t.putPasskey(a.ID, msp, *in.Passkey, passkeyPub); err != nil {
			return nil, err
		}
	}
	var patients []string
	if a.Role == wire.RolePatient {
		patients = []string{a.ID}
	}
	if err := t.writeAudit(wire.AuditActorRegistered, "org:"+msp, patients, a.ID, ""); err != nil {
		return nil, err
	}
	if err := setEvent(t.stub, wire.EventActorRegistered, a); err != nil {
		return nil, err
	}
	return a, nil
}

// GetActor returns the actor with that id, or a not_found refusal.
func (c *Contract) GetActor(ctx contractapi.TransactionContextInterface, id string) (*wire.Actor, error) {
	if !wire.ValidID(id) {
		return nil, invalid("actor id is malformed")
	}
	a, found, err := getActor(ctx.GetStub(), id)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, refuse(wire.CodeNotFound, "actor %s not found", id)
	}
	return a, nil
}

func getActor(stub shim.ChaincodeStubInterface, id string) (*wire.Actor, bool, error) {
	k, err := key(stub, objActor, id)
	if err != nil {
		return nil, false, fmt.Errorf("actor key: %w", err)
	}
	var a wire.Actor
	found, err := getJSON(stub, k, &a)
	if err != nil || !found {
		return nil, false, err
	}
	return &a, true, nil
}

// claimPublicKey records that owner holds pub and returns the key in
// canonical PEM. A key already held by any actor or device is a conflict:
// shared keys would let one holder sign as another.
func claimPublicKey(stub shim.ChaincodeStubInterface, pub *ecdsa.PublicKey, owner string) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("marshal public key: %w", err)
	}
	sum := sha256.Sum256(der)
	k, err := key(stub, objPublicKey, hex.EncodeToString(sum[:]))
	if err != nil {
		return "", fmt.Errorf("public key index: %w", err)
	}
	holder, err := stub.GetState(k)
	if err != nil {
		return "", fmt.Errorf("read public key index: %w", err)
	}
	if len(holder) != 0 {
		return "", refuse(wire.CodeConflict, "public key already registered")
	}
	if err := stub.PutState(k, []byte(owner)); err != nil {
		return "", fmt.Errorf("write public key index: %w", err)
	}
	pemKey, err := envelope.MarshalPublicKey(pub)
	if err != nil {
		return "", err
	}
	return string(pemKey), nil
}
