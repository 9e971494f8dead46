package embedded_test

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hyperledger/fabric-protos-go-apiv2/msp"
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
	t.Cleanup(func() { _ = l.Close() })

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
	if len(got) != len(want) {
		t.Fatalf("history has %d entries, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		wantTime := w.c.Timestamp.UTC().Format(time.RFC3339Nano)
		if got[i].TxID != w.c.TxID || got[i].IsDelete != w.isDelete || got[i].Value != w.value || got[i].Time != wantTime {
			t.Errorf("history[%d] = %+v, want tx %s delete=%v value=%q time %s", i, got[i], w.c.TxID, w.isDelete, w.value, wantTime)
		}
	}
	if !c1.Timestamp.Equal(start) {
		t.Errorf("first commit timestamp = %v, want the fake clock's %v", c1.Timestamp, start)
	}
}

func TestCreatorIdentity(t *testing.T) {
	dir := t.TempDir()
	l := openLedger(t, dir, nil)
	t.Cleanup(func() { _ = l.Close() })
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
			if err != nil {
				t.Fatalf("Submit: %v", err)
			}
			who := decode[Who](t, string(c.Payload))
			if who.MSPID != "HospitalMSP" || who.IsAdmin != tt.wantAdmin || who.IsClient == tt.wantAdmin {
				t.Errorf("who = %+v, want HospitalMSP admin=%v", who, tt.wantAdmin)
			}
			if who.TxID != c.TxID || who.Channel != "medprov" {
				t.Errorf("who = %+v, want tx %s on channel medprov", who, c.TxID)
			}
			id, err := base64.StdEncoding.DecodeString(who.ID)
			if err != nil {
				t.Fatalf("cid ID is not base64: %v", err)
			}
			if want := "x509::CN=" + tt.wantCN; !contains(string(id), want) {
				t.Errorf("cid ID = %q, want it to contain %q", id, want)
			}

			var si msp.SerializedIdentity
			if err := proto.Unmarshal(l.Identity(tt.asAdmin).Serialized, &si); err != nil {
				t.Fatalf("creator is not a SerializedIdentity: %v", err)
			}
			block, _ := pem.Decode(si.GetIdBytes())
			cert, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				t.Fatalf("creator cert: %v", err)
			}
			roots := x509.NewCertPool()
			roots.AppendCertsFromPEM(l.CACertPEM())
			if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
				t.Errorf("creator cert does not chain to the local CA: %v", err)
			}
		})
	}
	t.Run("admin-only transaction refuses the client", func(t *testing.T) {
		_, err := l.Submit(t.Context(), ledger.Proposal{Function: "AdminOnly", Args: []string{"x"}})
		var ce *ledger.ChaincodeError
		if !errors.As(err, &ce) {
			t.Fatalf("client AdminOnly error = %v, want ChaincodeError", err)
		}
		if _, err := l.Submit(t.Context(), ledger.Proposal{Function: "AdminOnly", Args: []string{"x"}, AsAdmin: true}); err != nil {
			t.Errorf("admin AdminOnly: %v", err)
		}
	})
	t.Run("private keys are readable by the owner only", func(t *testing.T) {
		keys, err := filepath.Glob(filepath.Join(dir, "msp", "*", "*", "key.pem"))
		if err != nil {
			t.Fatal(err)
		}
		ca, err := filepath.Glob(filepath.Join(dir, "msp", "ca", "key.pem"))
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, ca...)
		if len(keys) != 3 {
			t.Fatalf("found key files %v, want CA, admin and client", keys)
		}
		for _, k := range keys {
			fi, err := os.Stat(k)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("%s mode %v, want 0600", k, fi.Mode().Perm())
			}
		}
	})
	t.Run("transient data reaches the chaincode", func(t *testing.T) {
		out, err := l.Evaluate(t.Context(), ledger.Proposal{Function: "Transient", Args: []string{"secret"}, Transient: map[string][]byte{"secret": []byte("s3")}})
		if err != nil || string(out) != "s3" {
			t.Errorf("Transient = %q, %v; want s3", out, err)
		}
	})
}

