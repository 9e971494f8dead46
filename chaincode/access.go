package chaincode

import (
	"fmt"
	"slices"

	"github.com/medprov/medprov/consent"
	"github.com/medprov/medprov/wire"

	"github.com/hyperledger/fabric-chaincode-go/v2/shim"
	"github.com/hyperledger/fabric-contract-api-go/v2/contractapi"
)

// RequestAccess decides a signed access.request of a researcher at the
// transaction timestamp and commits the decision as an AccessEvent, granted
// or denied: a denial is a committed decision, not an error. The rule is
// consent.Decide over the patient's consents for this researcher: granted
// by an active consent of the same purpose and data types, valid at the
// transaction time, whose window contains [from, to]; otherwise denied with
// the most specific reason. A request for a patient who erased its data
// (ErasePatient) is denied with patient_erased, whatever the consents say.
//
// A patient may request its own readings (patientId = the signer): that is
// granted without a consent, so the event's consentId is empty and its
// actorId equals its patientId (AccessEvent.SelfAccess), with the purpose
// the patient sent. Everything else is as for a researcher: the same
// checks of the request, the same selection of readings, the same access
// and audit records, and patient_erased once the patient erased its data.
// Self-access needs no new reason or field: actor ids are unique, so only
// the patient can be the actor of an event about itself, and a researcher
// naming itself as the patient is refused (invalid). A patient asking for
// another patient's data, and any other role, is forbidden and nothing is
// written.
//
// A grant lists the ids of the patient's readings of the requested types
// measured in [from, to], ordered by type, then measuredAt, then id, at most
// limit (1..MaxAccessLimit, default DefaultAccessLimit) of them, continuing
// after cursor; nextCursor is set when more follow. Malformed requests, bad
// signatures, stale issuedAt and replayed nonces are errors and write
// nothing.
func (c *Contract) RequestAccess(ctx contractapi.TransactionContextInterface, envelopeJSON string) (*wire.AccessEvent, error) {
	t, err := newTx(ctx)
	if err != nil {
		return nil, err
	}
	var p wire.AccessRequestAction
	requester, err := t.authenticate(envelopeJSON, wire.ActionAccessRequest, "", &p)
	if err != nil {
		return nil, err
	}
	return t.decideAccess(requester, &p, "")
}

// decideAccess decides the access request p of requester, authenticated
// already, as RequestAccess describes, and commits the decision. With
// only set (a read of that one reading, RequestAccessByRead), a grant
// releases exactly that reading.
func (t *tx) decideAccess(requester *wire.Actor, p *wire.AccessRequestAction, only string) (*wire.AccessEvent, error) {
	self := requester.Role == wire.RolePatient
	switch {
	case self && p.PatientID != requester.ID:
		return nil, refuse(wire.CodeForbidden, "a patient may request access to its own data only")
	case !self && requester.Role != wire.RoleResearcher:
		return nil, refuse(wire.CodeForbidden, "%s requires role researcher or patient, actor %s is %s",
			wire.ActionAccessRequest, requester.ID, requester.Role)
	case !self && p.PatientID == requester.ID:
		return nil, invalid("patientId names the signer, who is not a patient")
	}
	if !wire.ValidID(p.PatientID) {
		return nil, invalid("patientId is malformed")
	}
	if !wire.ValidToken(p.Purpose) {
		return nil, invalid("purpose must match ^[a-z0-9._-]{1,64}$")
	}
	if err := checkDataTypes(p.DataTypes); err != nil {
		return nil, err
	}
	from, err := parseTime("from", p.From)
	if err != nil {
		return nil, err
	}
	to, err := parseTime("to", p.To)
	if err != nil {
		return nil, err
	}
	if to.Before(from) {
		return nil, invalid("from must not be after to")
	}
	limit := p.Limit
	if limit == 0 {
		limit = wire.DefaultAccessLimit
	}
	if limit < 1 || limit > wire.MaxAccessLimit {
		return nil, invalid("limit must be in 1..%d", wire.MaxAccessLimit)
	}
	cursor, err := decodeBookmark(t.stub, p.Cursor, objReadingByPatient, []string{p.PatientID})
	if err != nil {
		return nil, invalid("cursor does not belong to this patient's readings")
	}
	if len(t.id) < 24 {
		return nil, fmt.Errorf("transaction id %q too short for an access id", t.id)
	}

	ev := &wire.AccessEvent{
		DocType: "access", ID: "acc-" + t.id[:24], ActorID: requester.ID, PatientID: p.PatientID,
		Purpose: p.Purpose, DataTypes: p.DataTypes, From: p.From, To: p.To,
		TxID: t.id, TxTime: t.at,
	}
	req := consent.Request{Self: self, Purpose: p.Purpose, DataTypes: p.DataTypes, From: from, To: to, At: t.time}
	if !self {
		if req.Consents, err = patientConsents(t.stub, p.PatientID, requester.ID); err != nil {
			return nil, err
		}
	}
	if req.Erased, err = isErased(t.stub, p.PatientID); err != nil {
		return nil, err
	}
	grant, reason, consentID := consent.Decide(req)
	ev.ConsentID = consentID
	switch {
	case grant && only != "":
		ev.Decision, ev.ReadingIDs, ev.Count = wire.DecisionGranted, []string{only}, 1
	case grant:
		ev.Decision = wire.DecisionGranted
		ids, last, more, err := grantedReadings(t.stub, p.PatientID, p.DataTypes, formatTime(from), formatTime(to), cursor, limit)
		if err != nil {
			return nil, err
		}
		ev.ReadingIDs, ev.Count = ids, len(ids)
		if more {
			ev.NextCursor = encodeBookmark(last)
		}
	default:
		ev.Decision, ev.Reason = wire.DecisionDenied, reason
	}

	if err := t.writeAccess(ev); err != nil {
		return nil, err
	}
	typ := wire.AuditAccessDenied
	if grant {
		typ = wire.AuditAccessGranted
	}
	if err := t.writeAudit(typ, requester.ID, []string{p.PatientID}, ev.ID, ev.Decision); err != nil {
		return nil, err
	}
	if err := setEvent(t.stub, wire.EventAccessDecided, ev); err != nil {
		return nil, err
	}
	return ev, nil
}

