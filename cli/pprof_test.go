package cli

import (
	"io"
	"log/slog"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPprofIsLoopbackOnly(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, addr := range []string{"0.0.0.0:0", ":0", "192.0.2.1:6060", "example.com:6060", "[::]:0", "nonsense"} {
		t.Run("refused: "+addr, func(t *testing.T) {
			_, _, err := startPprof(addr, log)
			var ue usageError
			assert.ErrorAs(t, err, &ue)
		})
	}
	for _, addr := range []string{"127.0.0.1:0", "localhost:0"} {
		t.Run("served: "+addr, func(t *testing.T) {
			at, stop, err := startPprof(addr, log)
			require.NoError(t, err)
			defer stop()
			req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+at+"/debug/pprof/", nil)
			require.NoError(t, err)
			res, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			require.NoError(t, res.Body.Close())
			assert.Equal(t, http.StatusOK, res.StatusCode)
		})
	}
}
