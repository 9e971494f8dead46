package client

import (
	"context"
	"fmt"
	"io"
	"mime"
	"net/http"
)

// BackupMediaType is the media type of the stream Backup returns.
const BackupMediaType = "application/x-tar"

// Backup asks the gateway for a backup of its node (GET /v1/admin/backup,
// with the admin token) and returns the tar stream as it arrives; the
// caller reads it to the end and closes it. node.ReadBackup unpacks and
// verifies it: a stream cut short lacks its last entry, the manifest, and
// a read error or a missing manifest means there is no backup. Refusals
// are *APIError (401 without the right token, 429 while another backup
// runs). The whole download must fit within the http.Client's Timeout,
// if it has one: give Backup a client without one (WithHTTPClient) and
// bound it with ctx instead.
func (c *Client) Backup(ctx context.Context) (io.ReadCloser, error) {
	if c.adminToken == "" {
		return nil, fmt.Errorf("client has no admin token (use WithAdminToken)")
	}
	u := *c.base
	u.RawPath = c.base.EscapedPath() + "/v1/admin/backup"
	u.Path = c.base.Path + "/v1/admin/backup"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Accept", BackupMediaType+", application/json")
	req.Header.Set("Authorization", "Bearer "+c.adminToken)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET /v1/admin/backup: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if err != nil {
			return nil, fmt.Errorf("GET /v1/admin/backup: read response: %w", err)
		}
		return nil, parseAPIError(resp, b)
	}
	if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err != nil || mt != BackupMediaType {
		resp.Body.Close() //nolint:errcheck // the content type is the error
		return nil, fmt.Errorf("GET /v1/admin/backup: answered %q, want %s", resp.Header.Get("Content-Type"), BackupMediaType)
	}
	return resp.Body, nil
}
