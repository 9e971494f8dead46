package gateway

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/medprov/medprov/envelope"
	"github.com/medprov/medprov/fhir"
	"github.com/medprov/medprov/fhir/readaccess"
	"github.com/medprov/medprov/payload"
	"github.com/medprov/medprov/wire"
)

// FHIR R4 (package fhir) is another view of the data v1 serves, never a
// side door. Its routes sit behind v1's read authentication (signedGET: a
// signed GET over the FHIR request's own method and path, or the portal
// session) and read through the functions v1's handlers read through,
// which hold the authorisation: patientConsents, patientAccessLog,
// readingProvenance, devicePage, and for Observations the ledger's
// decision (RequestAccessByRead) followed by releaseGranted. Errors are
// v1's (fail), with v1's statuses, rendered as OperationOutcome
// (fhirOutcomes). Devices may post readings signed as FHIR Observations
// (fhirCreate), which take v1's reading path. The routes are not API
// routes and not in openapi.yaml.

// maxTargets bounds the targets of one Provenance search.
const maxTargets = 100

// mountFHIR adds the FHIR routes to r.
func (s *Server) mountFHIR(r *gin.Engine) {
	base := fhir.BasePath
	r.GET(base+"/:type", s.fhirOutcomes, s.fhirAuth, s.fhirSearch)
	r.GET(base+"/:type/:id", s.fhirOutcomes, s.fhirAuth, s.fhirRead)
	r.GET(base+"/:type/:id/*rest", s.fhirOutcomes, fhirNoSuchPath)
	r.POST(base+"/:type", s.fhirOutcomes, s.fhirCreate)
	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		if m != http.MethodPost {
			r.Handle(m, base+"/:type", s.fhirOutcomes, fhirReadOnly)
		}
		r.Handle(m, base+"/:type/:id", s.fhirOutcomes, fhirReadOnly)
		r.Handle(m, base+"/:type/:id/*rest", s.fhirOutcomes, fhirReadOnly)
	}
}

// fhirNoSuchPath answers paths below a resource (_history, operations):
// none is served.
func fhirNoSuchPath(c *gin.Context) {
	fail(c, errf(wire.CodeNotFound, "this FHIR server serves no such path (see metadata)"))
}

func fhirReadOnly(c *gin.Context) {
	fail(c, errf(wire.CodeMethodNotAllowed, "this FHIR server reads and searches, and devices create Observations; nothing else (see metadata)"))
}

// fhirCreate answers POST /fhir/R4/{type}: a device's signed FHIR
// Observation (fhir.Capability's create) goes the way of POST
// /v1/readings (ingestOne), a FHIR Observation being the one form it
// takes. The answer is an OperationOutcome naming the reading and its
// status: 202 queued; 201 recorded (?wait=commit), with Location; 200
// for a reading already submitted. Other types cannot be created.
func (s *Server) fhirCreate(c *gin.Context) {
	if c.Param("type") != "Observation" {
		fhirReadOnly(c)
		return
	}
	n := s.cfg.Limits.MaxReadingBytes
	if c.Request.ContentLength > n {
		fail(c, errf(wire.CodeTooLarge, "request body exceeds %d bytes", n))
		return
	}
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, n)
	r, err := s.ingestOne(c, payload.FormFHIR)
	if err != nil {
		fail(c, err)
		return
	}
	if r.status == http.StatusCreated {
		c.Header("Location", s.fhirBase(c)+"/Observation/"+r.DataHash)
	}
	s.fhirJSON(c, r.status, fhir.IngestOutcome(r.ReadingReceipt))
}

// fhirAuth authenticates every FHIR request but metadata as signedGET
// does for v1's reads.
func (s *Server) fhirAuth(c *gin.Context) {
	if c.Param("type") == "metadata" && c.Param("id") == "" {
		c.Next()
		return
	}
	s.signedGET(c)
}

