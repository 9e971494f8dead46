package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/medprov/medprov/evidence"
	"github.com/medprov/medprov/ledger"
	"github.com/medprov/medprov/wire"
)

// Source is a ledger a bundle is exported from: its blocks, its trust
// root, and the chaincode's queries to find a scope's transactions.
type Source interface {
	BlockHeight(ctx context.Context) (uint64, error)
	RawBlock(ctx context.Context, n uint64) ([]byte, error)
	Trust(ctx context.Context) (*evidence.Trust, error)
	Evaluate(ctx context.Context, p ledger.Proposal) ([]byte, error)
	Tx(ctx context.Context, txID string) (*ledger.TxInfo, error)
}

// ExportOptions say what to export and how.
type ExportOptions struct {
	Scope  Scope
	Format Format
	// Ciphertext, if set, fetches a reading's ciphertext by CID; the
	// bundle then carries the scope's ciphertexts.
	Ciphertext func(ctx context.Context, cid string) ([]byte, error)
	// Now stamps the bundle; default time.Now.
	Now func() time.Time
}

// ErrScope reports a scope that names nothing, or names what the ledger
// does not hold.
var ErrScope = errors.New("audit: bad scope")

// Export builds the bundle of opt.Scope from src: every header, the full
// blocks of the scope's transactions and the tip block, the records, and
// the ciphertexts if asked for.
//
// A patient's scope is every transaction the audit trail lists for the
// patient (within From/To when set): its readings, consents, access
// decisions, devices and erasure; a reading's scope is its recording,
// its device, the consents of its patient and the accesses that released
// it. Either adds the registrations (and last key rotation, revocation,
// passkeys and relying parties) of every actor and device involved, so
// each signature can be checked with the key the ledger held.
func Export(ctx context.Context, src Source, opt ExportOptions) (*Bundle, error) {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	s := opt.Scope
	if (s.PatientID == "") == (s.ReadingID == "") {
		return nil, fmt.Errorf("%w: name a patient or a reading", ErrScope)
	}
	for _, t := range []string{s.From, s.To} {
		if t == "" {
			continue
		}
		if _, err := time.Parse(time.RFC3339Nano, t); err != nil {
			return nil, fmt.Errorf("%w: from and to must be RFC 3339", ErrScope)
		}
	}
	trust, err := src.Trust(ctx)
	if err != nil {
		return nil, fmt.Errorf("audit: trust root: %w", err)
	}
	height, err := src.BlockHeight(ctx)
	if err != nil {
		return nil, fmt.Errorf("audit: height: %w", err)
	}
	if height == 0 {
		return nil, fmt.Errorf("%w: the ledger is empty", ErrScope)
	}
	e := &exporter{src: src, txs: map[string]bool{}, actors: map[string]bool{}, devices: map[string]bool{}, orgs: map[string]bool{}}
	if s.PatientID != "" {
		err = e.patient(ctx, s)
	} else {
		err = e.reading(ctx, s)
	}
	if err != nil {
		return nil, err
	}
	if err := e.parties(ctx); err != nil {
		return nil, err
	}
	b := &Bundle{
		Manifest: Manifest{Backend: trust.Backend, Channel: trust.Channel, Scope: s, Created: opt.Now().UTC(), Tip: height - 1},
		Blocks:   map[uint64][]byte{}, Trust: trust, Records: e.rec, Ciphertexts: map[string][]byte{},
	}
	want := map[uint64]bool{height - 1: true}
	ids := make([]string, 0, len(e.txs))
	for id := range e.txs {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		info, err := src.Tx(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("audit: transaction %s: %w", id, err)
		}
		want[info.Block] = true
		b.Manifest.Transactions = append(b.Manifest.Transactions, TxRef{TxID: id, Block: info.Block})
	}
	for n := uint64(0); n < height; n++ {
		raw, err := src.RawBlock(ctx, n)
		if err != nil {
			return nil, fmt.Errorf("audit: block %d: %w", n, err)
		}
		blk, err := opt.Format.ParseBlock(raw)
		if err != nil {
			return nil, fmt.Errorf("audit: block %d: %w", n, err)
		}
		b.Headers = append(b.Headers, blk.Header)
		if want[n] || blk.Config != nil {
			b.Blocks[n] = raw
		}
	}
	if opt.Ciphertext != nil {
		for _, r := range e.rec.Readings {
			ct, err := opt.Ciphertext(ctx, r.CID)
			if err != nil {
				return nil, fmt.Errorf("audit: ciphertext of %s: %w", r.ID, err)
			}
			b.Ciphertexts[r.CID] = ct
		}
	}
	return b, nil
}

