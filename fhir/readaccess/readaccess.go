// Package readaccess turns a signed FHIR Observation read into the access
// request it stands for.
//
// A FHIR client reads readings with a signed GET: an http.get action whose
// path is the read, signed by the actor. That signature is the actor's own
// statement of exactly what it asks for, so the ledger takes it as the
// access request: Derive (Parse, which reads the path, then
// Read.Request) derives the access.request that the chaincode decides and
// commits, granted or denied, before the gateway releases anything,
// exactly as for a v1 access.request. The gateway (to check a read before
// it reaches the ledger, and to answer it), the chaincode (to decide it)
// and an offline auditor (to re-derive the decision) all read the same
// signed bytes with it. It is deterministic: no clock, no I/O, no state.
//
// The reads it accepts, under BasePath:
//
//	GET /fhir/R4/Observation/{id}?purpose=P
//	GET /fhir/R4/Observation?_id={id}&purpose=P
//	GET /fhir/R4/Observation?identifier=[urn:medprov:reading|]{readingId}&purpose=P
//	GET /fhir/R4/Observation?patient=[Patient/]{patientId}&code={codes}&purpose=P
//	    [&date=ge{time}][&date=le{time}][&_count=N][&_cursor=C]
//
// {id} is a reading's dataHash (64 lower-case hex digits), the id of its
// Observation. code is a comma-separated list of LOINC codes
// (http://loinc.org|8867-4, or the bare code) and medprov reading types
// (urn:medprov:reading-type|ecg); each names one data type. date takes
// ge and le bounds (or none: one day, or one instant), as RFC 3339 times
// or YYYY-MM-DD dates; without them the window is unbounded
// (2000-01-01T00:00:00Z to 9999-12-31T23:59:59Z), which a consent's window
// never covers. purpose is the purpose of use the patient's consent must
// name (a patient reading its own data may give any). _count caps the
// readings released (wire.MaxAccessLimit at most) and _cursor continues a
// previous grant (the next link of its Bundle). _format may be given as
// json. Any other parameter, or a parameter given twice (date: two
// bounds), is refused.
package readaccess

import (
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/medprov/medprov/fhir/vocab"
	"github.com/medprov/medprov/wire"
)

// BasePath is the FHIR base of the gateway; ObservationPath the
// Observation type under it.
const (
	BasePath        = "/fhir/R4"
	ObservationPath = BasePath + "/Observation"
)

// Parameters of an Observation read.
const (
	ParamPatient    = "patient"
	ParamCode       = "code"
	ParamDate       = "date"
	ParamPurpose    = "purpose"
	ParamID         = "_id"
	ParamIdentifier = "identifier"
	ParamCount      = "_count"
	ParamCursor     = "_cursor"
	ParamFormat     = "_format"
)

// Unbounded window ends: an Observation search without a date bound asks
// for everything measured in this window.
const (
	OpenFrom = "2000-01-01T00:00:00Z"
	OpenTo   = "9999-12-31T23:59:59Z"
)

// maxCursor bounds a _cursor (the ledger's bookmarks are far shorter).
const maxCursor = 1024

// Read is what a FHIR Observation read asks for.
type Read struct {
	// Search is true for a search (answered with a Bundle), false for a
	// read of Observation/{id} (answered with the Observation).
	Search bool
	// ID (a dataHash) or ReadingID names the one reading asked for; both
	// are empty for a search by patient.
	ID        string
	ReadingID string
	// PatientID, DataTypes, From and To (RFC 3339, inclusive) select the
	// readings of a search by patient.
	PatientID string
	DataTypes []string
	From, To  string
	// Purpose is the purpose of use.
	Purpose string
	// Limit caps the readings released (0: the ledger's default); Cursor
	// continues a previous grant.
	Limit  int
	Cursor string
}

// One reports whether the read names one reading (by id or identifier).
func (r *Read) One() bool { return r.ID != "" || r.ReadingID != "" }

// Request returns the access request the read stands for, made under
// header h (the signed http.get action's: actor, issuedAt, nonce). For a
// read of one reading, reading is that reading as the ledger records it:
// the request is for its patient and type, measured at its measuredAt.
func (r *Read) Request(h wire.ActionHeader, reading *wire.Reading) wire.AccessRequestAction {
	p := wire.AccessRequestAction{ActionHeader: h, Purpose: r.Purpose}
	if reading != nil {
		p.PatientID, p.DataTypes = reading.PatientID, []string{reading.Type}
		p.From, p.To = reading.MeasuredAt, reading.MeasuredAt
		return p
	}
	p.PatientID, p.DataTypes, p.From, p.To = r.PatientID, append([]string(nil), r.DataTypes...), r.From, r.To
	p.Cursor, p.Limit = r.Cursor, r.Limit
	return p
}

