package chaincode

import (
	"crypto/ecdsa"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/medprov/medprov/wire"

	"github.com/hyperledger/fabric-contract-api-go/v2/contractapi"

	"github.com/medprov/medprov/envelope"
)

type batchDevice struct {
	dev    *wire.Device
	pub    *ecdsa.PublicKey
	erased bool // the device's patient erased its data
}

// batch is the in-memory view of one RecordReadings transaction: Fabric's
// GetState does not see the transaction's own writes.
type batch struct {
	*tx
	verify   Verifier
	state    map[string][]byte       // committed values of prefetched keys
	devices  map[string]*batchDevice // nil value: unknown device
	byID     map[string]string       // readingId → dataHash, recorded here
	byHash   map[string]string       // dataHash → readingId, recorded here
	months   map[[3]string]bool      // readingMonth markers to write
	patients []string
	ids      []string
}

// RecordReadings records a batch of 1..MaxBatch device-signed readings in
// one transaction. batchJSON is a BatchInput; the result is a BatchResult in
// JSON, one ItemResult per item in input order. Anyone in the org may submit:
// authenticity is the device signature over dataHash, checked per item with
// the device key on the ledger. An item is rejected (and the rest of the
// batch still recorded) if it is malformed (invalid), its device is unknown
// or revoked or its patient erased its data (forbidden), its signature does
// not verify (unauthenticated), its (deviceId, seq) holds a different
// dataHash or its dataHash is already recorded under another reading
// (conflict). An item identical to a recorded
// reading is "exists" with that reading's txId, so a retried batch changes
// nothing. Exactly one ReadingsRecorded event is emitted.
//
// Argument and result are JSON strings rather than typed values, which
// spares contract-api's JSON schema validation of up to 1000 items (see the
// package documentation, Performance).
func (c *Contract) RecordReadings(ctx contractapi.TransactionContextInterface, batchJSON string) (string, error) {
	t, err := newTx(ctx)
	if err != nil {
		return "", err
	}
	var in struct {
		Readings []json.RawMessage `json:"readings"`
	}
	if err := wire.DecodeStrict([]byte(batchJSON), &in); err != nil {
		return "", invalid("malformed batch: %s", wire.JSONProblem(err))
	}
	if len(in.Readings) == 0 || len(in.Readings) > wire.MaxBatch {
		return "", invalid("a batch holds 1..%d readings", wire.MaxBatch)
	}
	verify := c.verifier
	if verify == nil { // a Contract not built by NewChaincode
		verify = envelope.VerifierFunc(envelope.VerifyDigest)
	}
	b := &batch{
		verify:  verify,
		tx:      t,
		devices: map[string]*batchDevice{},
		byID:    map[string]string{},
		byHash:  map[string]string{},
		months:  map[[3]string]bool{},
	}
	// Writes go to the peer in one message at the end of the transaction
	// (Fabric 3.1 write batching; a no-op elsewhere).
	t.stub.StartWriteBatch()
	res := wire.BatchResult{TxID: t.id, Results: make([]wire.ItemResult, len(in.Readings))}
	checked := make([]*checkedItem, len(in.Readings))
	var keys []string
	for i, raw := range in.Readings {
		r, ci, err := b.check(i, raw)
		if err != nil {
			return "", err
		}
		res.Results[i], checked[i] = r, ci
		if ci != nil {
			keys = append(keys, ci.rk, ci.hk)
		}
	}
	// One round trip for the reading and hash keys of the whole batch
	// instead of two per reading.
	if err := b.prefetch(keys); err != nil {
		return "", err
	}
	for i, ci := range checked {
		if ci == nil {
			continue
		}
		r, err := b.write(res.Results[i], ci)
		if err != nil {
			return "", err
		}
		if r.Status == wire.StatusRecorded {
			res.Recorded++
		}
		res.Results[i] = r
	}
	if err := b.finish(); err != nil {
		return "", err
	}
	out, err := json.Marshal(res)
	if err != nil {
		return "", fmt.Errorf("encode batch result: %w", err)
	}
	return string(out), nil
}

func rejected(r wire.ItemResult, e *wire.Error) wire.ItemResult {
	r.Status, r.Code, r.Error = wire.StatusRejected, e.Code, e.Message
	return r
}

// checkedItem is an item whose shape, device and signature passed, with
// the keys its duplicate checks read.
type checkedItem struct {
	it         wire.ReadingInput
	seq        uint64
	measuredAt time.Time
	dev        *batchDevice
	rk, hk     string
}

