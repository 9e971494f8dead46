package node_test

import (
	"archive/tar"
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/medprov/medprov/client"
	"github.com/medprov/medprov/envelope"
	"github.com/medprov/medprov/gateway"
	"github.com/medprov/medprov/internal/testkit"
	"github.com/medprov/medprov/ledger"
	ledgerembedded "github.com/medprov/medprov/ledger/embedded"
	"github.com/medprov/medprov/node"
	"github.com/medprov/medprov/seal"
	"github.com/medprov/medprov/wire"
)

// site is a node's data directory, opened and closed as a test needs,
// with an operator, a patient and devices registered through the HTTP API.
type site struct {
	t     *testing.T
	dir   string
	key   []byte
	opKey *ecdsa.PrivateKey
	n     *node.Node
	srv   *httptest.Server

	mu   sync.Mutex
	devs map[string]*device
}

type device struct {
	key *ecdsa.PrivateKey
	seq uint64
}

// newSite opens a node in a fresh data directory and registers op-1,
// pat-1 and the device dev-1.
func newSite(t *testing.T) *site {
	t.Helper()
	s := &site{t: t, dir: t.TempDir(), key: testkit.RandomBytes(t, 32), opKey: testkit.MustKey(t), devs: map[string]*device{}}
	s.open()
	t.Cleanup(s.close)
	admin, err := client.New(s.srv.URL, client.WithAdminToken(adminToken))
	require.NoError(t, err)
	_, err = admin.RegisterActor(t.Context(), wire.ActorInput{ID: "op-1", Role: wire.RoleOperator, PublicKey: testkit.PublicPEM(t, s.opKey)})
	require.NoError(t, err)
	_, err = admin.RegisterActor(t.Context(), wire.ActorInput{ID: "pat-1", Role: wire.RolePatient, PublicKey: testkit.PublicPEM(t, testkit.MustKey(t))})
	require.NoError(t, err)
	s.registerDevice("dev-1")
	return s
}

// open opens the node in s.dir (with the same master key) and serves it.
func (s *site) open() {
	s.t.Helper()
	n, err := node.Open(s.t.Context(), node.Config{DataDir: s.dir, MasterKey: s.key, AdminToken: adminToken,
		Limits: gateway.Limits{DeviceRate: -1, ActorRate: -1}})
	require.NoError(s.t, err)
	s.n, s.srv = n, httptest.NewServer(n.Handler())
}

// close stops serving and closes the node, if open.
func (s *site) close() {
	s.t.Helper()
	if s.n == nil {
		return
	}
	s.srv.Close()
	require.NoError(s.t, s.n.Close())
	s.n, s.srv = nil, nil
}

func (s *site) registerDevice(id string) {
	s.t.Helper()
	op, err := client.New(s.srv.URL, client.WithActor("op-1", s.opKey))
	require.NoError(s.t, err)
	key := testkit.MustKey(s.t)
	_, err = op.RegisterDevice(s.t.Context(), client.DeviceRegistration{DeviceID: id, PatientID: "pat-1", DeviceType: "hr-monitor", PublicKey: testkit.PublicPEM(s.t, key)})
	require.NoError(s.t, err)
	s.mu.Lock()
	s.devs[id] = &device{key: key}
	s.mu.Unlock()
}

// signed returns n new signed readings of device dev.
func (s *site) signed(dev string, n int) []envelope.Envelope {
	s.t.Helper()
	s.mu.Lock()
	d := s.devs[dev]
	first := d.seq + 1
	d.seq += uint64(n)
	s.mu.Unlock()
	envs := make([]envelope.Envelope, n)
	for i := range envs {
		p, err := client.NewReading(dev, first+uint64(i), "heart_rate", "bpm", 60+i, time.Now())
		require.NoError(s.t, err)
		envs[i], err = client.SignReading(d.key, p)
		require.NoError(s.t, err)
	}
	return envs
}