// exporter collects a scope's transactions and records.
type exporter struct {
	src                    Source
	txs                    map[string]bool
	actors, devices, orgs  map[string]bool
	rec                    Records
	consentsOf, accessesOf []string
}

func (e *exporter) addTx(ids ...string) {
	for _, id := range ids {
		if id != "" {
			e.txs[id] = true
		}
	}
}

func (e *exporter) addActor(id string) {
	if id != "" && !strings.HasPrefix(id, "org:") {
		e.actors[id] = true
	}
}

func (e *exporter) eval(ctx context.Context, out any, fn string, args ...string) error {
	b, err := e.src.Evaluate(ctx, ledger.Proposal{Function: fn, Args: args})
	if err != nil {
		return fmt.Errorf("audit: %s: %w", fn, err)
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("audit: decode %s: %w", fn, err)
	}
	return nil
}

// pages calls fn for each page until the bookmark is empty.
func pages(fn func(bookmark string) (string, error)) error {
	bm := ""
	for range 100_000 {
		next, err := fn(bm)
		if err != nil || next == "" {
			return err
		}
		bm = next
	}
	return errors.New("audit: too many pages")
}

var pageSize = strconv.Itoa(wire.MaxPageSize)

func (e *exporter) patient(ctx context.Context, s Scope) error {
	p := s.PatientID
	var actor wire.Actor
	if err := e.eval(ctx, &actor, wire.FnGetActor, p); err != nil {
		return fmt.Errorf("%w: patient %s: %w", ErrScope, p, err)
	}
	e.addActor(p)
	filter, err := json.Marshal(wire.EventFilter{PatientID: p, From: s.From, To: s.To})
	if err != nil {
		return err
	}
	err = pages(func(bm string) (string, error) {
		var page wire.AuditEventPage
		if err := e.eval(ctx, &page, wire.FnListEvents, string(filter), pageSize, bm); err != nil {
			return "", err
		}
		for _, ev := range page.Items {
			e.rec.Audit = append(e.rec.Audit, ev)
			e.addTx(ev.TxID)
			e.addActor(ev.ActorID)
		}
		return page.Bookmark, nil
	})
	if err != nil {
		return err
	}
	if err := e.consents(ctx, p, nil); err != nil {
		return err
	}
	err = pages(func(bm string) (string, error) {
		var page wire.AccessEventPage
		if err := e.eval(ctx, &page, wire.FnGetAccessLog, p, pageSize, bm); err != nil {
			return "", err
		}
		for _, a := range page.Items {
			if inWindow(a.TxTime, s) {
				e.rec.Access = append(e.rec.Access, a)
				e.addTx(a.TxID, a.WithheldTx)
				e.addActor(a.ActorID)
			}
		}
		return page.Bookmark, nil
	})
	if err != nil {
		return err
	}
	err = pages(func(bm string) (string, error) {
		var page wire.DevicePage
		if err := e.eval(ctx, &page, wire.FnListDevices, "", p, pageSize, bm); err != nil {
			return "", err
		}
		for _, d := range page.Items {
			e.devices[d.ID] = true
		}
		return page.Bookmark, nil
	})
	if err != nil {
		return err
	}
	return pages(func(bm string) (string, error) {
		var page wire.ReadingPage
		if err := e.eval(ctx, &page, wire.FnListReadings, p, "", s.From, s.To, pageSize, bm); err != nil {
			return "", err
		}
		for _, r := range page.Items {
			e.rec.Readings = append(e.rec.Readings, r)
			e.addTx(r.TxID)
			e.devices[r.DeviceID] = true
		}
		return page.Bookmark, nil
	})
}

