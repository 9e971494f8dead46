package web

import (
	"errors"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/medprov/medprov/wire"
)

// Regulator pages: the audit trail of every state-changing transaction,
// filtered by patient, actor, type and day; the registry of actors and
// devices; and one reading's provenance, with the gateway's end-to-end
// verification of its evidence on request. Everything is read through the
// API as the signed-in regulator, so what a page shows is what the API
// answers a regulator.

func (h *handler) registerRegulator(r gin.IRoutes) {
	r.GET("/regulator", secure, h.regulator)
	r.GET("/regulator/readings", secure, h.regulatorLookup)
	r.GET("/regulator/readings/:id", secure, h.regulatorReading)
}

// Page sizes of the regulator page's tables.
const (
	auditPageSize    = 50
	registryPageSize = 50
)

// auditTypes are the event types the audit filter offers, in the order the
// ledger's lifecycle meets them.
var auditTypes = []string{
	wire.AuditRelyingPartySet,
	wire.AuditActorRegistered,
	wire.AuditPasskeyRegistered,
	wire.AuditActorRotated,
	wire.AuditActorRevoked,
	wire.AuditDeviceRegistered,
	wire.AuditDeviceRevoked,
	wire.AuditReadingsRecorded,
	wire.AuditConsentGranted,
	wire.AuditConsentRevoked,
	wire.AuditAccessGranted,
	wire.AuditAccessDenied,
	wire.AuditReadingsWithheld,
	wire.AuditPatientErased,
}

// actorRoles are the roles the registry's filter offers.
var actorRoles = []string{wire.RolePatient, wire.RoleOperator, wire.RoleResearcher, wire.RoleRegulator}

// auditFilter is the audit form as typed: From and To are dates
// (YYYY-MM-DD), whole days in UTC.
type auditFilter struct {
	PatientID, ActorID, Type, From, To string
}

// param is one hidden input: a value a form carries on unchanged.
type param struct{ Name, Value string }

// regulatorPage is the regulator page's data.
type regulatorPage struct {
	Filter auditFilter
	Types  []string
	// Error says why the filter was refused; the events are then not read.
	Error      string
	Events     []wire.AuditEvent
	NextEvents string // link to the next page of events, if any

	Role        string // the registry's role filter, "" for any
	Roles       []string
	Actors      []wire.Actor
	NextActors  string
	Devices     []wire.Device
	NextDevices string

	// AuditKeep and RoleKeep are what each filter form carries of the
	// other's state.
	AuditKeep, RoleKeep []param

	// state is the page's query, the base of its links.
	state url.Values
}

// regulatorParams are the query parameters of the regulator page: the
// audit filter and its bookmark, the registry's role filter and the
// bookmarks of actors and devices.
var regulatorParams = []string{"patientId", "actorId", "type", "from", "to", "bookmark", "role", "actors", "devices"}

// link is the page's address with key set to value (a bookmark) and
// section to show.
func (p *regulatorPage) link(key, value, section string) string {
	q := maps.Clone(p.state)
	q.Set(key, value)
	return "/regulator?" + q.Encode() + "#" + section
}

// keep returns the page's state but the names given, as hidden inputs.
func (p *regulatorPage) keep(except ...string) []param {
	var out []param
	for _, k := range regulatorParams {
		if v := p.state.Get(k); v != "" && !slices.Contains(except, k) {
			out = append(out, param{k, v})
		}
	}
	return out
}