// fhirSearch answers GET /fhir/R4/{type}: metadata, or a search.
func (s *Server) fhirSearch(c *gin.Context) {
	switch c.Param("type") {
	case "metadata":
		s.fhirJSON(c, http.StatusOK, fhir.Capability(s.fhirBase(c)))
	case "Consent":
		s.fhirConsents(c)
	case "AuditEvent":
		s.fhirAuditEvents(c)
	case "Provenance":
		s.fhirProvenances(c)
	case "Device":
		s.fhirDevices(c)
	case "Observation":
		s.fhirObservations(c)
	default:
		fail(c, errf(wire.CodeNotFound, "this FHIR server serves no such resource type (see metadata)"))
	}
}

// fhirRead answers GET /fhir/R4/{type}/{id}: Observations only.
func (s *Server) fhirRead(c *gin.Context) {
	if c.Param("type") != "Observation" {
		fail(c, errf(wire.CodeNotFound, "this FHIR server reads Observations by id; search the other types (see metadata)"))
		return
	}
	s.fhirObservations(c)
}

// fhirConsents answers Consent?patient=: the patient's consents.
func (s *Server) fhirConsents(c *gin.Context) {
	q, pid, err := patientSearch(c)
	if err != nil {
		fail(c, err)
		return
	}
	cs, err := s.patientConsents(c, actorOf(c), pid)
	if err != nil {
		fail(c, err)
		return
	}
	lo, hi := q.Slice(len(cs))
	entries := make([]fhir.Entry, 0, hi-lo)
	for _, cn := range cs[lo:hi] {
		r := fhir.Consent(cn)
		entries = append(entries, fhir.Entry{Resource: r, Type: "Consent", ID: *r.Id})
	}
	s.fhirPage(c, "Consent", q, len(cs), entries)
}

// fhirAuditEvents answers AuditEvent?patient=[&date=][&agent=]: every
// access decision on the patient's data and every change of its consents,
// oldest first, recorded within date, by agent.
func (s *Server) fhirAuditEvents(c *gin.Context) {
	q, pid, err := patientSearch(c, fhir.ParamDate, fhir.ParamAgent)
	if err != nil {
		fail(c, err)
		return
	}
	fromS, toS, err := q.Window()
	if err != nil {
		fail(c, err)
		return
	}
	from, _ := time.Parse(time.RFC3339Nano, fromS) // Window returns RFC 3339
	to, _ := time.Parse(time.RFC3339Nano, toS)
	agent := q.Query.Get(fhir.ParamAgent)
	if i := strings.LastIndexByte(agent, '/'); i >= 0 {
		agent = agent[i+1:]
	}
	a := actorOf(c)
	var all []fhir.Audited
	for bm := ""; ; {
		page, err := s.patientAccessLog(c, a, pid, "1000", bm)
		if err != nil {
			fail(c, err)
			return
		}
		for _, ev := range page.Items {
			all = append(all, fhir.AccessAuditEvent(ev))
		}
		if bm = page.Bookmark; bm == "" {
			break
		}
		if len(all) > fhir.MaxMatches {
			fail(c, errTooMany)
			return
		}
	}
	cs, err := s.patientConsents(c, a, pid)
	if err != nil {
		fail(c, err)
		return
	}
	for _, cn := range cs {
		all = append(all, fhir.ConsentAuditEvents(cn)...)
	}
	type match struct {
		at time.Time
		e  fhir.Audited
	}
	var matched []match
	for _, e := range all {
		at, err := time.Parse(time.RFC3339Nano, e.Recorded)
		if err != nil || at.Before(from) || at.After(to) || (agent != "" && e.ActorID != agent) {
			continue
		}
		matched = append(matched, match{at, e})
	}
	if len(matched) > fhir.MaxMatches {
		fail(c, errTooMany)
		return
	}
	slices.SortStableFunc(matched, func(x, y match) int { return x.at.Compare(y.at) })
	lo, hi := q.Slice(len(matched))
	entries := make([]fhir.Entry, 0, hi-lo)
	for _, m := range matched[lo:hi] {
		entries = append(entries, fhir.Entry{Resource: m.e.Event, Type: "AuditEvent", ID: *m.e.Event.Id})
	}
	s.fhirPage(c, "AuditEvent", q, len(matched), entries)
}

