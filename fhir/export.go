package fhir

import (
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/medprov/medprov/client"
	"github.com/medprov/medprov/wire"
)

// Reader reads the gateway's FHIR API.
//
// Get MUST return the body of a 200 answer to a GET of pathAndQuery (the
// path from the gateway's root, e.g. "/fhir/R4/Consent?patient=p"), and
// an error for any other answer.
type Reader interface {
	Get(ctx context.Context, pathAndQuery string) ([]byte, error)
}

// SignedReader reads the FHIR API of the gateway at a base URL as one
// actor: every GET is signed with the actor's key over its own path and
// query, as the gateway requires.
type SignedReader struct {
	base    *url.URL
	actorID string
	key     *ecdsa.PrivateKey
	http    *http.Client
	now     func() time.Time
}

// NewSignedReader returns a reader of the gateway at baseURL (a path in
// it prefixes every request) signing as actorID with key, sending with hc
// (http.DefaultClient when nil).
func NewSignedReader(baseURL, actorID string, key *ecdsa.PrivateKey, hc *http.Client) (*SignedReader, error) {
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("fhir: gateway URL %q: want http(s)://host[:port]", baseURL)
	}
	if hc == nil {
		hc = http.DefaultClient
	}
	return &SignedReader{base: u, actorID: actorID, key: key, http: hc, now: time.Now}, nil
}

// maxBody bounds a FHIR answer the reader reads.
const maxBody = client.MaxResponseBytes

// Get implements Reader.
func (r *SignedReader) Get(ctx context.Context, pathAndQuery string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.base.String()+pathAndQuery, nil)
	if err != nil {
		return nil, fmt.Errorf("fhir: %w", err)
	}
	h, err := client.SignedGetHeader(r.key, r.actorID, req.URL.RequestURI(), r.now())
	if err != nil {
		return nil, err
	}
	req.Header.Set(wire.SignatureHeader, h)
	req.Header.Set("Accept", MediaType)
	resp, err := r.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fhir: GET %s: %w", req.URL.Path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return nil, fmt.Errorf("fhir: GET %s: %w", req.URL.Path, err)
	}
	if len(b) > maxBody {
		return nil, fmt.Errorf("fhir: GET %s: answer larger than %d bytes", req.URL.Path, maxBody)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, &OutcomeError{Status: resp.StatusCode, Message: outcomeMessage(b)}
	}
	return b, nil
}

// OutcomeError is a FHIR request the gateway refused: the HTTP status and
// the OperationOutcome's diagnostics.
type OutcomeError struct {
	Status  int
	Message string
}

// Error implements error.
func (e *OutcomeError) Error() string {
	return fmt.Sprintf("fhir: gateway answered %d: %s", e.Status, e.Message)
}

func outcomeMessage(b []byte) string {
	var oo struct {
		Issue []struct {
			Diagnostics string `json:"diagnostics"`
		} `json:"issue"`
	}
	if json.Unmarshal(b, &oo) == nil && len(oo.Issue) > 0 && oo.Issue[0].Diagnostics != "" {
		return oo.Issue[0].Diagnostics
	}
	return http.StatusText(http.StatusInternalServerError)
}

// ExportPatient reads, through r, every Consent, AuditEvent and
// Provenance of a patient (following each search's next links) and
// returns them as one collection Bundle stamped at now, its fullUrls
// under base (the gateway's absolute FHIR base URL). The reader's actor
// must be allowed to read them all: the patient or a regulator.
func ExportPatient(ctx context.Context, r Reader, base, patientID string, now time.Time) ([]byte, error) {
	if !wire.ValidID(patientID) {
		return nil, fmt.Errorf("fhir: patient id must match %s", wire.IDPattern)
	}
	p := url.QueryEscape(patientID)
	var entries []Entry
	seen := map[string]bool{}
	for _, search := range []string{
		"/Consent?patient=" + p,
		"/AuditEvent?patient=" + p,
		"/Provenance?" + url.QueryEscape(ParamTargetPatient) + "=" + p,
	} {
		next := BasePath + search + "&_count=" + fmt.Sprint(MaxCount)
		for pages := 0; next != ""; pages++ {
			if pages > MaxMatches/MaxCount+1 {
				return nil, errors.New("fhir: a search did not end")
			}
			b, err := r.Get(ctx, next)
			if err != nil {
				return nil, err
			}
			var set struct {
				Link []struct {
					Relation string `json:"relation"`
					URL      string `json:"url"`
				} `json:"link"`
				Entry []struct {
					Resource json.RawMessage `json:"resource"`
				} `json:"entry"`
			}
			if err := json.Unmarshal(b, &set); err != nil {
				return nil, fmt.Errorf("fhir: %s: decode the searchset: %w", search, err)
			}
			for _, e := range set.Entry {
				var id struct {
					ResourceType string `json:"resourceType"`
					ID           string `json:"id"`
				}
				if err := json.Unmarshal(e.Resource, &id); err != nil {
					return nil, fmt.Errorf("fhir: %s: decode an entry: %w", search, err)
				}
				// A resource seen on an earlier page (the results moved
				// while paging) is kept once: fullUrls are unique in a Bundle.
				if k := id.ResourceType + "/" + id.ID; !seen[k] {
					seen[k] = true
					entries = append(entries, Entry{Resource: e.Resource, Type: id.ResourceType, ID: id.ID})
				}
			}
			next = ""
			for _, l := range set.Link {
				if l.Relation != "next" {
					continue
				}
				u, err := url.Parse(l.URL)
				if err != nil {
					return nil, fmt.Errorf("fhir: %s: next link: %w", search, err)
				}
				i := strings.Index(u.RequestURI(), BasePath+"/")
				if i < 0 {
					return nil, fmt.Errorf("fhir: %s: the next link is not under %s", search, BasePath)
				}
				next = u.RequestURI()[i:]
			}
		}
	}
	b, err := Collection(base, now.UTC().Format(time.RFC3339Nano), entries)
	if err != nil {
		return nil, err
	}
	return Marshal(b)
}