func (h *handler) regulator(c *gin.Context) {
	ses, ok := h.session(c, wire.RoleRegulator)
	if !ok {
		return
	}
	p := regulatorPage{Types: auditTypes, Roles: actorRoles, state: url.Values{}}
	for _, k := range regulatorParams {
		if v := strings.TrimSpace(c.Query(k)); v != "" {
			p.state.Set(k, v)
		}
	}
	st := p.state.Get
	p.Filter = auditFilter{PatientID: st("patientId"), ActorID: st("actorId"), Type: st("type"), From: st("from"), To: st("to")}
	p.Role = st("role")
	p.AuditKeep = p.keep("patientId", "actorId", "type", "from", "to", "bookmark")
	p.RoleKeep = p.keep("role", "actors")

	status := http.StatusOK
	q, problem := p.Filter.query()
	if problem == "" {
		q.Set("pageSize", strconv.Itoa(auditPageSize))
		if bm := st("bookmark"); bm != "" {
			q.Set("bookmark", bm)
		}
		var events wire.AuditEventPage
		err := h.get(c, "/v1/audit/events?"+q.Encode(), &events)
		var ae *APIError
		switch {
		case errors.As(err, &ae) && ae.Status == http.StatusBadRequest:
			problem = sentence(ae.Message)
		case err != nil:
			h.fail(c, err)
			return
		default:
			p.Events = events.Items
			// A short page is the last one: the ledger fills every page
			// but the last.
			if events.Bookmark != "" && len(events.Items) == auditPageSize {
				p.NextEvents = p.link("bookmark", events.Bookmark, "events")
			}
		}
	}
	if problem != "" {
		p.Error, status = problem, http.StatusBadRequest
	}

	aq := url.Values{"pageSize": {strconv.Itoa(registryPageSize)}}
	if p.Role != "" {
		aq.Set("role", p.Role)
	}
	if bm := st("actors"); bm != "" {
		aq.Set("bookmark", bm)
	}
	var actors wire.ActorPage
	if err := h.get(c, "/v1/actors?"+aq.Encode(), &actors); err != nil {
		h.fail(c, err)
		return
	}
	p.Actors = actors.Items
	// Registry pages may be short and still not the last: only an empty
	// bookmark ends the list.
	if actors.Bookmark != "" {
		p.NextActors = p.link("actors", actors.Bookmark, "actors")
	}

	dq := url.Values{"pageSize": {strconv.Itoa(registryPageSize)}}
	if bm := st("devices"); bm != "" {
		dq.Set("bookmark", bm)
	}
	var devices wire.DevicePage
	if err := h.get(c, "/v1/devices?"+dq.Encode(), &devices); err != nil {
		h.fail(c, err)
		return
	}
	p.Devices = devices.Items
	if devices.Bookmark != "" {
		p.NextDevices = p.link("devices", devices.Bookmark, "devices")
	}
	h.render(c, status, "regulator", h.data("Audit", ses, p))
}

// query is the filter as the API's query: the days become RFC 3339 bounds,
// the start and the end of the day in UTC, both inclusive. problem is set,
// as a sentence for people, when the filter cannot be asked for.
func (f auditFilter) query() (q url.Values, problem string) {
	q = url.Values{}
	if f.PatientID != "" {
		q.Set("patientId", f.PatientID)
	}
	if f.ActorID != "" {
		q.Set("actorId", f.ActorID)
	}
	if f.Type != "" {
		if !slices.Contains(auditTypes, f.Type) {
			return nil, "The event type “" + f.Type + "” is not one the ledger records. Choose one from the list."
		}
		q.Set("type", f.Type)
	}
	var from, to time.Time
	for _, b := range []struct {
		name, day string
		at        *time.Time
	}{{"From", f.From, &from}, {"Until", f.To, &to}} {
		if b.day == "" {
			continue
		}
		t, err := time.Parse(time.DateOnly, b.day)
		if err != nil {
			return nil, "The " + b.name + " date “" + b.day + "” is not a date. Enter it as year-month-day, for example 2026-01-31."
		}
		*b.at = t
	}
	if !from.IsZero() && !to.IsZero() && to.Before(from) {
		return nil, "The Until date is before the From date."
	}
	if !from.IsZero() {
		q.Set("from", from.Format(time.RFC3339Nano))
	}
	if !to.IsZero() {
		q.Set("to", to.Add(24*time.Hour-time.Nanosecond).Format(time.RFC3339Nano))
	}
	return q, ""
}