// errTooMany refuses a search with more matches than fhir.MaxMatches.
var errTooMany = badRequest("the search matches more than %d resources: narrow it (date, agent)", fhir.MaxMatches)

// fhirProvenances answers Provenance?target=Observation/{id}[,...] and
// Provenance?target:Observation.patient={id}: readings' provenance, read
// as v1 reads it (readingProvenance). A target the caller may not read is
// left out, as one that does not exist, so a search tells nothing of
// readings the caller may not see.
func (s *Server) fhirProvenances(c *gin.Context) {
	q, err := fhir.ParseSearch(c.Request.URL.RawQuery, fhir.ParamTarget, fhir.ParamTargetPatient)
	if err != nil {
		fail(c, err)
		return
	}
	a := actorOf(c)
	var ids []string // reading ids, in the order asked
	switch {
	case q.Query.Has(fhir.ParamTarget) == q.Query.Has(fhir.ParamTargetPatient):
		fail(c, badRequest("give target=Observation/<id> or %s=<patient id>", fhir.ParamTargetPatient))
		return
	case q.Query.Has(fhir.ParamTarget):
		targets := strings.Split(q.Query.Get(fhir.ParamTarget), ",")
		if len(targets) > maxTargets {
			fail(c, badRequest("target names at most %d Observations", maxTargets))
			return
		}
		seen := map[string]bool{}
		for _, t := range targets {
			hash := fhir.ID(strings.TrimSpace(t), "Observation")
			if !wire.ValidHash(hash) {
				fail(c, badRequest("target must be Observation/<id>, the id being 64 lower-case hex digits"))
				return
			}
			if seen[hash] {
				continue
			}
			seen[hash] = true
			var r wire.Reading
			err := s.chain.evaluate(c, &r, wire.FnGetReadingByHash, hash)
			if err != nil && toAPIError(err).Status() == http.StatusNotFound {
				continue
			}
			if err != nil {
				fail(c, err)
				return
			}
			ids = append(ids, r.ID)
		}
	default:
		pid := fhir.ID(q.Query.Get(fhir.ParamTargetPatient), "Patient")
		if ids, err = s.patientReadingIDs(c, a, pid); err != nil {
			fail(c, err)
			return
		}
	}
	var reports []*wire.ProvenanceReport
	if q.Query.Has(fhir.ParamTarget) {
		for _, id := range ids {
			p, err := s.readingProvenance(c, a, id)
			if errors.Is(err, errNoReading) {
				continue
			}
			if err != nil {
				fail(c, err)
				return
			}
			reports = append(reports, p)
		}
		ids = nil
	}
	total := len(reports) + len(ids)
	lo, hi := q.Slice(total)
	if ids != nil { // a patient's readings: read the page's provenance only
		for _, id := range ids[lo:hi] {
			p, err := s.readingProvenance(c, a, id)
			if err != nil {
				fail(c, err)
				return
			}
			reports = append(reports, p)
		}
		lo, hi = 0, len(reports)
	}
	entries := make([]fhir.Entry, 0, hi-lo)
	for _, p := range reports[lo:hi] {
		r := fhir.Provenance(*p)
		entries = append(entries, fhir.Entry{Resource: r, Type: "Provenance", ID: *r.Id})
	}
	s.fhirPage(c, "Provenance", q, total, entries)
}

