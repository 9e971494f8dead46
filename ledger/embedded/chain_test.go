package embedded_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hyperledger/fabric-protos-go-apiv2/msp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/opt"
	"google.golang.org/protobuf/proto"

	"github.com/medprov/medprov/ledger"
	"github.com/medprov/medprov/ledger/embedded"
)

func TestHistoryIsNewestFirst(t *testing.T) {
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	clock := newFakeClock(start)
	l := openLedger(t, t.TempDir(), clock.Now)
	closeAtEnd(t, l)

	c1 := submit(t, l, "Put", "k", "v1")
	c2 := submit(t, l, "Put", "k", "v2")
	c3 := submit(t, l, "Del", "k")
	c4 := submit(t, l, "Put", "k", "v4")
	submit(t, l, "Put", "k2", "other key")

	got := decode[[]Mod](t, evaluate(t, l, "History", "k"))
	want := []struct {
		c        *ledger.Commit
		isDelete bool
		value    string
	}{{c4, false, "v4"}, {c3, true, ""}, {c2, false, "v2"}, {c1, false, "v1"}}
	require.Len(t, got, len(want), "history entries")
	for i, w := range want {
		wantMod := Mod{TxID: w.c.TxID, Time: w.c.Timestamp.UTC().Format(time.RFC3339Nano), IsDelete: w.isDelete, Value: w.value}
		assert.Equal(t, wantMod, got[i], "history[%d]", i)
	}
	assert.True(t, c1.Timestamp.Equal(start), "first commit timestamp = %v, want the fake clock's %v", c1.Timestamp, start)
}

func TestCreatorIdentity(t *testing.T) {
	dir := t.TempDir()
	l := openLedger(t, dir, nil)
	closeAtEnd(t, l)
	tests := []struct {
		name      string
		asAdmin   bool
		wantAdmin bool
		wantCN    string
	}{
		{name: "client submits with OU client", asAdmin: false, wantAdmin: false, wantCN: "User1@hospitalmsp"},
		{name: "admin submits with OU admin", asAdmin: true, wantAdmin: true, wantCN: "Admin@hospitalmsp"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := l.Submit(t.Context(), ledger.Proposal{Function: "WhoAmI", AsAdmin: tt.asAdmin})
			require.NoError(t, err, "Submit")
			who := decode[Who](t, string(c.Payload))
			assert.Equal(t, "HospitalMSP", who.MSPID, "MSP ID")
			assert.Equal(t, tt.wantAdmin, who.IsAdmin, "OU admin")
			assert.Equal(t, !tt.wantAdmin, who.IsClient, "OU client")
			assert.Equal(t, c.TxID, who.TxID, "transaction ID the chaincode sees")
			assert.Equal(t, "medprov", who.Channel, "channel")
			id, err := base64.StdEncoding.DecodeString(who.ID)
			require.NoError(t, err, "cid ID is not base64")
			assert.Contains(t, string(id), "x509::CN="+tt.wantCN, "cid ID")

			var si msp.SerializedIdentity
			require.NoError(t, proto.Unmarshal(l.Identity(tt.asAdmin).Serialized, &si), "creator is not a SerializedIdentity")
			block, _ := pem.Decode(si.GetIdBytes())
			require.NotNil(t, block, "creator cert is not PEM")
			cert, err := x509.ParseCertificate(block.Bytes)
			require.NoError(t, err, "creator cert")
			roots := x509.NewCertPool()
			roots.AppendCertsFromPEM(l.CACertPEM())
			_, err = cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
			assert.NoError(t, err, "creator cert does not chain to the local CA")
		})
	}
	t.Run("private keys are readable by the owner only", func(t *testing.T) {
		keys, err := filepath.Glob(filepath.Join(dir, "msp", "*", "*", "key.pem"))
		require.NoError(t, err)
		ca, err := filepath.Glob(filepath.Join(dir, "msp", "ca", "key.pem"))
		require.NoError(t, err)
		keys = append(keys, ca...)
		require.Len(t, keys, 5, "key files: want CA, admin, client, orderer and peer")
		for _, k := range keys {
			fi, err := os.Stat(k)
			require.NoError(t, err)
			assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "mode of %s", k)
		}
	})
	t.Run("transient data reaches the chaincode", func(t *testing.T) {
		out, err := l.Evaluate(t.Context(), ledger.Proposal{Function: "Transient", Args: []string{"secret"}, Transient: map[string][]byte{"secret": []byte("s3")}})
		require.NoError(t, err, "Transient")
		assert.Equal(t, "s3", string(out), "Transient")
	})
}