// commit submits n new readings of dev in one request and waits until the
// ledger recorded them; it returns their IDs.
func (s *site) commit(dev string, n int) []string {
	s.t.Helper()
	c, err := client.New(s.srv.URL)
	require.NoError(s.t, err)
	rc, err := c.SubmitReadings(s.t.Context(), s.signed(dev, n), client.WaitForCommit())
	require.NoError(s.t, err)
	ids := make([]string, n)
	for i, r := range rc.Results {
		require.Equal(s.t, wire.StatusRecorded, r.Status, "reading %s", r.ReadingID)
		ids[i] = r.ReadingID
	}
	return ids
}

// backup takes a backup of the running node through GET /v1/admin/backup
// and unpacks (and verifies) it into dir.
func (s *site) backup(dir string) *node.BackupCheck {
	s.t.Helper()
	c, err := client.New(s.srv.URL, client.WithAdminToken(adminToken))
	require.NoError(s.t, err)
	body, err := c.Backup(s.t.Context())
	require.NoError(s.t, err)
	defer func() { assert.NoError(s.t, body.Close()) }()
	chk, err := node.ReadBackup(s.t.Context(), body, dir)
	require.NoError(s.t, err, "the backup streamed by the node verifies")
	return chk
}

// ready asserts that /readyz answers 200.
func (s *site) ready() {
	s.t.Helper()
	rec := httptest.NewRecorder()
	s.n.Handler().ServeHTTP(rec, httptest.NewRequestWithContext(s.t.Context(), http.MethodGet, "/readyz", nil))
	assert.Equal(s.t, http.StatusOK, rec.Code, "readyz: %s", rec.Body)
}

// recordings counts, over every valid transaction of the embedded
// ledger's chain, the writes of each reading's record: a reading recorded
// exactly once has 1.
func recordings(t *testing.T, l ledger.Transactor) map[string]int {
	t.Helper()
	el, ok := l.(*ledgerembedded.Ledger)
	require.True(t, ok, "an embedded ledger")
	out := map[string]int{}
	for b := range el.Height() {
		blk, err := el.Block(t.Context(), b)
		require.NoError(t, err)
		for _, tx := range blk.Transactions {
			if !tx.Valid {
				continue
			}
			for _, w := range tx.Writes {
				// Composite key: \x00reading\x00<deviceId>\x00<seq, zero-padded>\x00.
				parts := strings.Split(w.Key, "\x00")
				if len(parts) != 5 || parts[1] != "reading" || w.Delete {
					continue
				}
				seq, err := strconv.ParseUint(parts[3], 10, 64)
				require.NoError(t, err, "reading key %q", w.Key)
				out[wire.ReadingID(parts[2], seq)]++
			}
		}
	}
	return out
}

