package client

import (
	"context"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"

	"github.com/medprov/medprov/evidence"
	"github.com/medprov/medprov/wire"
)

// BundleMediaType is the media type of an audit bundle.
const BundleMediaType = "application/x-tar"

// AuditTrust fetches the ledger's trust root (GET /v1/audit/trust).
// Signed; the actor must be a regulator. Pin it once, after checking it
// with each organisation: it is what audit bundles are verified against.
func (c *Client) AuditTrust(ctx context.Context) (*evidence.Trust, error) {
	var out evidence.Trust
	if err := c.getSigned(ctx, "/v1/audit/trust", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// BundleScope is what an audit bundle covers: PatientID or ReadingID,
// optionally within From..To (RFC 3339), with the ciphertexts if asked.
type BundleScope struct {
	PatientID, ReadingID, From, To string
	Ciphertexts                    bool
}

// AuditBundle streams an audit bundle (GET /v1/audit/bundle), a tar file
// for audit.Read and audit.Verify. Signed; the actor must be a regulator.
// The caller closes the reader.
func (c *Client) AuditBundle(ctx context.Context, s BundleScope) (io.ReadCloser, error) {
	q := url.Values{}
	for k, v := range map[string]string{"patientId": s.PatientID, "readingId": s.ReadingID, "from": s.From, "to": s.To} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if s.Ciphertexts {
		q.Set("ciphertexts", "true")
	}
	u := *c.base
	u.RawPath = c.base.EscapedPath() + "/v1/audit/bundle"
	u.Path = c.base.Path + "/v1/audit/bundle"
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Accept", BundleMediaType+", application/json")
	h, err := c.signGet(ctx, req.URL.RequestURI())
	if err != nil {
		return nil, err
	}
	req.Header.Set(wire.SignatureHeader, h)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET /v1/audit/bundle: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if err != nil {
			return nil, fmt.Errorf("GET /v1/audit/bundle: read response: %w", err)
		}
		return nil, parseAPIError(resp, b)
	}
	if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err != nil || mt != BundleMediaType {
		resp.Body.Close() //nolint:errcheck // the content type is the error
		return nil, fmt.Errorf("GET /v1/audit/bundle: answered %q, want %s", resp.Header.Get("Content-Type"), BundleMediaType)
	}
	return resp.Body, nil
}