// patientReadingIDs returns the ids of patient pid's readings to a, who
// must be the patient or a regulator: those who may read the provenance
// of each of them (readingProvenance), which is what they are listed
// for.
func (s *Server) patientReadingIDs(ctx context.Context, a *actorKey, pid string) ([]string, error) {
	if !mayReadPatient(a, pid) {
		return nil, errf(wire.CodeForbidden, "only the patient and regulators may read the provenance of a patient's readings")
	}
	var ids []string
	for bm := ""; ; {
		var page wire.ReadingPage
		if err := s.chain.evaluate(ctx, &page, wire.FnListReadings, pid, "", "", "", "1000", bm); err != nil {
			return nil, err
		}
		for _, r := range page.Items {
			ids = append(ids, r.ID)
		}
		if bm = page.Bookmark; bm == "" {
			return ids, nil
		}
		if len(ids) > fhir.MaxMatches {
			return nil, errTooMany
		}
	}
}

// fhirDevices answers Device?patient=: the devices bound to the patient
// that the caller may list (devicePage).
func (s *Server) fhirDevices(c *gin.Context) {
	q, pid, err := patientSearch(c)
	if err != nil {
		fail(c, err)
		return
	}
	var all []wire.Device
	for bm := ""; ; {
		page, err := s.devicePage(c, actorOf(c), "", pid, "1000", bm)
		if err != nil {
			fail(c, err)
			return
		}
		all = append(all, page.Items...)
		if bm = page.Bookmark; bm == "" {
			break
		}
		if len(all) > fhir.MaxMatches {
			fail(c, errTooMany)
			return
		}
	}
	lo, hi := q.Slice(len(all))
	entries := make([]fhir.Entry, 0, hi-lo)
	for _, d := range all[lo:hi] {
		r := fhir.Device(d)
		entries = append(entries, fhir.Entry{Resource: r, Type: "Device", ID: *r.Id})
	}
	s.fhirPage(c, "Device", q, len(all), entries)
}

// fhirObservations answers an Observation read or search
// (readaccess.Parse) as v1 answers POST /v1/access: the signed read is the
// access request, which the ledger decides and commits (granted or
// denied) before anything is released; a denial answers 403 with the
// access id; a grant releases its readings through releaseGranted.
// A session cannot sign, so it cannot read Observations.
func (s *Server) fhirObservations(c *gin.Context) {
	raw := c.GetHeader(wire.SignatureHeader)
	if raw == "" {
		fail(c, errf(wire.CodeUnauthenticated, "reading Observations releases data: sign the read (%s), "+
			"which the ledger verifies as the access request; a session cannot sign", wire.SignatureHeader))
		return
	}
	rd, err := readaccess.Parse(c.Request.URL.RequestURI())
	if err != nil {
		fail(c, err)
		return
	}
	envJSON, err := base64.StdEncoding.DecodeString(raw) // signedGET verified it
	if err != nil {
		fail(c, errBadSignature)
		return
	}
	env, err := envelope.ParseSigned(envJSON)
	if err != nil {
		fail(c, errBadSignature)
		return
	}
	arg, err := json.Marshal(env)
	if err != nil {
		fail(c, err)
		return
	}
	var ev wire.AccessEvent
	cm, err := s.chain.submit(c, &ev, false, wire.FnRequestAccessByRead, string(arg))
	if err != nil {
		// A reading that does not exist and another patient's reading
		// (a patient may read its own only) look alike, as in v1.
		code := toAPIError(err).Code
		if rd.One() && (code == wire.CodeNotFound || code == wire.CodeForbidden && actorOf(c).Role == wire.RolePatient) {
			if rd.Search {
				s.fhirSearchset(c, ptrTo(0), nil, nil)
				return
			}
			fail(c, errNoReading)
			return
		}
		fail(c, err)
		return
	}
	s.m.accesses.WithLabelValues(ev.Decision).Inc()
	if ev.Decision != wire.DecisionGranted && rd.ReadingID != "" {
		// Reading ids can be guessed: a denied search by identifier
		// answers as one for a reading that does not exist (the denial is
		// committed all the same), so it tells nothing of which exist.
		s.fhirSearchset(c, ptrTo(0), nil, nil)
		return
	}
	if ev.Decision != wire.DecisionGranted {
		writeDenial(c, &ev, cm.TxID)
		return
	}
	out, held, err := s.releaseGranted(c, &ev)
	if err != nil {
		fail(c, err)
		return
	}
	obs := make([]fhir.Entry, 0, len(out)+1)
	for _, rr := range out {
		o, err := fhir.Observation(rr, ev.PatientID)
		if err != nil {
			fail(c, err)
			return
		}
		obs = append(obs, fhir.Entry{Resource: o, Type: "Observation", ID: rr.DataHash})
	}
	if !rd.Search {
		if len(obs) == 1 {
			c.Header("Cache-Control", "no-store")
			s.fhirJSON(c, http.StatusOK, obs[0].Resource)
			return
		}
		fail(c, withheldError(held))
		return
	}
	if len(held) > 0 {
		obs = append(obs, fhir.Entry{Resource: fhir.WithheldOutcome(held), Mode: fhir.ModeOutcome})
	}
	base := s.fhirBase(c)
	links := []fhir.BundleLink{fhir.Link("self", base+strings.TrimPrefix(c.Request.URL.RequestURI(), fhir.BasePath))}
	if ev.NextCursor != "" {
		next := c.Request.URL.Query()
		next.Set(readaccess.ParamCursor, ev.NextCursor)
		links = append(links, fhir.Link("next", base+"/Observation?"+next.Encode()))
	}
	var total *int
	if ev.NextCursor == "" && rd.Cursor == "" { // the grant holds every match
		total = ptrTo(ev.Count)
	} else if n, ok := s.countMatches(c, &ev); ok {
		total = &n
	}
	c.Header("Cache-Control", "no-store")
	s.fhirSearchset(c, total, links, obs)
}

