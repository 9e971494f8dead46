package fhir

import (
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/medprov/medprov/fhir/readaccess"
	"github.com/medprov/medprov/wire"
)

// Search parameters of the searches other than Observation's (package
// readaccess reads those).
const (
	ParamPatient = "patient"
	ParamDate    = "date"
	ParamAgent   = "agent"
	ParamTarget  = "target"
	// ParamTargetPatient is the chained search of the Provenances of a
	// patient's readings.
	ParamTargetPatient = "target:Observation.patient"
	ParamCount         = "_count"
	ParamOffset        = "_offset"
	ParamFormat        = "_format"
)

// Page sizes of searches (_count).
const (
	DefaultCount = 100
	MaxCount     = wire.MaxPageSize
)

// MaxMatches bounds the matches of one search: a search matching more is
// refused (narrow it, e.g. with date), as counting and paging them all
// would cost too much.
const MaxMatches = 10_000

// Search is a search's parameters, checked.
type Search struct {
	// Query is the query with every parameter as given.
	Query url.Values
	// Count and Offset select the page.
	Count, Offset int
}

// ParseSearch reads the query of a search whose parameters are allowed
// (plus _count, _offset and _format), each given once, date at most twice
// (a lower and an upper bound). Refusals are *wire.Error (CodeInvalid).
func ParseSearch(rawQuery string, allowed ...string) (*Search, error) {
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return nil, wire.Errorf(wire.CodeInvalid, "the query is malformed")
	}
	all := append([]string{ParamCount, ParamOffset, ParamFormat}, allowed...)
	for _, name := range slices.Sorted(maps.Keys(q)) {
		if !slices.Contains(all, name) {
			return nil, wire.Errorf(wire.CodeInvalid, "unsupported search parameter (supported: %s)", strings.Join(all, ", "))
		}
		if n := len(q[name]); n > 1 && !(name == ParamDate && n == 2) {
			return nil, wire.Errorf(wire.CodeInvalid, "search parameter %s is given more than once", name)
		}
	}
	if f := q.Get(ParamFormat); q.Has(ParamFormat) && f != "json" && f != "application/json" && f != MediaType {
		return nil, wire.Errorf(wire.CodeInvalid, "_format must be json: only JSON is served")
	}
	s := &Search{Query: q, Count: DefaultCount}
	if q.Has(ParamCount) {
		if s.Count, err = strconv.Atoi(q.Get(ParamCount)); err != nil || s.Count < 1 || s.Count > MaxCount {
			return nil, wire.Errorf(wire.CodeInvalid, "_count must be an integer in 1..%d", MaxCount)
		}
	}
	if q.Has(ParamOffset) {
		if s.Offset, err = strconv.Atoi(q.Get(ParamOffset)); err != nil || s.Offset < 0 || s.Offset > MaxMatches {
			return nil, wire.Errorf(wire.CodeInvalid, "_offset must be an integer in 0..%d", MaxMatches)
		}
	}
	return s, nil
}

// ID returns the id a reference parameter names: the value itself, or
// the id of typ/id.
func ID(value, typ string) string { return strings.TrimPrefix(value, typ+"/") }

// Required returns the value of a parameter the search must give.
func (s *Search) Required(name string) (string, error) {
	v := strings.TrimSpace(s.Query.Get(name))
	if v == "" {
		return "", wire.Errorf(wire.CodeInvalid, "search parameter %s is required", name)
	}
	return v, nil
}

// Window returns the date parameter's window (RFC 3339, inclusive), read
// as for an Observation search: ge and le bounds, or one day or instant.
func (s *Search) Window() (from, to string, err error) {
	return readaccess.Window(s.Query[ParamDate])
}

// Slice returns the bounds of the page in n matches.
func (s *Search) Slice(n int) (lo, hi int) {
	lo = min(s.Offset, n)
	return lo, min(lo+s.Count, n)
}