// consents adds the patient's consents and every change of them; with
// grantees, only theirs.
func (e *exporter) consents(ctx context.Context, patient string, grantees map[string]bool) error {
	var list []wire.Consent
	if err := e.eval(ctx, &list, wire.FnListConsents, patient); err != nil {
		return err
	}
	for _, c := range list {
		if grantees != nil && !grantees[c.GranteeID] {
			continue
		}
		e.rec.Consents = append(e.rec.Consents, c)
		e.addTx(c.GrantedTx, c.RevokedTx)
		for _, h := range c.History {
			e.addTx(h.TxID)
		}
		e.addActor(c.GranteeID)
	}
	return nil
}

func (e *exporter) reading(ctx context.Context, s Scope) error {
	var p wire.Provenance
	if err := e.eval(ctx, &p, wire.FnGetProvenance, s.ReadingID); err != nil {
		return fmt.Errorf("%w: reading %s: %w", ErrScope, s.ReadingID, err)
	}
	e.rec.Readings = append(e.rec.Readings, p.Reading)
	e.addTx(p.Reading.TxID)
	e.devices[p.Device.ID] = true
	e.addActor(p.Reading.PatientID)
	grantees := map[string]bool{}
	for _, a := range p.Accesses {
		e.rec.Access = append(e.rec.Access, a)
		e.addTx(a.TxID, a.WithheldTx)
		e.addActor(a.ActorID)
		grantees[a.ActorID] = true
	}
	// Every consent of the patient for those who were released the
	// reading: the decisions are re-derived from all of them.
	if err := e.consents(ctx, p.Reading.PatientID, grantees); err != nil {
		return err
	}
	// The patient's erasure, if any, changes every later decision.
	filter, err := json.Marshal(wire.EventFilter{PatientID: p.Reading.PatientID, Type: wire.AuditPatientErased})
	if err != nil {
		return err
	}
	var page wire.AuditEventPage
	if err := e.eval(ctx, &page, wire.FnListEvents, string(filter), pageSize, ""); err != nil {
		return err
	}
	for _, ev := range page.Items {
		e.rec.Audit = append(e.rec.Audit, ev)
		e.addTx(ev.TxID)
	}
	return nil
}

// parties adds the devices' and actors' registrations, and the passkeys
// and relying parties of the actors.
func (e *exporter) parties(ctx context.Context) error {
	for _, id := range sortedKeys(e.devices) {
		var d wire.Device
		if err := e.eval(ctx, &d, wire.FnGetDevice, id); err != nil {
			return err
		}
		e.rec.Devices = append(e.rec.Devices, d)
		e.addTx(d.RegisteredTx, d.RevokedTx)
		e.addActor(d.OperatorID)
		e.addActor(d.PatientID)
	}
	for _, id := range sortedKeys(e.actors) {
		var a wire.Actor
		if err := e.eval(ctx, &a, wire.FnGetActor, id); err != nil {
			return err
		}
		e.rec.Actors = append(e.rec.Actors, a)
		e.addTx(a.RegisteredTx, a.RotatedTx, a.RevokedTx)
		var keys []wire.Passkey
		if err := e.eval(ctx, &keys, wire.FnListPasskeys, id); err != nil {
			return err
		}
		for _, k := range keys {
			e.addTx(k.RegisteredTx)
		}
		if len(keys) > 0 {
			e.orgs[a.Org] = true
		}
	}
	for _, org := range sortedKeys(e.orgs) {
		var rp wire.RelyingParty
		if err := e.eval(ctx, &rp, wire.FnGetRelyingParty, org); err != nil {
			return err
		}
		e.addTx(rp.SetTx)
	}
	return nil
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// inWindow reports whether an RFC 3339 time lies in the scope's window.
func inWindow(ts string, s Scope) bool {
	t, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil {
		return true
	}
	if f, err := time.Parse(time.RFC3339Nano, s.From); err == nil && t.Before(f) {
		return false
	}
	if to, err := time.Parse(time.RFC3339Nano, s.To); err == nil && t.After(to) {
		return false
	}
	return true
}