func collect(t *testing.T, ch <-chan ledger.Event, n int) []ledger.Event {
	t.Helper()
	var got []ledger.Event
	for len(got) < n {
		ev, ok := <-ch
		require.True(t, ok, "event channel closed after %d events, want %d", len(got), n)
		got = append(got, ev)
	}
	return got
}

func TestEvents(t *testing.T) {
	dir := t.TempDir()
	l := openLedger(t, dir, nil)
	var commits []*ledger.Commit
	for i := range 3 {
		commits = append(commits, submit(t, l, "Emit", fmt.Sprintf("k%d", i), "Happened"))
	}
	submit(t, l, "Put", "quiet", "no event")
	require.NoError(t, l.Close(), "Close")

	l = openLedger(t, dir, nil)
	closeAtEnd(t, l)
	ctx, cancel := context.WithCancel(t.Context())
	ch, err := l.Events(ctx, commits[1].Block)
	require.NoError(t, err, "Events after reopening")
	live := submit(t, l, "Emit", "live", "Happened")

	got := collect(t, ch, 3)
	want := []*ledger.Commit{commits[1], commits[2], live}
	type ref struct {
		Block uint64
		TxID  string
		Name  string
	}
	for i, w := range want {
		assert.Equal(t, ref{w.Block, w.TxID, "Happened"}, ref{got[i].Block, got[i].TxID, got[i].Name}, "event %d", i)
	}
	assert.Equal(t, "live", string(got[2].Payload), "live event payload (the last SetEvent wins)")
	cancel()
	for range ch {
	}
	_, err = l.Submit(t.Context(), ledger.Proposal{Function: "PutThenFail", Args: []string{"x", "y"}})
	require.Error(t, err, "PutThenFail")
	ch2, err := l.Events(t.Context(), live.Block)
	require.NoError(t, err, "Events")
	next := submit(t, l, "Emit", "after-failure", "Happened")
	got = collect(t, ch2, 2)
	assert.Equal(t, []string{live.TxID, next.TxID}, []string{got[0].TxID, got[1].TxID}, "events (none from the failed tx)")
}

func TestStateSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	l := openLedger(t, dir, nil)
	c := submit(t, l, "PutAsset", "alice", "a1", "v")
	submit(t, l, "Put", "k", "v1")
	submit(t, l, "Put", "k", "v2")
	height := l.Height()
	admin := l.Identity(true).CertPEM
	require.NoError(t, l.Close(), "Close")

	l = openLedger(t, dir, nil)
	closeAtEnd(t, l)
	tests := []struct {
		name string
		got  func() any
		want any
	}{
		{name: "height is kept", got: func() any { return l.Height() }, want: height},
		{name: "state is kept", got: func() any { return evaluate(t, l, "Get", "k") }, want: "v2"},
		{name: "composite keys are kept", got: func() any { return evaluate(t, l, "AllAssets", "alice") }, want: `["a1"]`},
		{name: "history is kept", got: func() any { return len(decode[[]Mod](t, evaluate(t, l, "History", "k"))) }, want: 2},
		{name: "the MSP is reused", got: func() any { return string(l.Identity(true).CertPEM) }, want: string(admin)},
		{name: "transactions are found", got: func() any {
			info, err := l.Tx(t.Context(), c.TxID)
			if err != nil {
				return err
			}
			return info.Block
		}, want: c.Block},
		{name: "the chain verifies", got: func() any { return l.Verify(t.Context()) }, want: nil},
		{name: "new blocks extend the chain", got: func() any { return submit(t, l, "Put", "k", "v3").Block }, want: height},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.got())
		})
	}
}