// Derive returns the access request a signed read stands for: g is the
// signed http.get action. For a read of one reading, find returns that
// reading by its dataHash (Observation id) or reading id, whichever the
// read names, or nil when there is none; Derive returns it too. Refusals
// are *wire.Error: CodeInvalid for a read that is not a GET or not one
// Parse accepts, CodeNotFound for a path that is no Observation read and
// for an unknown reading. The chaincode decides what Derive returns; an
// auditor replaying the ledger derives the same request with the
// readings it replayed.
func Derive(g wire.HTTPGetAction, find func(dataHash, readingID string) (*wire.Reading, error)) (wire.AccessRequestAction, *wire.Reading, error) {
	if g.Method != http.MethodGet {
		return wire.AccessRequestAction{}, nil, invalid("a read is signed for method GET")
	}
	rd, err := Parse(g.Path)
	if err != nil {
		return wire.AccessRequestAction{}, nil, err
	}
	var one *wire.Reading
	if rd.One() {
		if one, err = find(rd.ID, rd.ReadingID); err != nil {
			return wire.AccessRequestAction{}, nil, err
		}
		if one == nil {
			return wire.AccessRequestAction{}, nil, wire.Errorf(wire.CodeNotFound, "reading not found")
		}
	}
	return rd.Request(g.ActionHeader, one), one, nil
}

func invalid(format string, args ...any) error { return wire.Errorf(wire.CodeInvalid, format, args...) }

// Parse reads a signed FHIR Observation read: pathAndQuery is the path and
// query exactly as signed. Anything else is a *wire.Error: CodeNotFound
// for a path that is not an Observation read, CodeInvalid for a read it
// refuses.
func Parse(pathAndQuery string) (*Read, error) {
	u, err := url.Parse(pathAndQuery)
	if err != nil || u.Scheme != "" || u.Host != "" || u.Opaque != "" || u.User != nil || u.Fragment != "" || u.RawPath != "" {
		return nil, invalid("the path must be an absolute path and query, without escapes in the path")
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return nil, invalid("the query is malformed")
	}
	r := &Read{}
	allowed := []string{ParamPurpose, ParamFormat}
	switch {
	case u.Path == ObservationPath:
		r.Search = true
		allowed = append(allowed, ParamPatient, ParamCode, ParamDate, ParamID, ParamIdentifier, ParamCount, ParamCursor)
	case strings.HasPrefix(u.Path, ObservationPath+"/"):
		r.ID = strings.TrimPrefix(u.Path, ObservationPath+"/")
		if !wire.ValidHash(r.ID) {
			return nil, wire.Errorf(wire.CodeNotFound, "no Observation has this id")
		}
	default:
		return nil, wire.Errorf(wire.CodeNotFound, "not an Observation read")
	}
	for _, name := range slices.Sorted(maps.Keys(q)) {
		vs := q[name]
		if !contains(allowed, name) {
			return nil, invalid("unsupported parameter for this Observation read (supported: %s)", strings.Join(allowed, ", "))
		}
		if len(vs) > 1 && !(name == ParamDate && len(vs) == 2) {
			return nil, invalid("parameter %s is given more than once", name)
		}
	}
	if f := q.Get(ParamFormat); q.Has(ParamFormat) && f != "json" && f != "application/json" && f != "application/fhir+json" {
		return nil, invalid("_format must be json: only JSON is served")
	}
	r.Purpose = q.Get(ParamPurpose)
	if !wire.ValidToken(r.Purpose) {
		return nil, invalid("purpose is required: the purpose of use, matching ^[a-z0-9._-]{1,64}$")
	}
	if !r.Search {
		return r, nil
	}
	switch {
	case q.Has(ParamID) || q.Has(ParamIdentifier):
		for _, p := range []string{ParamPatient, ParamCode, ParamDate, ParamCount, ParamCursor} {
			if q.Has(p) {
				return nil, invalid("a search by _id or identifier takes purpose only")
			}
		}
		if q.Has(ParamID) && q.Has(ParamIdentifier) {
			return nil, invalid("give _id or identifier, not both")
		}
		if q.Has(ParamID) {
			if r.ID = q.Get(ParamID); !wire.ValidHash(r.ID) {
				return nil, invalid("_id must be an Observation id: 64 lower-case hex digits")
			}
			return r, nil
		}
		v := q.Get(ParamIdentifier)
		if sys, val, ok := strings.Cut(v, "|"); ok {
			if sys != vocab.SystemReading {
				return nil, invalid("identifier must be %s|<deviceId>:<seq>", vocab.SystemReading)
			}
			v = val
		}
		if _, _, ok := wire.SplitReadingID(v); !ok {
			return nil, invalid("identifier must be a reading id <deviceId>:<seq>")
		}
		r.ReadingID = v
		return r, nil
	case !q.Has(ParamPatient):
		return nil, invalid("an Observation search needs patient (with code), _id or identifier")
	}
	r.PatientID = strings.TrimPrefix(q.Get(ParamPatient), "Patient/")
	if !wire.ValidID(r.PatientID) {
		return nil, invalid("patient must be a patient id or Patient/<id>, matching %s", wire.IDPattern)
	}
	if r.DataTypes, err = dataTypes(q.Get(ParamCode)); err != nil {
		return nil, err
	}
	if r.From, r.To, err = Window(q[ParamDate]); err != nil {
		return nil, err
	}
	if q.Has(ParamCount) {
		n, err := strconv.Atoi(q.Get(ParamCount))
		if err != nil || n < 1 || n > wire.MaxAccessLimit {
			return nil, invalid("_count must be an integer in 1..%d", wire.MaxAccessLimit)
		}
		r.Limit = n
	}
	if q.Has(ParamCursor) {
		if r.Cursor = q.Get(ParamCursor); r.Cursor == "" || len(r.Cursor) > maxCursor {
			return nil, invalid("_cursor must be the cursor of a previous page")
		}
	}
	return r, nil
}