// TestBackupUnderLoadRestoresANodeThatServes takes a backup while readings
// keep arriving, restores it into an empty data directory and opens a node
// there: it verifies, recovers every reading the backup's queue knew and
// takes new readings.
func TestBackupUnderLoadRestoresANodeThatServes(t *testing.T) {
	s := newSite(t)
	s.commit("dev-1", 5)

	// Load: batches of readings, acknowledged (queued) without waiting
	// for their block, until stopped.
	stop := make(chan struct{})
	acked := make(chan []string, 1000)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(acked)
		c, err := client.New(s.srv.URL)
		if !assert.NoError(t, err) {
			return
		}
		for {
			select {
			case <-stop:
				return
			default:
			}
			rc, err := c.SubmitReadings(t.Context(), s.signed("dev-1", 20))
			if !assert.NoError(t, err) {
				return
			}
			var ids []string
			for _, r := range rc.Results {
				if assert.NotEqual(t, wire.StatusRejected, r.Status) {
					ids = append(ids, r.ReadingID)
				}
			}
			acked <- ids
		}
	}()
	before := <-acked // acknowledged before the backup began
	chk := s.backup(filepath.Join(t.TempDir(), "backup"))
	<-acked // and the load goes on after it
	close(stop)
	wg.Wait()
	for range acked {
	}
	s.close()

	m := chk.Manifest
	assert.Equal(t, node.BackupFormat, m.Format)
	assert.Equal(t, node.Embedded, m.Ledger.Backend)
	assert.Equal(t, chk.Ledger.Blocks, m.Ledger.Height, "manifest height is the verified chain's")
	assert.Equal(t, chk.Ledger.Tip, m.Ledger.Tip, "manifest tip is the verified chain's")
	var order []string
	for _, st := range m.Stores {
		order = append(order, st.Name)
	}
	assert.Equal(t, []string{node.StoreLedger, node.StoreQueue, node.StoreBlobs, node.StoreKeyring}, order, "stores in copy order")
	require.NoError(t, filepath.WalkDir(chk.Dir, func(p string, d fs.DirEntry, err error) error {
		require.NoError(t, err)
		info, err := d.Info()
		require.NoError(t, err)
		assert.Zero(t, info.Mode().Perm()&0o077, "%s is %v: a backup is private", p, info.Mode().Perm())
		return nil
	}))

	restored := &site{t: t, dir: t.TempDir(), key: s.key, devs: s.devs}
	rep, err := node.Restore(t.Context(), node.RestoreConfig{From: chk.Dir, DataDir: restored.dir, MasterKey: s.key})
	require.NoError(t, err)
	assert.Equal(t, node.RestoreAll, rep.Mode, "an empty data dir has no queue to keep")
	assert.Contains(t, rep.Reason, "missing or unreadable")
	assert.Empty(t, rep.AsideDir, "nothing was replaced")

	restored.open()
	t.Cleanup(restored.close)
	rec, err := restored.n.Ingest.AwaitReconciled(t.Context())
	require.NoError(t, err)
	assert.Zero(t, rec.Rejected+rec.Lost, "reconciliation: %+v", rec)
	require.Eventually(t, func() bool { return restored.n.Ingest.Pending() == 0 }, 20*time.Second, 20*time.Millisecond,
		"the readings pending in the backup's queue are replayed")
	restored.ready()
	require.NoError(t, restored.n.Ledger.(*ledgerembedded.Ledger).Verify(t.Context()))
	assert.GreaterOrEqual(t, restored.n.Ledger.(*ledgerembedded.Ledger).Height(), m.Ledger.Height)

	got := recordings(t, restored.n.Ledger)
	for _, id := range before {
		assert.Equal(t, 1, got[id], "reading %s, acknowledged before the backup, is on the restored ledger once", id)
	}
	for id, n := range got {
		assert.Equal(t, 1, n, "reading %s is recorded once", id)
	}
	assert.Len(t, restored.commit("dev-1", 3), 3, "the restored node takes new readings")
}