// countMatches counts the readings a paged grant's request matches (the
// patient's readings of its types measured in its window), at most
// fhir.MaxMatches; false when there are more, or the ledger cannot say.
func (s *Server) countMatches(ctx context.Context, ev *wire.AccessEvent) (int, bool) {
	n := 0
	for _, typ := range ev.DataTypes {
		for bm := ""; ; {
			var page wire.ReadingPage
			if err := s.chain.evaluate(ctx, &page, wire.FnListReadings, ev.PatientID, typ, ev.From, ev.To, "1000", bm); err != nil {
				return 0, false
			}
			n += len(page.Items)
			if n > fhir.MaxMatches {
				return 0, false
			}
			if bm = page.Bookmark; bm == "" {
				break
			}
		}
	}
	return n, true
}

// withheldError answers a read of one Observation whose reading was
// granted but withheld (recorded on the access event): erased is 403 as
// in v1; the others say the stored data could not be released.
func withheldError(held []wire.Withheld) error {
	reason := wire.WithheldUnavailable
	if len(held) > 0 {
		reason = held[0].Reason
	}
	switch reason {
	case wire.WithheldErased:
		return errf(wire.CodeForbidden, "the patient erased their data: nothing more is stored for the patient")
	case wire.WithheldUnavailable:
		return &apiError{Code: wire.CodeUnavailable, Message: "the reading could not be released, retry later", RetryAfter: 2 * time.Second}
	}
	return errf(wire.CodeInternal, "the reading was granted but withheld (%s): its stored data does not match the ledger", reason)
}

// patientSearch reads a search by patient (Patient/<id> or <id>), with
// the other parameters allowed.
func patientSearch(c *gin.Context, allowed ...string) (*fhir.Search, string, error) {
	q, err := fhir.ParseSearch(c.Request.URL.RawQuery, append([]string{fhir.ParamPatient}, allowed...)...)
	if err != nil {
		return nil, "", err
	}
	pid, err := q.Required(fhir.ParamPatient)
	if err != nil {
		return nil, "", err
	}
	return q, fhir.ID(pid, "Patient"), nil
}