// check validates one item up to its device signature. A returned error is
// a state failure that aborts the transaction; refusals are reported in the
// ItemResult (and the *checkedItem is nil).
func (b *batch) check(i int, raw json.RawMessage) (wire.ItemResult, *checkedItem, error) {
	r := wire.ItemResult{Index: i}
	it, measuredAt, err := wire.DecodeReadingInput(raw)
	if it.DeviceID != "" {
		r.ReadingID = it.ID()
	}
	if e := (*wire.Error)(nil); errors.As(err, &e) {
		return rejected(r, e), nil, nil
	} else if err != nil {
		return r, nil, err
	}
	seq := it.Seq
	sig, err := base64.StdEncoding.DecodeString(it.Signature)
	if err != nil || len(sig) < 8 || len(sig) > 80 {
		return rejected(r, invalid("signature must be base64 DER ECDSA")), nil, nil
	}

	d, err := b.device(it.DeviceID)
	if err != nil {
		return r, nil, err
	}
	if d == nil {
		return rejected(r, refuse(wire.CodeForbidden, "unknown device %s", it.DeviceID)), nil, nil
	}
	if d.dev.Status != wire.StatusActive {
		return rejected(r, refuse(wire.CodeForbidden, "device %s revoked", it.DeviceID)), nil, nil
	}
	if d.erased {
		return rejected(r, refuse(wire.CodeForbidden, "the patient of device %s erased their data", it.DeviceID)), nil, nil
	}
	digest, err := hex.DecodeString(it.DataHash)
	if err != nil {
		return rejected(r, invalid("dataHash must be lower-case hex SHA-256")), nil, nil
	}
	if b.verify.VerifyDigest(d.pub, digest, sig) != nil {
		return rejected(r, refuse(wire.CodeUnauthenticated, "bad signature for device %s", it.DeviceID)), nil, nil
	}
	rk, err := key(b.stub, objReading, it.DeviceID, seqString(seq))
	if err != nil {
		return r, nil, fmt.Errorf("reading key: %w", err)
	}
	hk, err := key(b.stub, objReadingHash, it.DataHash)
	if err != nil {
		return r, nil, fmt.Errorf("reading hash key: %w", err)
	}
	return r, &checkedItem{it: it, seq: seq, measuredAt: measuredAt, dev: d, rk: rk, hk: hk}, nil
}

// prefetch reads the committed values of keys in one GetMultipleStates
// call (batched by the peer on Fabric 3.1).
func (b *batch) prefetch(keys []string) error {
	b.state = make(map[string][]byte, len(keys))
	if len(keys) == 0 {
		return nil
	}
	vals, err := b.stub.GetMultipleStates(keys...)
	if err != nil {
		return fmt.Errorf("read readings: %w", err)
	}
	if len(vals) != len(keys) {
		return fmt.Errorf("read readings: %d values for %d keys", len(vals), len(keys))
	}
	for i, k := range keys {
		b.state[k] = vals[i]
	}
	return nil
}

// write settles duplicates of a checked item against the batch and the
// prefetched state, then writes the reading and its indexes.
func (b *batch) write(r wire.ItemResult, ci *checkedItem) (wire.ItemResult, error) {
	it, seq, measuredAt, d, rk, hk := ci.it, ci.seq, ci.measuredAt, ci.dev, ci.rk, ci.hk

	if h, ok := b.byID[r.ReadingID]; ok {
		if h == it.DataHash {
			r.Status, r.TxID = wire.StatusExists, b.id
			return r, nil
		}
		return rejected(r, refuse(wire.CodeConflict, "duplicate seq")), nil
	}
	var old wire.Reading
	if raw := b.state[rk]; len(raw) != 0 {
		if err := json.Unmarshal(raw, &old); err != nil {
			return r, fmt.Errorf("decode stored reading: %w", err)
		}
		if old.DataHash == it.DataHash {
			r.Status, r.TxID = wire.StatusExists, old.TxID
			return r, nil
		}
		return rejected(r, refuse(wire.CodeConflict, "duplicate seq")), nil
	}
	if other, ok := b.byHash[it.DataHash]; ok {
		return rejected(r, refuse(wire.CodeConflict, "dataHash already recorded as %s", other)), nil
	}
	if other := b.state[hk]; len(other) != 0 {
		return rejected(r, refuse(wire.CodeConflict, "dataHash already recorded as %s", other)), nil
	}

	rec := &wire.Reading{
		DocType: "reading", ID: r.ReadingID, DeviceID: it.DeviceID, PatientID: d.dev.PatientID,
		Seq: seq, Type: it.Type, Unit: it.Unit, MeasuredAt: it.MeasuredAt, DataHash: it.DataHash,
		Signature: it.Signature, CID: it.CID, CipherHash: it.CipherHash, Size: it.Size,
		TxID: b.id, TxTime: b.at,
	}
	if err := putJSON(b.stub, rk, rec); err != nil {
		return r, err
	}
	if err := b.stub.PutState(hk, []byte(r.ReadingID)); err != nil {
		return r, fmt.Errorf("write reading hash: %w", err)
	}
	month := monthOf(measuredAt)
	if err := putIndex(b.stub, objReadingByPatient, rec.PatientID, rec.Type, month, formatTime(measuredAt), rec.ID); err != nil {
		return r, err
	}
	b.months[[3]string{rec.PatientID, rec.Type, month}] = true
	b.byID[rec.ID] = rec.DataHash
	b.byHash[rec.DataHash] = rec.ID
	b.patients = append(b.patients, rec.PatientID)
	b.ids = append(b.ids, rec.ID)
	r.Status, r.TxID = wire.StatusRecorded, b.id
	return r, nil
}

