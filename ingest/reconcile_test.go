package ingest_test

import (
	"crypto/ecdsa"
	"encoding/json"
	"io/fs"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/medprov/medprov/client"
	"github.com/medprov/medprov/envelope"
	"github.com/medprov/medprov/gateway"
	"github.com/medprov/medprov/ingest"
	"github.com/medprov/medprov/internal/testkit"
	"github.com/medprov/medprov/ledger"
	ledgerembedded "github.com/medprov/medprov/ledger/embedded"
	"github.com/medprov/medprov/node"
	"github.com/medprov/medprov/wire"
)

const adminToken = "ingest-test-admin-token-0123456789"

// site is one node's data directory, opened and closed again as a test
// needs, with a registered device.
type site struct {
	t      *testing.T
	dir    string
	key    []byte
	queue  ingest.QueueConfig
	devKey *ecdsa.PrivateKey
	seq    uint64
}

func newSite(t *testing.T, queue ingest.QueueConfig) *site {
	t.Helper()
	s := &site{t: t, dir: t.TempDir(), key: testkit.RandomBytes(t, 32), queue: queue, devKey: testkit.MustKey(t)}
	n, srv := s.open()
	defer s.close(n, srv)
	ctx := t.Context()
	admin, err := client.New(srv.URL, client.WithAdminToken(adminToken))
	require.NoError(t, err)
	opKey, patKey := testkit.MustKey(t), testkit.MustKey(t)
	_, err = admin.RegisterActor(ctx, wire.ActorInput{ID: "op-1", Role: wire.RoleOperator, PublicKey: testkit.PublicPEM(t, opKey)})
	require.NoError(t, err)
	_, err = admin.RegisterActor(ctx, wire.ActorInput{ID: "pat-1", Role: wire.RolePatient, PublicKey: testkit.PublicPEM(t, patKey)})
	require.NoError(t, err)
	op, err := client.New(srv.URL, client.WithActor("op-1", opKey))
	require.NoError(t, err)
	_, err = op.RegisterDevice(ctx, client.DeviceRegistration{DeviceID: "dev-1", PatientID: "pat-1", DeviceType: "hr-monitor", PublicKey: testkit.PublicPEM(t, s.devKey)})
	require.NoError(t, err)
	return s
}

func (s *site) open() (*node.Node, *httptest.Server) {
	s.t.Helper()
	n, err := node.Open(s.t.Context(), node.Config{DataDir: s.dir, MasterKey: s.key, AdminToken: adminToken,
		Queue: s.queue, Limits: gateway.Limits{DeviceRate: -1, ActorRate: -1}})
	require.NoError(s.t, err)
	return n, httptest.NewServer(n.Handler())
}

func (s *site) close(n *node.Node, srv *httptest.Server) {
	s.t.Helper()
	srv.Close()
	require.NoError(s.t, n.Close())
}

// commit submits n new readings of dev-1 in one request, waits until they
// are recorded, and returns their IDs. One request is one transaction: the
// batcher cuts it whole.
func (s *site) commit(srv *httptest.Server, n int) []string {
	s.t.Helper()
	envs := make([]envelope.Envelope, n)
	for i := range envs {
		s.seq++
		p, err := client.NewReading("dev-1", s.seq, "heart_rate", "bpm", 60+i, time.Now())
		require.NoError(s.t, err)
		envs[i], err = client.SignReading(s.devKey, p)
		require.NoError(s.t, err)
	}
	c, err := client.New(srv.URL)
	require.NoError(s.t, err)
	rc, err := c.SubmitReadings(s.t.Context(), envs, client.WaitForCommit())
	require.NoError(s.t, err)
	require.Empty(s.t, rc.Failed())
	ids := make([]string, n)
	for i, r := range rc.Results {
		require.Equal(s.t, wire.StatusRecorded, r.Status)
		ids[i] = r.ReadingID
	}
	return ids
}

// commitBatches opens the node, commits one transaction of n readings per
// element of ns, and closes it.
func (s *site) commitBatches(ns ...int) [][]string {
	s.t.Helper()
	n, srv := s.open()
	defer s.close(n, srv)
	var out [][]string
	for _, k := range ns {
		out = append(out, s.commit(srv, k))
	}
	return out
}

