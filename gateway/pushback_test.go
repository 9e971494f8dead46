package gateway

import (
	"errors"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/medprov/medprov/ingest"
)

// TestAdmitPushesBackWhileTheLedgerIsBehind builds the admission check on
// a batcher that is not running, as when the ledger stopped committing: the
// backlog ages and new readings are refused with 503 and Retry-After.
func TestAdmitPushesBackWhileTheLedgerIsBehind(t *testing.T) {
	q, _, err := ingest.OpenQueue(t.Context(), ingest.QueueConfig{Path: filepath.Join(t.TempDir(), "q.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	s := &Server{cfg: Config{Limits: Limits{MaxLag: 50 * time.Millisecond}}, m: newMetrics(func() float64 { return 0 }),
		batcher: ingest.NewBatcher(q, nil, ingest.BatcherConfig{}), slots: make(chan struct{}, 1)}

	release, err := s.admit(t.Context())
	if err != nil {
		t.Fatalf("empty backlog: %v", err)
	}
	release()

	// Never cut (Run is not started): the backlog ages from its enqueue time.
	s.batcher.Add([]ingest.Record{{ID: 1, EnqueuedAt: time.Now()}}, false)
	time.Sleep(80 * time.Millisecond)
	_, err = s.admit(t.Context())
	var ae *apiError
	if !errors.As(err, &ae) || ae.Status != http.StatusServiceUnavailable || ae.RetryAfter == 0 {
		t.Fatalf("admit with a stale backlog = %v, want 503 with Retry-After", err)
	}
}