// dataTypes reads a code parameter: each comma-separated token names one
// data type.
func dataTypes(v string) ([]string, error) {
	if v == "" {
		return nil, invalid("code is required: LOINC codes or medprov reading types, comma-separated")
	}
	toks := strings.Split(v, ",")
	if len(toks) > wire.MaxDataTypes {
		return nil, invalid("code names at most %d data types", wire.MaxDataTypes)
	}
	out := make([]string, 0, len(toks))
	for _, tok := range toks {
		sys, code, hasSys := strings.Cut(tok, "|")
		if !hasSys {
			sys, code = "", tok
		}
		var typ string
		switch {
		case sys == vocab.SystemLOINC || sys == "":
			rt, ok := vocab.TypeOfLOINC(code)
			if !ok && sys == vocab.SystemLOINC {
				return nil, invalid("code names a LOINC code no medprov reading type has")
			}
			if ok {
				typ = rt.Type
			} else {
				typ = code // a bare code that is no LOINC code medprov knows: a reading type
			}
		case sys == vocab.SystemReadingType:
			typ = code
		default:
			return nil, invalid("code systems are %s and %s", vocab.SystemLOINC, vocab.SystemReadingType)
		}
		if !wire.ValidToken(typ) {
			return nil, invalid("code must name reading types matching ^[a-z0-9._-]{1,64}$")
		}
		if contains(out, typ) {
			return nil, invalid("code names a data type twice")
		}
		out = append(out, typ)
	}
	return out, nil
}

// Window reads the values of a date parameter into an RFC 3339 window
// (inclusive): ge and le bounds, or one day or instant; unbounded ends are
// OpenFrom and OpenTo.
func Window(vs []string) (string, string, error) {
	from, to := OpenFrom, OpenTo
	var haveFrom, haveTo bool
	for _, v := range vs {
		prefix := ""
		if len(v) > 2 && v[0] >= 'a' && v[0] <= 'z' {
			prefix, v = v[:2], v[2:]
		}
		start, end, err := instantRange(v)
		if err != nil {
			return "", "", err
		}
		switch prefix {
		case "ge":
			if haveFrom {
				return "", "", invalid("date gives two lower bounds")
			}
			from, haveFrom = start, true
		case "le":
			if haveTo {
				return "", "", invalid("date gives two upper bounds")
			}
			to, haveTo = end, true
		case "", "eq":
			if haveFrom || haveTo {
				return "", "", invalid("date gives a day or instant, or ge and le bounds, not both")
			}
			from, to, haveFrom, haveTo = start, end, true, true
		default:
			return "", "", invalid("date takes the prefixes ge and le only")
		}
	}
	f, _ := time.Parse(time.RFC3339Nano, from) // both are valid RFC 3339 here
	t, _ := time.Parse(time.RFC3339Nano, to)
	if t.Before(f) {
		return "", "", invalid("date's lower bound is after its upper bound")
	}
	return from, to, nil
}

// instantRange reads an RFC 3339 time (one instant) or a YYYY-MM-DD date
// (the UTC day) and returns its first and last instant.
func instantRange(v string) (string, string, error) {
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		s := t.UTC().Format(time.RFC3339Nano)
		return s, s, nil
	}
	d, err := time.Parse(time.DateOnly, v)
	if err != nil {
		return "", "", invalid("date values must be RFC 3339 times or YYYY-MM-DD dates")
	}
	end := d.Add(24*time.Hour - time.Nanosecond)
	return d.UTC().Format(time.RFC3339Nano), end.UTC().Format(time.RFC3339Nano), nil
}

func contains(ss []string, s string) bool { return slices.Contains(ss, s) }