// snapshotLedger copies the (closed) node's ledger directory; the returned
// function puts the copy back, so every block committed in between is lost
// exactly as a ledger that lost the tail of its journal loses it.
func (s *site) snapshotLedger() (restore func()) {
	s.t.Helper()
	ledgerDir := filepath.Join(s.dir, "ledger")
	saved := filepath.Join(s.t.TempDir(), "ledger")
	require.NoError(s.t, os.CopyFS(saved, os.DirFS(ledgerDir)))
	return func() {
		s.t.Helper()
		require.NoError(s.t, os.RemoveAll(ledgerDir))
		require.NoError(s.t, os.CopyFS(ledgerDir, os.DirFS(saved)))
		require.NoError(s.t, filepath.WalkDir(ledgerDir, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				return os.Chmod(path, 0o700)
			}
			return os.Chmod(path, 0o600)
		}))
	}
}

// recordedTimes counts, over the whole chain, how many transactions
// recorded each reading.
func recordedTimes(t *testing.T, l ledger.Transactor) map[string]int {
	t.Helper()
	el, ok := l.(*ledgerembedded.Ledger)
	require.True(t, ok, "the node runs the embedded ledger")
	got := map[string]int{}
	for b := range el.Height() {
		blk, err := el.Block(t.Context(), b)
		require.NoError(t, err)
		for _, tx := range blk.Transactions {
			if !tx.Valid || tx.Event == nil || tx.Event.Name != wire.EventReadingsRecorded {
				continue
			}
			var ev wire.ReadingsRecordedEvent
			require.NoError(t, json.Unmarshal(tx.Event.Payload, &ev))
			for _, id := range ev.ReadingIDs {
				got[id]++
			}
		}
	}
	return got
}

func reportLines(t *testing.T, path string) map[string]string {
	t.Helper()
	info, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm(), "report file mode")
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	got := map[string]string{} // reading ID → first word of its line
	for line := range strings.Lines(string(raw)) {
		f := strings.Fields(line)
		if len(f) >= 2 && !strings.HasPrefix(f[0], "#") {
			got[f[1]] = f[0]
		}
	}
	return got
}

func reportFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "reconcile-*.txt"))
	require.NoError(t, err)
	return m
}

func TestReconcileAfterTheLedgerLostBlocks(t *testing.T) {
	tests := []struct {
		name  string
		queue ingest.QueueConfig
		// before are the transactions committed before the ledger is
		// snapshot; after, those committed after it, which the ledger
		// then loses.
		before, after []int
		// wantResubmitted and wantLost index into after.
		wantResubmitted, wantLost []int
	}{
		{
			name:   "an intact ledger is left alone",
			before: []int{4, 3}, after: nil,
		},
		{
			name:   "readings of the lost last block are resubmitted and named in the report",
			before: []int{4, 3}, after: []int{5},
			wantResubmitted: []int{0},
		},
		{
			name:  "readings lost beyond the retention are reported lost, the retained ones resubmitted",
			queue: ingest.QueueConfig{RetainMax: 3},
			// Only the last transaction's three readings are retained.
			before: []int{4}, after: []int{3, 3},
			wantResubmitted: []int{1}, wantLost: []int{0},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSite(t, tt.queue)
			before := s.commitBatches(tt.before...)
			restore := s.snapshotLedger()
			after := s.commitBatches(tt.after...)
			restore()

			n, srv := s.open()
			defer s.close(n, srv)
			got, err := n.Ingest.AwaitReconciled(t.Context())
			require.NoError(t, err)
			require.True(t, got.Done)
			require.NoError(t, got.Err)

			var wantResubmitted, wantLost []string
			for _, i := range tt.wantResubmitted {
				wantResubmitted = append(wantResubmitted, after[i]...)
			}
			for _, i := range tt.wantLost {
				wantLost = append(wantLost, after[i]...)
			}
			assert.Equal(t, len(wantResubmitted), got.Resubmitted, "resubmitted")
			assert.Equal(t, len(wantResubmitted), got.Recovered, "recovered")
			assert.Zero(t, got.Rejected, "rejected")
			assert.Equal(t, len(wantLost), got.Lost, "lost")
			assert.Positive(t, got.Checked, "checked")

			queueDir := s.dir
			if len(wantResubmitted)+len(wantLost) == 0 {
				assert.Empty(t, got.ReportPath, "report path")
				assert.Empty(t, reportFiles(t, queueDir), "report files")
			} else {
				require.NotEmpty(t, got.ReportPath)
				assert.Equal(t, []string{got.ReportPath}, reportFiles(t, queueDir), "report files")
				lines := reportLines(t, got.ReportPath)
				want := map[string]string{}
				for _, id := range wantResubmitted {
					want[id] = "resubmitted"
				}
				for _, id := range wantLost {
					want[id] = "lost"
				}
				assert.Equal(t, want, lines, "readings named in the report")
			}

			// What the ledger holds: every reading it kept or got back,
			// recorded by exactly one transaction; lost ones absent, and
			// forgotten by the queue so that the device may send them again.
			times := recordedTimes(t, n.Ledger)
			for _, ids := range before {
				for _, id := range ids {
					assert.Equal(t, 1, times[id], "%s: transactions that recorded it", id)
				}
			}
			for _, id := range wantResubmitted {
				assert.Equal(t, 1, times[id], "%s: transactions that recorded it", id)
				dev, seq, ok := wire.SplitReadingID(id)
				require.True(t, ok)
				seen, err := n.Ingest.Lookup(dev, seq)
				require.NoError(t, err)
				assert.Equal(t, ingest.StateRecorded, seen.State, "%s: state in the queue", id)
			}
			for _, id := range wantLost {
				assert.Zero(t, times[id], "%s: transactions that recorded it", id)
				dev, seq, ok := wire.SplitReadingID(id)
				require.True(t, ok)
				seen, err := n.Ingest.Lookup(dev, seq)
				require.NoError(t, err)
				assert.Equal(t, ingest.StateUnknown, seen.State, "%s: state in the queue", id)
			}
			assert.Zero(t, n.Ingest.Pending(), "pending after reconciliation")
		})
	}
}

