package chaincode

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/medprov/medprov/wire"

	"github.com/hyperledger/fabric-chaincode-go/v2/shim"
	"github.com/hyperledger/fabric-contract-api-go/v2/contractapi"
)

// ListEvents pages through audit events matching filterJSON (an
// EventFilter; "" matches all), ordered by transaction time then id.
// pageSize and bookmark work as in ListReadings. The most selective filter
// field (patient, then actor, then type) picks the index; the others are
// applied to each event.
func (c *Contract) ListEvents(ctx contractapi.TransactionContextInterface, filterJSON, pageSizeArg, bookmark string) (*wire.AuditEventPage, error) {
	stub := ctx.GetStub()
	var f wire.EventFilter
	if strings.TrimSpace(filterJSON) != "" {
		if err := wire.DecodeStrict([]byte(filterJSON), &f); err != nil {
			return nil, invalid("malformed filter: %s", wire.JSONProblem(err))
		}
	}
	if f.PatientID != "" && !wire.ValidID(f.PatientID) {
		return nil, invalid("patientId is malformed")
	}
	if f.ActorID != "" && (len(f.ActorID) > 140 || !utf8.ValidString(f.ActorID) || strings.ContainsRune(f.ActorID, 0)) {
		return nil, invalid("actorId is malformed")
	}
	if f.Type != "" && !wire.ValidToken(f.Type) {
		return nil, invalid("type is malformed")
	}
	n, err := pageSize(pageSizeArg)
	if err != nil {
		return nil, err
	}
	var prefix []string
	switch {
	case f.PatientID != "":
		prefix = []string{dimPatient, f.PatientID}
	case f.ActorID != "":
		prefix = []string{dimActor, f.ActorID}
	case f.Type != "":
		prefix = []string{dimType, f.Type}
	default:
		prefix = []string{dimAll, allValue}
	}
	q := monthQuery{marker: objAuditMonth, index: objAuditBy, prefix: prefix}
	if q.from, err = timeBound("from", f.From); err != nil {
		return nil, err
	}
	if q.to, err = timeBound("to", f.To); err != nil {
		return nil, err
	}
	if q.after, err = decodeBookmark(stub, bookmark, objAuditBy, prefix); err != nil {
		return nil, err
	}
	items, last, more, err := scanMonths(stub, q, n, func(attrs []string) (wire.AuditEvent, bool, error) {
		var ev wire.AuditEvent
		k, err := key(stub, objAudit, attrs[4])
		if err != nil {
			return ev, false, fmt.Errorf("audit key: %w", err)
		}
		found, err := getJSON(stub, k, &ev)
		if err != nil {
			return ev, false, err
		}
		if !found {
			return ev, false, fmt.Errorf("index names missing audit event %s", attrs[4])
		}
		ok := (f.PatientID == "" || slices.Contains(ev.PatientIDs, f.PatientID)) &&
			(f.ActorID == "" || ev.ActorID == f.ActorID) &&
			(f.Type == "" || ev.Type == f.Type)
		return ev, ok, nil
	})
	if err != nil {
		return nil, err
	}
	page := &wire.AuditEventPage{Items: items, Count: len(items)}
	if more {
		page.Bookmark = encodeBookmark(last)
	}
	return page, nil
}

// GetProvenance returns a reading with its device, the patient's consents
// whose data types include the reading's type (any status and grantee,
// oldest first) and the access events that released it (oldest first).
func (c *Contract) GetProvenance(ctx contractapi.TransactionContextInterface, readingID string) (*wire.Provenance, error) {
	stub := ctx.GetStub()
	r, found, err := getReading(ctx, readingID)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, refuse(wire.CodeNotFound, "reading %s not found", readingID)
	}
	d, found, err := getDevice(stub, r.DeviceID)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("reading %s names missing device %s", r.ID, r.DeviceID)
	}
	all, err := patientConsents(stub, r.PatientID, "")
	if err != nil {
		return nil, err
	}
	consents := []wire.Consent{}
	for _, cn := range all {
		if slices.Contains(cn.DataTypes, r.Type) {
			consents = append(consents, cn)
		}
	}
	accesses, err := readingAccesses(stub, r.ID)
	if err != nil {
		return nil, err
	}
	return &wire.Provenance{Reading: *r, Device: *d, Consents: consents, Accesses: accesses}, nil
}

func readingAccesses(stub shim.ChaincodeStubInterface, readingID string) ([]wire.AccessEvent, error) {
	keys, err := partialKeys(stub, objAccessByReading, []string{readingID})
	if err != nil {
		return nil, err
	}
	out := make([]wire.AccessEvent, 0, len(keys))
	for _, attrs := range keys {
		ev, found, err := getAccess(stub, attrs[1])
		if err != nil {
			return nil, err
		}
		if !found {
			return nil, fmt.Errorf("index names missing access event %s", attrs[1])
		}
		out = append(out, *ev)
	}
	slices.SortStableFunc(out, func(a, b wire.AccessEvent) int {
		return cmp.Or(cmp.Compare(a.TxTime, b.TxTime), cmp.Compare(a.ID, b.ID))
	})
	return out, nil
}
