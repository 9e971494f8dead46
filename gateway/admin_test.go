package gateway_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/medprov/medprov/gateway"
	"github.com/medprov/medprov/ledger"
	"github.com/medprov/medprov/wire"
)

// gatewayWithBackup runs a second gateway over a node's backends whose
// backup is fn (nil: none).
func gatewayWithBackup(t *testing.T, fn func(context.Context, io.Writer) error) *httptest.Server {
	t.Helper()
	n := newServer(t)
	gw, err := gateway.New(t.Context(), gateway.Config{Ledger: n.Ledger, Ingest: n.Ingest, Blobs: n.Blobs, Opener: n.Keyring,
		AdminToken: adminToken, Backup: fn})
	require.NoError(t, err)
	srv := httptest.NewServer(gw.Handler())
	t.Cleanup(func() { srv.Close(); assert.NoError(t, gw.Close()) })
	return srv
}

func getBackup(t *testing.T, srv *httptest.Server, token string) (*http.Response, []byte, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/v1/admin/backup", nil)
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

func TestBackupRoute(t *testing.T) {
	t.Run("without the admin token it is 401 and no backup is taken", func(t *testing.T) {
		taken := false
		srv := gatewayWithBackup(t, func(context.Context, io.Writer) error { taken = true; return nil })
		for _, token := range []string{"", "wrong-token-wrong-token-wrong"} {
			resp, _, err := getBackup(t, srv, token)
			require.NoError(t, err)
			assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
		}
		assert.False(t, taken, "the backup ran")
	})
	t.Run("a gateway without a node takes no backups: 404", func(t *testing.T) {
		resp, body, err := getBackup(t, gatewayWithBackup(t, nil), adminToken)
		require.NoError(t, err)
		assert.Equal(t, http.StatusNotFound, resp.StatusCode)
		assert.Contains(t, string(body), `"code":"not_found"`)
	})
	t.Run("the stream is served as a tar attachment", func(t *testing.T) {
		srv := gatewayWithBackup(t, func(_ context.Context, w io.Writer) error {
			_, err := w.Write([]byte("tar bytes"))
			return err
		})
		resp, body, err := getBackup(t, srv, adminToken)
		require.NoError(t, err)
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, "application/x-tar", resp.Header.Get("Content-Type"))
		assert.Regexp(t, `^attachment; filename="medprov-backup-\d{8}T\d{6}Z\.tar"$`, resp.Header.Get("Content-Disposition"))
		assert.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
		assert.Equal(t, "tar bytes", string(body))
	})
	t.Run("a backup that fails before streaming is a 503 with Retry-After", func(t *testing.T) {
		srv := gatewayWithBackup(t, func(context.Context, io.Writer) error {
			return errors.New("disk full")
		})
		resp, body, err := getBackup(t, srv, adminToken)
		require.NoError(t, err)
		assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
		assert.NotEmpty(t, resp.Header.Get("Retry-After"))
		assert.Contains(t, string(body), `"code":"unavailable"`)
		assert.NotContains(t, string(body), "disk full", "the cause stays in the log")
	})
	t.Run("a closed ledger is a 503", func(t *testing.T) {
		srv := gatewayWithBackup(t, func(context.Context, io.Writer) error { return ledger.ErrUnavailable })
		resp, _, err := getBackup(t, srv, adminToken)
		require.NoError(t, err)
		assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	})
	t.Run("a backup that fails while streaming cuts the connection", func(t *testing.T) {
		srv := gatewayWithBackup(t, func(_ context.Context, w io.Writer) error {
			if _, err := w.Write(make([]byte, 64<<10)); err != nil {
				return err
			}
			return errors.New("store closed")
		})
		resp, _, err := getBackup(t, srv, adminToken)
		assert.Equal(t, http.StatusOK, resp.StatusCode, "the status went out with the first bytes")
		require.Error(t, err, "the reader sees the stream broken, not ended")
	})
	t.Run("a second backup while one runs is 429 with Retry-After", func(t *testing.T) {
		started, release := make(chan struct{}), make(chan struct{})
		srv := gatewayWithBackup(t, func(_ context.Context, w io.Writer) error {
			close(started)
			<-release
			_, err := w.Write([]byte("done"))
			return err
		})
		first := make(chan int, 1)
		go func() {
			resp, _, err := getBackup(t, srv, adminToken)
			if assert.NoError(t, err) {
				first <- resp.StatusCode
			}
			close(first)
		}()
		<-started
		resp, body, err := getBackup(t, srv, adminToken)
		require.NoError(t, err)
		assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
		assert.NotEmpty(t, resp.Header.Get("Retry-After"))
		assert.Contains(t, string(body), string(wire.CodeRateLimited))
		close(release)
		assert.Equal(t, http.StatusOK, <-first, "the first backup completes")
	})
}