// checkShape validates the fields of an item other than deviceId, seq and
// signature, and returns measuredAt.
// device returns the device and its parsed key, reading each device once per
// batch; nil if the device is not registered.
func (b *batch) device(id string) (*batchDevice, error) {
	if d, ok := b.devices[id]; ok {
		return d, nil
	}
	dev, found, err := getDevice(b.stub, id)
	if err != nil {
		return nil, err
	}
	var d *batchDevice
	if found {
		pub, err := envelope.ParsePublicKey([]byte(dev.PublicKey))
		if err != nil {
			return nil, fmt.Errorf("ledger key of device %s: %w", id, err)
		}
		erased, err := isErased(b.stub, dev.PatientID)
		if err != nil {
			return nil, err
		}
		d = &batchDevice{dev: dev, pub: pub, erased: erased}
	}
	b.devices[id] = d
	return d, nil
}

// finish writes the month markers, the audit event (if anything was
// recorded) and the transaction's single event.
func (b *batch) finish() error {
	months := make([][3]string, 0, len(b.months))
	for m := range b.months {
		months = append(months, m)
	}
	slices.SortFunc(months, func(x, y [3]string) int {
		return strings.Compare(x[0]+"\x00"+x[1]+"\x00"+x[2], y[0]+"\x00"+y[1]+"\x00"+y[2])
	})
	for _, m := range months {
		if err := putIndex(b.stub, objReadingMonth, m[0], m[1], m[2]); err != nil {
			return err
		}
	}
	if len(b.ids) > 0 {
		actor, err := orgActor(b.stub)
		if err != nil {
			return err
		}
		if err := b.writeAudit(wire.AuditReadingsRecorded, actor, b.patients, b.id, ""); err != nil {
			return err
		}
	}
	ids := b.ids
	if ids == nil {
		ids = []string{}
	}
	return setEvent(b.stub, wire.EventReadingsRecorded, wire.ReadingsRecordedEvent{TxID: b.id, ReadingIDs: ids})
}

// GetReading returns the reading "<deviceId>:<seq>", or a not_found refusal.
func (c *Contract) GetReading(ctx contractapi.TransactionContextInterface, id string) (*wire.Reading, error) {
	r, found, err := getReading(ctx, id)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, refuse(wire.CodeNotFound, "reading %s not found", id)
	}
	return r, nil
}

func getReading(ctx contractapi.TransactionContextInterface, id string) (*wire.Reading, bool, error) {
	dev, seq, ok := wire.SplitReadingID(id)
	if !ok {
		return nil, false, invalid("reading id must be <deviceId>:<seq>")
	}
	k, err := key(ctx.GetStub(), objReading, dev, seqString(seq))
	if err != nil {
		return nil, false, fmt.Errorf("reading key: %w", err)
	}
	var r wire.Reading
	found, err := getJSON(ctx.GetStub(), k, &r)
	if err != nil || !found {
		return nil, false, err
	}
	return &r, true, nil
}

// ListReadings pages through a patient's readings of one type (typ "" = all
// types) measured in [from, to] (RFC 3339, inclusive, "" = open), ordered by
// type, then measuredAt, then reading id. pageSize is 1..MaxPageSize
// (default DefaultPageSize); bookmark is "" for the first page, then the
// previous page's bookmark, which is "" after the last page.
func (c *Contract) ListReadings(ctx contractapi.TransactionContextInterface, patientID, typ, from, to, pageSizeArg, bookmark string) (*wire.ReadingPage, error) {
	stub := ctx.GetStub()
	if !wire.ValidID(patientID) {
		return nil, invalid("patientId is malformed")
	}
	prefix := []string{patientID}
	if typ != "" {
		if !wire.ValidToken(typ) {
			return nil, invalid("type must match ^[a-z0-9._-]{1,64}$")
		}
		prefix = append(prefix, typ)
	}
	n, err := pageSize(pageSizeArg)
	if err != nil {
		return nil, err
	}
	q := monthQuery{marker: objReadingMonth, index: objReadingByPatient, prefix: prefix}
	if q.from, err = timeBound("from", from); err != nil {
		return nil, err
	}
	if q.to, err = timeBound("to", to); err != nil {
		return nil, err
	}
	if q.after, err = decodeBookmark(stub, bookmark, objReadingByPatient, prefix); err != nil {
		return nil, err
	}
	items, last, more, err := scanMonths(stub, q, n, func(attrs []string) (wire.Reading, bool, error) {
		r, found, err := getReading(ctx, attrs[4])
		if err != nil {
			return wire.Reading{}, false, err
		}
		if !found {
			return wire.Reading{}, false, fmt.Errorf("index names missing reading %s", attrs[4])
		}
		return *r, true, nil
	})
	if err != nil {
		return nil, err
	}
	page := &wire.ReadingPage{Items: items, Count: len(items)}
	if more {
		page.Bookmark = encodeBookmark(last)
	}
	return page, nil
}
