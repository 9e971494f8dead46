package gateway

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// laggingIngest is an ingest pipeline whose oldest reading has waited lag,
// as when the ledger stopped committing.
type laggingIngest struct {
	Ingest
	lag time.Duration
}

func (l laggingIngest) Lag() time.Duration { return l.lag }

// TestAdmitPushesBackWhileTheLedgerIsBehind checks the admission rule: new
// readings are refused with 503 and Retry-After while the backlog is older
// than MaxLag, and admitted otherwise.
func TestAdmitPushesBackWhileTheLedgerIsBehind(t *testing.T) {
	tests := []struct {
		name string
		lag  time.Duration
		want int // 0: admitted
	}{
		{"empty backlog is admitted", 0, 0},
		{"young backlog is admitted", 10 * time.Millisecond, 0},
		{"stale backlog is pushed back", 80 * time.Millisecond, http.StatusServiceUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &Server{cfg: Config{Limits: Limits{MaxLag: 50 * time.Millisecond}, Ingest: laggingIngest{lag: tt.lag}},
				m: NewMetrics(), slots: make(chan struct{}, 1)}
			release, err := s.admit(t.Context())
			if tt.want == 0 {
				require.NoError(t, err)
				release()
				return
			}
			var ae *apiError
			require.ErrorAs(t, err, &ae)
			assert.Equal(t, tt.want, ae.Status())
			assert.NotZero(t, ae.RetryAfter, "pushback must say when to retry")
		})
	}
}