func collect(t *testing.T, ch <-chan ledger.Event, n int) []ledger.Event {
	t.Helper()
	var got []ledger.Event
	for len(got) < n {
		ev, ok := <-ch
		if !ok {
			t.Fatalf("event channel closed after %d events, want %d", len(got), n)
		}
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
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	l = openLedger(t, dir, nil)
	t.Cleanup(func() { _ = l.Close() })
	ctx, cancel := context.WithCancel(t.Context())
	ch, err := l.Events(ctx, commits[1].Block)
	if err != nil {
		t.Fatal(err)
	}
	live := submit(t, l, "Emit", "live", "Happened")

	got := collect(t, ch, 3)
	want := []*ledger.Commit{commits[1], commits[2], live}
	for i, w := range want {
		if got[i].TxID != w.TxID || got[i].Block != w.Block || got[i].Name != "Happened" {
			t.Errorf("event %d = %+v, want Happened of tx %s in block %d", i, got[i], w.TxID, w.Block)
		}
	}
	if string(got[2].Payload) != "live" {
		t.Errorf("live event payload = %q, want live (the last SetEvent wins)", got[2].Payload)
	}
	cancel()
	for range ch {
	}
	if _, err := l.Submit(t.Context(), ledger.Proposal{Function: "PutThenFail", Args: []string{"x", "y"}}); err == nil {
		t.Fatal("PutThenFail succeeded")
	}
	ch2, err := l.Events(t.Context(), live.Block)
	if err != nil {
		t.Fatal(err)
	}
	next := submit(t, l, "Emit", "after-failure", "Happened")
	got = collect(t, ch2, 2)
	if got[0].TxID != live.TxID || got[1].TxID != next.TxID {
		t.Errorf("events = %+v, want %s then %s (no event from the failed tx)", got, live.TxID, next.TxID)
	}
}

func TestStateSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	l := openLedger(t, dir, nil)
	c := submit(t, l, "PutAsset", "alice", "a1", "v")
	submit(t, l, "Put", "k", "v1")
	submit(t, l, "Put", "k", "v2")
	height := l.Height()
	admin := l.Identity(true).CertPEM
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	l = openLedger(t, dir, nil)
	t.Cleanup(func() { _ = l.Close() })
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
			if got := tt.got(); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// editStore runs edit on the closed ledger's LevelDB store directly.
func editStore(t *testing.T, dir string, edit func(db *leveldb.DB) error) {
	t.Helper()
	db, err := leveldb.OpenFile(filepath.Join(dir, embedded.StoreDir), &opt.Options{ErrorIfMissing: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := edit(db); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
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
				i := indexOf(b, []byte("value-2"))
				if i < 0 {
					t.Fatal("value not found in block 2")
				}
				b[i+6] = 'X'
				return b
			})
		}},
		{name: "a consistently rewritten block is found through the chain", want: 2, change: func(t *testing.T, dir string) {
			l := openLedger(t, dir, nil)
			blk, err := l.Block(t.Context(), 2)
			if err != nil {
				t.Fatal(err)
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
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
		{name: "an altered header record is found", want: 4, change: func(t *testing.T, dir string) {
			rewrite(t, dir, embedded.BlockHeaderKey(4), func(b []byte) []byte {
				b[len(b)-2] ^= 1 // last byte of the data hash
				return b
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
			if err := l.Verify(t.Context()); err != nil {
				t.Fatalf("Verify before tampering: %v", err)
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			tt.change(t, dir)
			l = openLedger(t, dir, nil)
			defer l.Close()
			err := l.Verify(t.Context())
			var te *embedded.TamperError
			if !errors.As(err, &te) {
				t.Fatalf("Verify = %v, want *TamperError", err)
			}
			if te.Block != tt.want {
				t.Errorf("TamperError names block %d (%s), want %d", te.Block, te.Reason, tt.want)
			}
		})
	}
}

func indexOf(b, sub []byte) int {
	for i := 0; i+len(sub) <= len(b); i++ {
		if string(b[i:i+len(sub)]) == string(sub) {
			return i
		}
	}
	return -1
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
		t.Errorf("concurrent call: %v", err)
	}
	if got, want := evaluate(t, l, "Get", "counter"), strconv.Itoa(workers*perWorker); got != want {
		t.Errorf("counter = %s, want %s (no lost updates)", got, want)
	}
	if got := len(decode[[]Mod](t, evaluate(t, l, "History", "counter"))); got != workers*perWorker {
		t.Errorf("counter history has %d entries, want %d", got, workers*perWorker)
	}
	if got := decode[[]string](t, evaluate(t, l, "AllAssets", "w3")); len(got) != perWorker {
		t.Errorf("worker 3 assets = %v, want %d", got, perWorker)
	}
	if err := l.Verify(t.Context()); err != nil {
		t.Errorf("Verify: %v", err)
	}
}

func TestCloseRefusesNewWork(t *testing.T) {
	l := openLedger(t, t.TempDir(), nil)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Submit(t.Context(), ledger.Proposal{Function: "Put", Args: []string{"k", "v"}}); !errors.Is(err, ledger.ErrUnavailable) {
		t.Errorf("Submit after Close = %v, want ErrUnavailable", err)
	}
	if _, err := l.Tx(t.Context(), "x"); !errors.Is(err, ledger.ErrUnavailable) {
		t.Errorf("Tx after Close = %v, want ErrUnavailable", err)
	}
	if _, err := l.Events(t.Context(), 0); !errors.Is(err, ledger.ErrUnavailable) {
		t.Errorf("Events after Close = %v, want ErrUnavailable", err)
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
}
