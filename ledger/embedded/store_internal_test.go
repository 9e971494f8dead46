package embedded

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/hyperledger/fabric-chaincode-go/v2/shim"
	"github.com/hyperledger/fabric-protos-go-apiv2/peer"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/opt"

	"github.com/medprov/medprov/ledger"
)

// TestViewSeesThePendingBlock checks what a transaction executed inside
// the committer reads: committed state overlaid with the writes of the
// block being built, deletions included.
func TestViewSeesThePendingBlock(t *testing.T) {
	db, err := leveldb.OpenFile(filepath.Join(t.TempDir(), "store"), nil)
	require.NoError(t, err, "open the store")
	t.Cleanup(func() { assert.NoError(t, db.Close(), "close the store") })
	committed := new(leveldb.Batch)
	for _, k := range []string{"a", "c", "e", "g"} {
		committed.Put(stateKey(k), stateValue(Version{Block: 1}, []byte("old-"+k)))
	}
	committed.Put(historyKey("zz", Version{Block: 1}), nil) // not state: must not show up
	require.NoError(t, db.Write(committed, &opt.WriteOptions{Sync: true}), "write committed state")
	snap, err := db.GetSnapshot()
	require.NoError(t, err, "snapshot")
	defer snap.Release()

	pb := newPendingBlock(2)
	sim := &simulation{writes: []KeyWrite{
		{Key: "b", Value: []byte("new-b")}, // a key between committed keys
		{Key: "c", Delete: true},           // a deleted committed key
		{Key: "d", Delete: true},           // a deletion of an absent key
		{Key: "e", Value: []byte("new-e")}, // an overwritten committed key
		{Key: "h", Value: []byte("new-h")}, // after every committed key
	}}
	require.NoError(t, pb.apply(&proposal{txID: "t1"}, time.Unix(1, 0), sim), "apply")
	v := &view{snap: snap, block: pb}

	tests := []struct {
		name       string
		start, end string
		want       string
	}{
		{name: "a full scan merges both", start: "", end: "", want: "[a=old-a b=new-b e=new-e g=old-g h=new-h]"},
		{name: "bounds apply to pending writes", start: "b", end: "g", want: "[b=new-b e=new-e]"},
		{name: "a range holding only a deletion is empty", start: "c", end: "d", want: "[]"},
		{name: "a range past committed keys finds pending ones", start: "gg", end: "", want: "[h=new-h]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			it := v.stateIterator(tt.start, tt.end)
			defer it.release()
			got := []string{}
			for it.next() {
				_, val := splitStateValue(it.value)
				got = append(got, string(it.key)+"="+string(val))
			}
			require.NoError(t, it.err(), "iterate")
			assert.Equal(t, tt.want, fmt.Sprint(got), "range [%q, %q)", tt.start, tt.end)
		})
	}
	points := []struct {
		key, want string
	}{{"a", "old-a"}, {"b", "new-b"}, {"c", "<absent>"}, {"d", "<absent>"}, {"e", "new-e"}, {"x", "<absent>"}}
	for _, p := range points {
		t.Run("point read of "+p.key, func(t *testing.T) {
			raw, err := v.getState(p.key)
			require.NoError(t, err, "getState(%q)", p.key)
			got := "<absent>"
			if raw != nil {
				_, val := splitStateValue(raw)
				got = string(val)
			}
			assert.Equal(t, p.want, got, "getState(%q)", p.key)
		})
	}
}

// putChaincode writes its two arguments as key and value.
type putChaincode struct{}

func (putChaincode) Init(shim.ChaincodeStubInterface) *peer.Response { return shim.Success(nil) }

func (putChaincode) Invoke(stub shim.ChaincodeStubInterface) *peer.Response {
	_, args := stub.GetFunctionAndParameters()
	if err := stub.PutState(args[0], []byte(args[1])); err != nil {
		return shim.Error(err.Error())
	}
	return shim.Success(nil)
}

// TestHistoryInsideTheCommitter checks GetHistoryForKey for a transaction
// the committer executes itself: modifications by earlier transactions of
// the block being built come first, then the committed ones.
func TestHistoryInsideTheCommitter(t *testing.T) {
	l, err := New(t.Context(), Config{Dir: t.TempDir(), Chaincode: putChaincode{}, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err, "New")
	t.Cleanup(func() { assert.NoError(t, l.Close(), "Close") })
	committed, err := l.Submit(t.Context(), ledger.Proposal{Function: "put", Args: []string{"k", "v1"}})
	require.NoError(t, err, "Submit")
	snap, release, err := l.snapshot(t.Context())
	require.NoError(t, err, "snapshot")
	defer release()
	pb := newPendingBlock(l.Height())
	pendingTime := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	require.NoError(t, pb.apply(&proposal{txID: "pending-tx"}, pendingTime, &simulation{writes: []KeyWrite{{Key: "k", Value: []byte("v2")}}}), "apply")
	st := newStub(t.Context(), "ch", &proposal{txID: "query"}, &view{snap: snap, block: pb})
	it, err := st.GetHistoryForKey("k")
	require.NoError(t, err, "GetHistoryForKey")
	var got []string
	for it.HasNext() {
		m, err := it.Next()
		require.NoError(t, err, "history Next")
		got = append(got, fmt.Sprintf("%s=%s@%s", m.GetTxId(), m.GetValue(), m.GetTimestamp().AsTime().UTC().Format(time.RFC3339)))
	}
	want := []string{"pending-tx=v2@2026-05-06T07:08:09Z", committed.TxID + "=v1@" + committed.Timestamp.UTC().Format(time.RFC3339)}
	assert.Equal(t, want, got, "history")
	require.NoError(t, st.finish(), "finish")
	assert.False(t, it.HasNext(), "history iterator has entries after the simulation ended")
}