// regulatorLookup sends the reading lookup form (?readingId=) to the
// reading's page.
func (h *handler) regulatorLookup(c *gin.Context) {
	id := strings.TrimSpace(c.Query("readingId"))
	if id == "" {
		c.Redirect(http.StatusSeeOther, "/regulator#lookup")
		return
	}
	c.Redirect(http.StatusSeeOther, "/regulator/readings/"+url.PathEscape(id))
}

// checkLabels name the gateway's verification checks for people.
var checkLabels = map[string]string{
	"transaction_committed": "Recording transaction is committed on the ledger",
	"chain_integrity":       "Ledger hash chain is intact",
	"device_signature":      "Device signature over the data hash is valid",
	"ciphertext_cid":        "Encrypted reading is found by its CID",
	"ciphertext_hash":       "Encrypted reading matches its hash and size",
	"plaintext_hash":        "Decrypted reading matches the signed data hash",
	"payload_metadata":      "Signed reading matches the ledger record",
}

// checkRow is a verification check with its label.
type checkRow struct {
	wire.Check
	Label string
}

// accessRow is an access event that released the reading, and why the
// releasing gateway withheld it, if it did.
type accessRow struct {
	wire.AccessEvent
	WithheldReason string
}

// provenancePage is the reading page's data.
type provenancePage struct {
	ID       string
	NotFound bool
	// Error says why the reading could not be shown (a malformed ID).
	Error     string
	Report    *wire.ProvenanceReport
	Accesses  []accessRow
	VerifyURL string
	// Verification is set when ?verify=1 asked for it and it ran;
	// VerifyError says why it could not run.
	Verification *wire.Verification
	VerifyError  string
	Checks       []checkRow
	Failed       int
	// Chain is the chain_integrity check, nil when the ledger does not
	// replay its own chain (Fabric peers validate blocks themselves).
	Chain *checkRow
}

func (h *handler) regulatorReading(c *gin.Context) {
	ses, ok := h.session(c, wire.RoleRegulator)
	if !ok {
		return
	}
	id := c.Param("id")
	p := provenancePage{ID: id, VerifyURL: "/regulator/readings/" + url.PathEscape(id) + "?verify=1#verification"}
	var rep wire.ProvenanceReport
	err := h.get(c, "/v1/readings/"+url.PathEscape(id)+"/provenance", &rep)
	var ae *APIError
	switch {
	case errors.As(err, &ae) && ae.Status == http.StatusNotFound:
		p.NotFound = true
		h.render(c, http.StatusNotFound, "provenance", h.data("Reading not found", ses, p))
		return
	case errors.As(err, &ae) && ae.Status == http.StatusBadRequest:
		p.Error = sentence(ae.Message)
		h.render(c, http.StatusBadRequest, "provenance", h.data("Not a reading ID", ses, p))
		return
	case err != nil:
		h.fail(c, err)
		return
	}
	p.Report = &rep
	for _, a := range rep.Accesses {
		row := accessRow{AccessEvent: a}
		for _, w := range a.Withheld {
			if w.ReadingID == rep.Reading.ID {
				row.WithheldReason = w.Reason
			}
		}
		p.Accesses = append(p.Accesses, row)
	}
	status := http.StatusOK
	if c.Query("verify") == "1" {
		var v wire.Verification
		err := h.get(c, "/v1/audit/verify/"+url.PathEscape(id), &v)
		switch {
		case errors.As(err, &ae):
			p.VerifyError = sentence(ae.Message)
			status = ae.Status
			if status < 400 {
				status = http.StatusBadGateway
			}
		case err != nil:
			h.fail(c, err)
			return
		default:
			p.Verification = &v
			for _, ch := range v.Checks {
				row := checkRow{Check: ch, Label: checkLabels[ch.Name]}
				if row.Label == "" {
					row.Label = label(ch.Name)
				}
				if !ch.OK {
					p.Failed++
				}
				if ch.Name == "chain_integrity" {
					p.Chain = &row
				}
				p.Checks = append(p.Checks, row)
			}
		}
	}
	h.render(c, status, "provenance", h.data("Reading "+id, ses, p))
}