// grantedReadings lists reading ids of the given types measured in [from,
// to] (fixed-width), in type order, after cursor, at most limit.
func grantedReadings(stub shim.ChaincodeStubInterface, patientID string, types []string, from, to, cursor string, limit int) ([]string, string, bool, error) {
	sorted := slices.Clone(types)
	slices.Sort(sorted)
	ids := []string{}
	last := ""
	for _, dt := range sorted {
		q := monthQuery{
			marker: objReadingMonth, index: objReadingByPatient, prefix: []string{patientID, dt},
			from: from, to: to, after: cursor,
		}
		got, l, more, err := scanMonths(stub, q, limit-len(ids), func(attrs []string) (string, bool, error) {
			return attrs[4], true, nil
		})
		if err != nil {
			return nil, "", false, err
		}
		ids = append(ids, got...)
		if l != "" {
			last = l
		}
		if more {
			return ids, last, true, nil
		}
	}
	return ids, last, false, nil
}

// writeAccess stores the access event with its patient (by time) and
// reading indexes.
func (t *tx) writeAccess(ev *wire.AccessEvent) error {
	k, err := key(t.stub, objAccess, ev.ID)
	if err != nil {
		return fmt.Errorf("access key: %w", err)
	}
	if err := putJSON(t.stub, k, ev); err != nil {
		return err
	}
	month := monthOf(t.time)
	if err := putIndex(t.stub, objAccessByPatient, ev.PatientID, month, t.at, ev.ID); err != nil {
		return err
	}
	if err := putIndex(t.stub, objAccessMonth, ev.PatientID, month); err != nil {
		return err
	}
	for _, id := range ev.ReadingIDs {
		if err := putIndex(t.stub, objAccessByReading, id, ev.ID); err != nil {
			return err
		}
	}
	return nil
}

// GetAccessEvent returns the access event with that id, or a not_found
// refusal.
func (c *Contract) GetAccessEvent(ctx contractapi.TransactionContextInterface, id string) (*wire.AccessEvent, error) {
	ev, found, err := getAccess(ctx.GetStub(), id)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, refuse(wire.CodeNotFound, "access event %s not found", id)
	}
	return ev, nil
}

func getAccess(stub shim.ChaincodeStubInterface, id string) (*wire.AccessEvent, bool, error) {
	if !wire.ValidID(id) {
		return nil, false, invalid("access id is malformed")
	}
	k, err := key(stub, objAccess, id)
	if err != nil {
		return nil, false, fmt.Errorf("access key: %w", err)
	}
	var ev wire.AccessEvent
	found, err := getJSON(stub, k, &ev)
	if err != nil || !found {
		return nil, false, err
	}
	return &ev, true, nil
}

// GetAccessLog pages through the access decisions (granted and denied) on a
// patient's data, oldest first. pageSize and bookmark work as in
// ListReadings.
func (c *Contract) GetAccessLog(ctx contractapi.TransactionContextInterface, patientID, pageSizeArg, bookmark string) (*wire.AccessEventPage, error) {
	stub := ctx.GetStub()
	if !wire.ValidID(patientID) {
		return nil, invalid("patientId is malformed")
	}
	n, err := pageSize(pageSizeArg)
	if err != nil {
		return nil, err
	}
	prefix := []string{patientID}
	q := monthQuery{marker: objAccessMonth, index: objAccessByPatient, prefix: prefix}
	if q.after, err = decodeBookmark(stub, bookmark, objAccessByPatient, prefix); err != nil {
		return nil, err
	}
	items, last, more, err := scanMonths(stub, q, n, func(attrs []string) (wire.AccessEvent, bool, error) {
		ev, found, err := getAccess(stub, attrs[3])
		if err != nil {
			return wire.AccessEvent{}, false, err
		}
		if !found {
			return wire.AccessEvent{}, false, fmt.Errorf("index names missing access event %s", attrs[3])
		}
		return *ev, true, nil
	})
	if err != nil {
		return nil, err
	}
	page := &wire.AccessEventPage{Items: items, Count: len(items)}
	if more {
		page.Bookmark = encodeBookmark(last)
	}
	return page, nil
}
