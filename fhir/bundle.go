package fhir

import (
	"encoding/json"
	"net/url"
	"strconv"

	r4 "github.com/samply/golang-fhir-models/fhir-models/fhir"
)

// BundleLink is a link of a Bundle.
type BundleLink = r4.BundleLink

// Search modes of searchset entries.
const (
	ModeMatch   = r4.SearchEntryModeMatch
	ModeOutcome = r4.SearchEntryModeOutcome
)

// Entry is one resource of a Bundle.
type Entry struct {
	// Resource is a resource this package built.
	Resource any
	// Type and ID name the resource: its fullUrl is base/Type/ID.
	Type, ID string
	// Mode is its search mode in a searchset (match, include, outcome).
	Mode r4.SearchEntryMode
}

// Searchset returns a searchset Bundle of entries: total (when known) is
// the number of matches of the whole search, links its paging links, base
// the server's absolute FHIR base URL.
func Searchset(base string, total *int, links []r4.BundleLink, entries []Entry) (*r4.Bundle, error) {
	b := &r4.Bundle{Type: r4.BundleTypeSearchset, Total: total, Link: links}
	for _, e := range entries {
		be, err := entry(base, e)
		if err != nil {
			return nil, err
		}
		be.Search = &r4.BundleEntrySearch{Mode: ptr(e.Mode)}
		b.Entry = append(b.Entry, be)
	}
	return b, nil
}

// Collection returns a collection Bundle of entries, stamped at timestamp
// (an instant).
func Collection(base, timestamp string, entries []Entry) (*r4.Bundle, error) {
	b := &r4.Bundle{Type: r4.BundleTypeCollection, Timestamp: ptr(timestamp)}
	for _, e := range entries {
		be, err := entry(base, e)
		if err != nil {
			return nil, err
		}
		b.Entry = append(b.Entry, be)
	}
	return b, nil
}

func entry(base string, e Entry) (r4.BundleEntry, error) {
	raw, err := Marshal(e.Resource)
	if err != nil {
		return r4.BundleEntry{}, err
	}
	be := r4.BundleEntry{Resource: json.RawMessage(raw)}
	if e.ID != "" {
		be.FullUrl = ptr(base + "/" + e.Type + "/" + e.ID)
	}
	return be, nil
}

// Link is a Bundle link.
func Link(relation, u string) BundleLink { return r4.BundleLink{Relation: relation, Url: u} }

// PageLinks returns the self, first, previous, next and last links of one
// page (offset, count) of a search of typ with query q (its _offset and
// _count are replaced) and total matches.
func PageLinks(base, typ string, q url.Values, total, offset, count int) []r4.BundleLink {
	at := func(off int) string {
		v := url.Values{}
		for k, vs := range q {
			if k != ParamOffset && k != ParamCount {
				v[k] = vs
			}
		}
		v.Set(ParamCount, strconv.Itoa(count))
		if off > 0 {
			v.Set(ParamOffset, strconv.Itoa(off))
		}
		return base + "/" + typ + "?" + v.Encode()
	}
	links := []r4.BundleLink{Link("self", at(offset)), Link("first", at(0))}
	if offset > 0 {
		links = append(links, Link("previous", at(max(offset-count, 0))))
	}
	if offset+count < total {
		links = append(links, Link("next", at(offset+count)))
	}
	last := 0
	if total > 0 {
		last = (total - 1) / count * count
	}
	return append(links, Link("last", at(last)))
}