// TestReconcileOnceOnly: after readings were resubmitted, the next start
// finds the ledger whole and resubmits nothing.
func TestReconcileOnceOnly(t *testing.T) {
	s := newSite(t, ingest.QueueConfig{})
	s.commitBatches(2)
	restore := s.snapshotLedger()
	s.commitBatches(3)
	restore()
	for _, want := range []int{3, 0} {
		n, srv := s.open()
		got, err := n.Ingest.AwaitReconciled(t.Context())
		require.NoError(t, err)
		assert.Equal(t, want, got.Resubmitted, "resubmitted")
		s.close(n, srv)
	}
	assert.Len(t, reportFiles(t, s.dir), 1, "report files")
}

// TestReconcileReportsResubmissionsTheLedgerRefuses: while the ledger had
// lost a block, another node recorded a different reading under one of the
// lost (device, seq) pairs. The check must not take that reading for the
// lost one: it resubmits it, the chaincode refuses it as a conflict, and
// the report says so.
func TestReconcileReportsResubmissionsTheLedgerRefuses(t *testing.T) {
	s := newSite(t, ingest.QueueConfig{})
	s.commitBatches(2)
	restore := s.snapshotLedger()
	lost := s.commitBatches(3)[0]
	restore()

	s.queue.Path = filepath.Join(s.dir, "other-node.db")
	n, srv := s.open()
	_, seq, ok := wire.SplitReadingID(lost[0])
	require.True(t, ok)
	s.seq = seq - 1
	require.Equal(t, []string{lost[0]}, s.commit(srv, 1), "another reading under the lost reading's ID")
	s.close(n, srv)

	s.queue.Path = ""
	n, srv = s.open()
	defer s.close(n, srv)
	got, err := n.Ingest.AwaitReconciled(t.Context())
	require.NoError(t, err)
	assert.Equal(t, 3, got.Resubmitted, "resubmitted")
	assert.Equal(t, 2, got.Recovered, "recovered")
	assert.Equal(t, 1, got.Rejected, "rejected")
	want := map[string]string{lost[0]: "rejected", lost[1]: "resubmitted", lost[2]: "resubmitted"}
	assert.Equal(t, want, reportLines(t, got.ReportPath), "last word on each reading in the report")
}
