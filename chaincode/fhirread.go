package chaincode

import (
	"fmt"

	"github.com/hyperledger/fabric-contract-api-go/v2/contractapi"

	"github.com/medprov/medprov/fhir/readaccess"
	"github.com/medprov/medprov/wire"
)

// RequestAccessByRead decides the access a signed FHIR Observation read
// stands for, and commits the decision exactly as RequestAccess does.
// envelopeJSON is the envelope of the actor's signed GET (an http.get
// action, plain or passkey): the signature covers the read's path and
// query, so the actor's own signed statement is the access request
// (readaccess.Parse and Read.Request derive it; nothing the submitting
// gateway says is taken on trust). It is authenticated like every action
// (signature, issuedAt window, active actor, nonce consumed), then decided
// by the same rule, with the same access and audit records and the same
// AccessDecided event.
//
// A read of one reading (Observation/{id} or _id, where id is its
// dataHash, or identifier = its reading id) asks for that reading's
// patient and type, measured at its measuredAt; a grant releases exactly
// that reading. An unknown reading is a not_found refusal and writes
// nothing; so is a patient's read of another patient's reading
// (forbidden). A search by patient is the access request its parameters
// spell out.
func (c *Contract) RequestAccessByRead(ctx contractapi.TransactionContextInterface, envelopeJSON string) (*wire.AccessEvent, error) {
	t, err := newTx(ctx)
	if err != nil {
		return nil, err
	}
	var g wire.HTTPGetAction
	requester, err := t.authenticate(envelopeJSON, wire.ActionHTTPGet, "", &g)
	if err != nil {
		return nil, err
	}
	p, one, err := readaccess.Derive(g, func(dataHash, readingID string) (*wire.Reading, error) {
		var r *wire.Reading
		var found bool
		var err error
		if dataHash != "" {
			r, found, err = readingByHash(ctx, dataHash)
		} else {
			r, found, err = getReading(ctx, readingID)
		}
		if err != nil || !found {
			return nil, err
		}
		return r, nil
	})
	if err != nil {
		return nil, err // a refusal is a *wire.Error: its code and message are the chaincode's
	}
	only := ""
	if one != nil {
		only = one.ID
	}
	return t.decideAccess(requester, &p, only)
}

// GetReadingByHash returns the reading whose dataHash (the id of its FHIR
// Observation) is dataHash, or a not_found refusal.
func (c *Contract) GetReadingByHash(ctx contractapi.TransactionContextInterface, dataHash string) (*wire.Reading, error) {
	r, found, err := readingByHash(ctx, dataHash)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, refuse(wire.CodeNotFound, "reading not found")
	}
	return r, nil
}

// readingByHash looks a reading up by its dataHash (the readingHash
// index).
func readingByHash(ctx contractapi.TransactionContextInterface, dataHash string) (*wire.Reading, bool, error) {
	if !wire.ValidHash(dataHash) {
		return nil, false, invalid("dataHash must be 64 lower-case hex digits")
	}
	k, err := key(ctx.GetStub(), objReadingHash, dataHash)
	if err != nil {
		return nil, false, fmt.Errorf("reading hash key: %w", err)
	}
	id, err := ctx.GetStub().GetState(k)
	if err != nil {
		return nil, false, fmt.Errorf("read reading hash: %w", err)
	}
	if len(id) == 0 {
		return nil, false, nil
	}
	r, found, err := getReading(ctx, string(id))
	if err != nil {
		return nil, false, err
	}
	if !found {
		return nil, false, fmt.Errorf("readingHash index names missing reading %s", id)
	}
	return r, true, nil
}