// editStore runs edit on the closed ledger's LevelDB store directly.
func editStore(t *testing.T, dir string, edit func(db *leveldb.DB) error) {
	t.Helper()
	db, err := leveldb.OpenFile(filepath.Join(dir, embedded.StoreDir), &opt.Options{ErrorIfMissing: true})
	require.NoError(t, err, "open the store")
	require.NoError(t, edit(db), "edit the store")
	require.NoError(t, db.Close(), "close the store")
}

// rewrite changes one stored record directly in the store.
func rewrite(t *testing.T, dir string, key []byte, change func([]byte) []byte) {
	t.Helper()
	editStore(t, dir, func(db *leveldb.DB) error {
		v, err := db.Get(key, nil)
		if err != nil {
			return fmt.Errorf("record %x: %w", key, err)
		}
		return db.Put(key, change(v), &opt.WriteOptions{Sync: true})
	})
}

// rewriteTx changes the stored bytes of the only transaction of block n.
func rewriteTx(t *testing.T, dir string, n uint64, change func([]byte) []byte) {
	t.Helper()
	rewrite(t, dir, embedded.BlockTxKey(n, 0), change)
}

func TestVerifyDetectsTampering(t *testing.T) {
	tests := []struct {
		name   string
		change func(t *testing.T, dir string)
		want   uint64
	}{
		{name: "an altered transaction byte is found in its block", want: 2, change: func(t *testing.T, dir string) {
			rewriteTx(t, dir, 2, func(b []byte) []byte {
				i := bytes.Index(b, []byte("value-2"))
				require.GreaterOrEqual(t, i, 0, "value not found in block 2")
				b[i+6] = 'X'
				return b
			})
		}},
		{name: "a consistently rewritten block is found through the chain", want: 2, change: func(t *testing.T, dir string) {
			l := openLedger(t, dir, nil)
			blk, err := l.Block(t.Context(), 2)
			require.NoError(t, err, "Block 2")
			require.NoError(t, l.Close(), "Close")
			forged := embedded.ForgeBlock(blk, func(tx *embedded.Transaction) { tx.Args[1] = "forged" })
			editStore(t, dir, func(db *leveldb.DB) error {
				b := new(leveldb.Batch)
				for k, v := range forged {
					b.Put([]byte(k), v)
				}
				return db.Write(b, &opt.WriteOptions{Sync: true})
			})
		}},
		{name: "an altered event index entry is found", want: 5, change: func(t *testing.T, dir string) {
			rewrite(t, dir, embedded.EventKey(5, 0), func(b []byte) []byte {
				b[len(b)-1] ^= 1
				return b
			})
		}},
		{name: "a truncated last block is found", want: 5, change: func(t *testing.T, dir string) {
			rewriteTx(t, dir, 5, func(b []byte) []byte { return b[:len(b)-3] })
		}},
		{name: "a deleted transaction record is found", want: 3, change: func(t *testing.T, dir string) {
			editStore(t, dir, func(db *leveldb.DB) error {
				return db.Delete(embedded.BlockTxKey(3, 0), &opt.WriteOptions{Sync: true})
			})
		}},
		{name: "an altered data hash in a header record is found", want: 4, change: func(t *testing.T, dir string) {
			rewrite(t, dir, embedded.BlockHeaderKey(4), func(b []byte) []byte {
				b[len(b)-2-33] ^= 1 // last byte of the data hash, before the write-set hash
				return b
			})
		}},
		{name: "an altered write-set hash in a header record is found", want: 4, change: func(t *testing.T, dir string) {
			rewrite(t, dir, embedded.BlockHeaderKey(4), func(b []byte) []byte {
				b[len(b)-2] ^= 1 // last byte of the write-set hash
				return b
			})
		}},
		{name: "a block whose write set was rewritten with its data hash is found through the chain", want: 3, change: func(t *testing.T, dir string) {
			l := openLedger(t, dir, nil)
			blk, err := l.Block(t.Context(), 3)
			require.NoError(t, err, "Block 3")
			require.NoError(t, l.Close(), "Close")
			forged := embedded.ForgeBlock(blk, func(tx *embedded.Transaction) { tx.Writes[0].Value = []byte("forged") })
			editStore(t, dir, func(db *leveldb.DB) error {
				b := new(leveldb.Batch)
				for k, v := range forged {
					b.Put([]byte(k), v)
				}
				return db.Write(b, &opt.WriteOptions{Sync: true})
			})
		}},
		{name: "a deleted event index entry is found", want: 5, change: func(t *testing.T, dir string) {
			editStore(t, dir, func(db *leveldb.DB) error {
				return db.Delete(embedded.EventKey(5, 0), &opt.WriteOptions{Sync: true})
			})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			l := openLedger(t, dir, nil)
			for i := 1; i <= 4; i++ {
				submit(t, l, "Put", "k"+strconv.Itoa(i), "value-"+strconv.Itoa(i))
			}
			submit(t, l, "Emit", "k", "Happened")
			// Later blocks, so that the tampered ones lie beyond the
			// start-up check: only Verify can find them.
			for i := range 8 {
				submit(t, l, "Put", "later", strconv.Itoa(i))
			}
			require.NoError(t, l.Verify(t.Context()), "Verify before tampering")
			require.NoError(t, l.Close(), "Close")
			tt.change(t, dir)

			_, err := embedded.VerifyDir(t.Context(), dir)
			assertTamperedAt(t, err, tt.want, "", "VerifyDir")
			l = openLedger(t, dir, nil)
			closeAtEnd(t, l)
			assertTamperedAt(t, l.Verify(t.Context()), tt.want, "", "Verify")
		})
	}
}