// fhirPage answers one page of a search of typ with total matches.
func (s *Server) fhirPage(c *gin.Context, typ string, q *fhir.Search, total int, entries []fhir.Entry) {
	base := s.fhirBase(c)
	b, err := fhir.Searchset(base, &total, fhir.PageLinks(base, typ, q.Query, total, q.Offset, q.Count), entries)
	if err != nil {
		fail(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	s.fhirJSON(c, http.StatusOK, b)
}

// fhirSearchset answers a searchset of entries with links.
func (s *Server) fhirSearchset(c *gin.Context, total *int, links []fhir.BundleLink, entries []fhir.Entry) {
	b, err := fhir.Searchset(s.fhirBase(c), total, links, entries)
	if err != nil {
		fail(c, err)
		return
	}
	s.fhirJSON(c, http.StatusOK, b)
}

// fhirJSON answers a FHIR resource.
func (s *Server) fhirJSON(c *gin.Context, status int, resource any) {
	b, err := fhir.Marshal(resource)
	if err != nil {
		fail(c, err)
		return
	}
	c.Data(status, fhir.MediaType, b)
}

// fhirBase is the absolute FHIR base URL: Config.PublicURL's, else the
// request's host.
func (s *Server) fhirBase(c *gin.Context) string {
	if s.cfg.PublicURL != "" {
		return s.cfg.PublicURL + fhir.BasePath
	}
	scheme := "http"
	if c.Request.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + c.Request.Host + fhir.BasePath
}

func ptrTo[T any](v T) *T { return &v }

// fhirOutcomes renders every error answer of a FHIR route, whoever wrote
// it (signedGET, a handler, fail), as an OperationOutcome with the same
// status, v1's code and message (and the access id of a denial).
func (s *Server) fhirOutcomes(c *gin.Context) {
	w := &outcomeWriter{ResponseWriter: c.Writer}
	c.Writer = w
	defer func() { c.Writer = w.ResponseWriter }()
	c.Next()
	if !w.held {
		return
	}
	var body struct {
		Error    wire.ErrorBody `json:"error"`
		AccessID string         `json:"accessId"`
	}
	if json.Unmarshal(w.buf.Bytes(), &body) != nil || body.Error.Code == "" {
		body.Error = wire.ErrorBody{Code: wire.CodeInternal, Message: http.StatusText(w.status)}
	}
	b, err := fhir.Marshal(fhir.Outcome(body.Error.Code, body.Error.Message, body.AccessID))
	if err != nil { // cannot happen: an OperationOutcome of strings
		b = w.buf.Bytes()
	}
	h := w.ResponseWriter.Header()
	h.Set("Content-Type", fhir.MediaType)
	h.Del("Content-Length")
	w.ResponseWriter.WriteHeader(w.status)
	if _, err := w.ResponseWriter.Write(b); err != nil {
		s.log.Debug("writing an OperationOutcome failed", "requestId", c.GetString("requestID"), "errKind", errKind(err))
	}
}

// outcomeWriter holds back an error answer (status >= 400) so that
// fhirOutcomes can rewrite it; other answers pass through.
type outcomeWriter struct {
	gin.ResponseWriter
	status int
	held   bool
	buf    bytes.Buffer
}

func (w *outcomeWriter) WriteHeader(code int) {
	if code >= http.StatusBadRequest && !w.ResponseWriter.Written() {
		w.status, w.held = code, true
		return
	}
	if !w.held {
		w.ResponseWriter.WriteHeader(code)
	}
}

func (w *outcomeWriter) WriteHeaderNow() {
	if !w.held {
		w.ResponseWriter.WriteHeaderNow()
	}
}

func (w *outcomeWriter) Write(b []byte) (int, error) {
	if w.held {
		return w.buf.Write(b)
	}
	return w.ResponseWriter.Write(b)
}

func (w *outcomeWriter) WriteString(s string) (int, error) {
	if w.held {
		return w.buf.WriteString(s)
	}
	return w.ResponseWriter.WriteString(s)
}

func (w *outcomeWriter) Status() int {
	if w.held {
		return w.status
	}
	return w.ResponseWriter.Status()
}

func (w *outcomeWriter) Written() bool { return w.held || w.ResponseWriter.Written() }