// TestRestoreAfterCorruptionRecoversReadingsFromTheQueue is the recovery
// path of issue 10: a backup, readings acknowledged and committed after
// it, a ledger damaged while the node is stopped (the node refuses to
// open), the last backup restored with the current queue kept. On start
// every reading acknowledged after the backup is on the ledger exactly
// once again, or named in the reconciliation report.
func TestRestoreAfterCorruptionRecoversReadingsFromTheQueue(t *testing.T) {
	s := newSite(t)
	before := s.commit("dev-1", 10)
	backupDir := filepath.Join(t.TempDir(), "backup")
	chk := s.backup(backupDir)

	var after []string
	for range 3 {
		after = append(after, s.commit("dev-1", 15)...)
	}
	// A device registered after the backup: the restored ledger does not
	// know it, so its readings cannot be recovered and are reported.
	s.registerDevice("dev-2")
	unknown := s.commit("dev-2", 4)
	s.close()

	testkit.FlipJournalByte(t, filepath.Join(s.dir, "ledger", ledgerembedded.StoreDir))
	_, err := node.Open(t.Context(), node.Config{DataDir: s.dir, MasterKey: s.key, AdminToken: adminToken})
	require.ErrorIs(t, err, ledgerembedded.ErrCorrupt, "the damaged ledger is refused")

	rep, err := node.Restore(t.Context(), node.RestoreConfig{From: backupDir, DataDir: s.dir, MasterKey: s.key})
	require.NoError(t, err)
	assert.Equal(t, node.RestoreLedger, rep.Mode)
	steps := map[string]string{}
	for _, st := range rep.Steps {
		steps[st.Part] = st.Action
	}
	assert.Equal(t, map[string]string{node.StoreLedger: "restored", node.StoreQueue: "kept", node.StoreBlobs: "merged",
		node.StoreKeyring: "merged", "events": "reset"}, steps)
	require.NotEmpty(t, rep.AsideDir)
	assert.DirExists(t, filepath.Join(rep.AsideDir, "ledger"), "the damaged ledger is kept aside")
	assert.FileExists(t, filepath.Join(rep.AsideDir, "restore.json"))

	s.open()
	rec, err := s.n.Ingest.AwaitReconciled(t.Context())
	require.NoError(t, err)
	assert.Equal(t, len(after)+len(unknown), rec.Resubmitted, "every reading recorded after the backup is resubmitted")
	assert.Equal(t, len(after), rec.Recovered, "recovered from the queue")
	assert.Equal(t, len(unknown), rec.Rejected, "refused by the restored ledger")
	assert.Zero(t, rec.Lost)
	require.NotEmpty(t, rec.ReportPath)
	s.ready()

	got := recordings(t, s.n.Ledger)
	for _, id := range append(before, after...) {
		assert.Equal(t, 1, got[id], "reading %s is on the ledger exactly once", id)
	}
	reported := reportLines(t, rec.ReportPath)
	for _, id := range unknown {
		assert.Zero(t, got[id], "reading %s of the unknown device is not on the ledger", id)
		assert.True(t, reported["rejected "+id], "reading %s is reported by ID in %s", id, rec.ReportPath)
	}
	for _, id := range append(after, unknown...) {
		assert.True(t, reported["resubmitted "+id], "reading %s is listed as resubmitted", id)
	}
	assert.Greater(t, s.n.Ledger.(*ledgerembedded.Ledger).Height(), chk.Ledger.Blocks, "the ledger grew past the backup again")
	require.NoError(t, s.n.Ledger.(*ledgerembedded.Ledger).Verify(t.Context()))
}

// reportLines returns the first two fields of each line of a
// reconciliation report ("resubmitted ID", "rejected ID", "lost ID").
func reportLines(t *testing.T, path string) map[string]bool {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	out := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fields := strings.Fields(sc.Text()); len(fields) >= 2 && !strings.HasPrefix(fields[0], "#") {
			out[fields[0]+" "+fields[1]] = true
		}
	}
	require.NoError(t, sc.Err())
	return out
}

// TestRestoreRefusesADamagedBackup: a backup that is not exactly what the
// node wrote, or whose keyring the master key does not open, is refused
// before the data directory is touched.
func TestRestoreRefusesADamagedBackup(t *testing.T) {
	s := newSite(t)
	s.commit("dev-1", 10)
	good := filepath.Join(t.TempDir(), "backup")
	s.backup(good)
	s.commit("dev-1", 5)
	s.close()

	tests := []struct {
		name   string
		damage func(t *testing.T, dir string)
		key    []byte
		want   error
	}{
		{"a flipped byte in the ledger's journal", func(t *testing.T, dir string) {
			testkit.FlipJournalByte(t, filepath.Join(dir, "ledger", ledgerembedded.StoreDir))
		}, nil, node.ErrBadBackup},
		{"a missing manifest", func(t *testing.T, dir string) {
			require.NoError(t, os.Remove(filepath.Join(dir, node.ManifestFile)))
		}, nil, node.ErrBadBackup},
		{"a file the manifest does not list", func(t *testing.T, dir string) {
			require.NoError(t, os.WriteFile(filepath.Join(dir, "ledger", ledgerembedded.StoreDir, "999999.log"), []byte("x"), 0o600))
		}, nil, node.ErrBadBackup},
		{"a missing store file", func(t *testing.T, dir string) {
			require.NoError(t, os.Remove(filepath.Join(dir, "keyring.db")))
		}, nil, node.ErrBadBackup},
		{"a state record edited with the manifest rewritten to match", func(t *testing.T, dir string) {
			testkit.EditLedgerState(t, filepath.Join(dir, "ledger", ledgerembedded.StoreDir), "actor", `"role":"patient"`, `"role":"regulator"`)
			rewriteManifest(t, dir)
		}, nil, ledgerembedded.ErrCorrupt},
		{"another master key", func(*testing.T, string) {}, testkit.RandomBytes(t, 32), seal.ErrWrongMasterKey},
	}
	for _, tt := range tests {
		t.Run(tt.name+" is refused without touching the data dir", func(t *testing.T) {
			backup := testkit.CopyDir(t, good)
			tt.damage(t, backup)
			key := tt.key
			if key == nil {
				key = s.key
			}
			before := tree(t, s.dir)
			rep, err := node.Restore(t.Context(), node.RestoreConfig{From: backup, DataDir: s.dir, MasterKey: key})
			require.ErrorIs(t, err, tt.want)
			assert.Nil(t, rep)
			assert.Equal(t, before, tree(t, s.dir), "the data dir is unchanged")
		})
	}
	t.Run("the undamaged backup restores", func(t *testing.T) {
		_, err := node.Restore(t.Context(), node.RestoreConfig{From: testkit.CopyDir(t, good), DataDir: s.dir, MasterKey: s.key})
		require.NoError(t, err)
	})
	t.Run("a running node is not restored", func(t *testing.T) {
		s.open()
		defer s.close()
		_, err := s.n.Ingest.AwaitReconciled(t.Context())
		require.NoError(t, err)
		// The running node itself moves its event checkpoint on.
		before := tree(t, s.dir)
		delete(before, "events.checkpoint")
		_, err = node.Restore(t.Context(), node.RestoreConfig{From: testkit.CopyDir(t, good), DataDir: s.dir, MasterKey: s.key})
		require.ErrorIs(t, err, node.ErrNodeRunning)
		after := tree(t, s.dir)
		delete(after, "events.checkpoint")
		assert.Equal(t, before, after, "the data dir is unchanged")
	})
}