// assertTamperedAt asserts that err is a *TamperError naming block and
// objectType, and that it matches ErrCorrupt.
func assertTamperedAt(t *testing.T, err error, block uint64, objectType string, what string) {
	t.Helper()
	var te *embedded.TamperError
	require.ErrorAs(t, err, &te, what)
	assert.ErrorIs(t, err, embedded.ErrCorrupt, what)
	assert.Equal(t, block, te.Block, "%s: block the TamperError names (%s)", what, te.Reason)
	assert.Equal(t, objectType, te.ObjectType, "%s: object type the TamperError names (%s)", what, te.Reason)
}

func TestConcurrentSubmits(t *testing.T) {
	l := newLedger(t)
	const workers, perWorker = 8, 15
	var wg sync.WaitGroup
	errs := make(chan error, workers*perWorker)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWorker {
				// Every worker increments the same counter (MVCC conflicts)
				// and writes keys of its own.
				if _, err := l.Submit(t.Context(), ledger.Proposal{Function: "Incr", Args: []string{"counter"}}); err != nil {
					errs <- err
				}
				if _, err := l.Submit(t.Context(), ledger.Proposal{Function: "PutAsset", Args: []string{"w" + strconv.Itoa(w), strconv.Itoa(i), "v"}}); err != nil {
					errs <- err
				}
				if _, err := l.Evaluate(t.Context(), ledger.Proposal{Function: "Get", Args: []string{"counter"}}); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		assert.NoError(t, err, "concurrent call")
	}
	assert.Equal(t, strconv.Itoa(workers*perWorker), evaluate(t, l, "Get", "counter"), "counter (no lost updates)")
	assert.Len(t, decode[[]Mod](t, evaluate(t, l, "History", "counter")), workers*perWorker, "counter history")
	assert.Len(t, decode[[]string](t, evaluate(t, l, "AllAssets", "w3")), perWorker, "worker 3 assets")
	assert.NoError(t, l.Verify(t.Context()), "Verify")
}

func TestCloseRefusesNewWork(t *testing.T) {
	l := openLedger(t, t.TempDir(), nil)
	require.NoError(t, l.Close(), "Close")
	_, err := l.Submit(t.Context(), ledger.Proposal{Function: "Put", Args: []string{"k", "v"}})
	assert.ErrorIs(t, err, ledger.ErrUnavailable, "Submit after Close")
	_, err = l.Tx(t.Context(), "x")
	assert.ErrorIs(t, err, ledger.ErrUnavailable, "Tx after Close")
	_, err = l.Events(t.Context(), 0)
	assert.ErrorIs(t, err, ledger.ErrUnavailable, "Events after Close")
	assert.NoError(t, l.Close(), "second Close")
}