// rewriteManifest makes the backup's manifest list the files as they are.
func rewriteManifest(t *testing.T, dir string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, node.ManifestFile))
	require.NoError(t, err)
	var m node.Manifest
	require.NoError(t, json.Unmarshal(b, &m))
	m.Files = nil
	for p, f := range tree(t, dir) {
		if p == node.ManifestFile || f.dir {
			continue
		}
		m.Files = append(m.Files, node.FileEntry{Path: p, Size: f.size, SHA256: f.sha256})
	}
	b, err = json.Marshal(m)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, node.ManifestFile), b, 0o600))
}

type entry struct {
	dir    bool
	mode   fs.FileMode
	size   int64
	sha256 string
}

// tree maps every path under dir (slash-separated, relative) to its kind,
// mode, size and SHA-256.
func tree(t *testing.T, dir string) map[string]entry {
	t.Helper()
	out := map[string]entry{}
	require.NoError(t, filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		require.NoError(t, err)
		rel, err := filepath.Rel(dir, p)
		require.NoError(t, err)
		info, err := d.Info()
		require.NoError(t, err)
		e := entry{dir: d.IsDir(), mode: info.Mode()}
		if !d.IsDir() {
			b, err := os.ReadFile(p)
			require.NoError(t, err)
			sum := sha256.Sum256(b)
			e.size, e.sha256 = int64(len(b)), hex.EncodeToString(sum[:])
		}
		out[filepath.ToSlash(rel)] = e
		return nil
	}))
	return out
}

// TestBackupRouteNeedsTheAdminToken: GET /v1/admin/backup answers 401
// without the admin token and a tar stream ending in the manifest with it.
func TestBackupRouteNeedsTheAdminToken(t *testing.T) {
	s := newSite(t)
	for _, tt := range []struct {
		name, auth string
		want       int
	}{
		{"no token", "", http.StatusUnauthorized},
		{"a wrong token", "Bearer not-the-admin-token-at-all", http.StatusUnauthorized},
		{"the token in another scheme", "Basic " + adminToken, http.StatusUnauthorized},
		{"the admin token", "Bearer " + adminToken, http.StatusOK},
	} {
		t.Run(tt.name+fmt.Sprintf(" is answered %d", tt.want), func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, s.srv.URL+"/v1/admin/backup", nil)
			require.NoError(t, err)
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			require.Equal(t, tt.want, resp.StatusCode)
			if tt.want != http.StatusOK {
				var body wire.ErrorResponse
				require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
				assert.Equal(t, wire.CodeUnauthenticated, body.Error.Code)
				return
			}
			assert.Equal(t, "application/x-tar", resp.Header.Get("Content-Type"))
			tr := tar.NewReader(resp.Body)
			var last string
			for {
				h, err := tr.Next()
				if errors.Is(err, io.EOF) {
					break
				}
				require.NoError(t, err)
				last = h.Name
			}
			assert.Equal(t, node.ManifestFile, last, "the manifest is the last entry")
		})
	}
}

// TestReadBackupRefusesIncompleteStreams: a stream cut short, one without
// its manifest, or one naming a path outside the directory is not a
// backup.
func TestReadBackupRefusesIncompleteStreams(t *testing.T) {
	s := newSite(t)
	s.commit("dev-1", 5)
	var stream bytes.Buffer
	require.NoError(t, s.n.WriteBackup(t.Context(), &stream))
	whole := stream.Bytes()

	// entries re-packs the stream's entries, keeping those keep accepts.
	entries := func(keep func(*tar.Header) bool, extra ...*tar.Header) []byte {
		var out bytes.Buffer
		tw := tar.NewWriter(&out)
		tr := tar.NewReader(bytes.NewReader(whole))
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			require.NoError(t, err)
			if !keep(h) {
				continue
			}
			require.NoError(t, tw.WriteHeader(h))
			_, err = io.Copy(tw, tr)
			require.NoError(t, err)
		}
		for _, h := range extra {
			require.NoError(t, tw.WriteHeader(h))
			_, err := tw.Write(make([]byte, h.Size))
			require.NoError(t, err)
		}
		require.NoError(t, tw.Close())
		return out.Bytes()
	}
	all := func(*tar.Header) bool { return true }
	tests := []struct {
		name   string
		stream []byte
	}{
		{"a stream cut in the middle", whole[:len(whole)/2]},
		{"a stream without its manifest", entries(func(h *tar.Header) bool { return h.Name != node.ManifestFile })},
		{"a stream with an entry after the manifest", entries(all, &tar.Header{Typeflag: tar.TypeReg, Name: "late", Size: 1, Mode: 0o600})},
		{"a stream naming a path outside the directory", entries(func(h *tar.Header) bool { return h.Name != node.ManifestFile },
			&tar.Header{Typeflag: tar.TypeReg, Name: "../escaped", Size: 1, Mode: 0o600})},
		{"a stream with a symbolic link", entries(all, &tar.Header{Typeflag: tar.TypeSymlink, Name: "link", Linkname: "/etc/passwd"})},
	}
	for _, tt := range tests {
		t.Run(tt.name+" is refused", func(t *testing.T) {
			parent := t.TempDir()
			_, err := node.ReadBackup(t.Context(), bytes.NewReader(tt.stream), filepath.Join(parent, "backup"))
			require.ErrorIs(t, err, node.ErrBadBackup)
			assert.NoFileExists(t, filepath.Join(parent, "escaped"))
		})
	}
	t.Run("the whole stream is a backup", func(t *testing.T) {
		chk, err := node.ReadBackup(t.Context(), bytes.NewReader(whole), filepath.Join(t.TempDir(), "backup"))
		require.NoError(t, err)
		assert.Equal(t, s.n.Ledger.(*ledgerembedded.Ledger).Height(), chk.Ledger.Blocks)
	})
}

// TestOpenRemovesABackupLeftByACrash: the directory a backup is assembled
// in does not outlive a crash.
func TestOpenRemovesABackupLeftByACrash(t *testing.T) {
	dir := t.TempDir()
	stale := filepath.Join(dir, ".backup-123")
	require.NoError(t, os.MkdirAll(filepath.Join(stale, "ledger"), 0o700))
	n, err := node.Open(t.Context(), node.Config{DataDir: dir, MasterKey: testkit.RandomBytes(t, 32), AdminToken: adminToken})
	require.NoError(t, err)
	require.NoError(t, n.Close())
	assert.NoDirExists(t, stale)
}
