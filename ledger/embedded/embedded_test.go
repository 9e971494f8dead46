package embedded_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/hyperledger/fabric-chaincode-go/v2/pkg/cid"
	"github.com/hyperledger/fabric-contract-api-go/v2/contractapi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/medprov/medprov/ledger"
	"github.com/medprov/medprov/ledger/embedded"
)

// testContract exercises the stub functions the medprov chaincode uses.
type testContract struct {
	contractapi.Contract
}

// Put writes key=value.
func (c *testContract) Put(ctx contractapi.TransactionContextInterface, key, value string) error {
	return ctx.GetStub().PutState(key, []byte(value))
}

// Get returns the committed value of key ("" if absent).
func (c *testContract) Get(ctx contractapi.TransactionContextInterface, key string) (string, error) {
	v, err := ctx.GetStub().GetState(key)
	return string(v), err
}

// Del deletes key.
func (c *testContract) Del(ctx contractapi.TransactionContextInterface, key string) error {
	return ctx.GetStub().DelState(key)
}

// PutThenGet writes key=value and returns what GetState then sees.
func (c *testContract) PutThenGet(ctx contractapi.TransactionContextInterface, key, value string) (string, error) {
	if err := ctx.GetStub().PutState(key, []byte(value)); err != nil {
		return "", err
	}
	v, err := ctx.GetStub().GetState(key)
	return "seen:" + string(v), err
}

// PutThenFail writes and then refuses the transaction.
func (c *testContract) PutThenFail(ctx contractapi.TransactionContextInterface, key, value string) error {
	if err := ctx.GetStub().PutState(key, []byte(value)); err != nil {
		return err
	}
	if err := ctx.GetStub().SetEvent("Failed", []byte(key)); err != nil {
		return err
	}
	return errors.New("refused on purpose")
}

// PutThenPanic writes and then panics.
func (c *testContract) PutThenPanic(ctx contractapi.TransactionContextInterface, key, value string) error {
	if err := ctx.GetStub().PutState(key, []byte(value)); err != nil {
		return err
	}
	panic("chaincode bug")
}

// PutAsset writes asset (owner, id) under a composite key.
func (c *testContract) PutAsset(ctx contractapi.TransactionContextInterface, owner, id, value string) error {
	k, err := ctx.GetStub().CreateCompositeKey("asset", []string{owner, id})
	if err != nil {
		return err
	}
	return ctx.GetStub().PutState(k, []byte(value))
}

// Page is one page of a paged query.
type Page struct {
	Keys     []string `json:"keys"`
	Bookmark string   `json:"bookmark"`
	Count    int32    `json:"count"`
}

// ListAssets lists asset ids of owner ("" = all owners) one page at a time.
func (c *testContract) ListAssets(ctx contractapi.TransactionContextInterface, owner string, pageSize int, bookmark string) (*Page, error) {
	var attrs []string
	if owner != "" {
		attrs = []string{owner}
	}
	it, meta, err := ctx.GetStub().GetStateByPartialCompositeKeyWithPagination("asset", attrs, int32(pageSize), bookmark)
	if err != nil {
		return nil, err
	}
	defer it.Close()
	p := &Page{Keys: []string{}, Bookmark: meta.GetBookmark(), Count: meta.GetFetchedRecordsCount()}
	for it.HasNext() {
		kv, err := it.Next()
		if err != nil {
			return nil, err
		}
		_, parts, err := ctx.GetStub().SplitCompositeKey(kv.GetKey())
		if err != nil {
			return nil, err
		}
		p.Keys = append(p.Keys, parts[0]+"/"+parts[1]+"="+string(kv.GetValue()))
	}
	return p, nil
}

// AllAssets lists every asset of owner without pagination.
func (c *testContract) AllAssets(ctx contractapi.TransactionContextInterface, owner string) ([]string, error) {
	it, err := ctx.GetStub().GetStateByPartialCompositeKey("asset", []string{owner})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	out := []string{}
	for it.HasNext() {
		kv, err := it.Next()
		if err != nil {
			return nil, err
		}
		_, parts, err := ctx.GetStub().SplitCompositeKey(kv.GetKey())
		if err != nil {
			return nil, err
		}
		out = append(out, parts[1])
	}
	return out, nil
}

// Range lists the simple keys in [start, end).
func (c *testContract) Range(ctx contractapi.TransactionContextInterface, start, end string) ([]string, error) {
	it, err := ctx.GetStub().GetStateByRange(start, end)
	if err != nil {
		return nil, err
	}
	defer it.Close()
	out := []string{}
	for it.HasNext() {
		kv, err := it.Next()
		if err != nil {
			return nil, err
		}
		out = append(out, kv.GetKey())
	}
	return out, nil
}

// RangePage lists one page of simple keys in [start, end).
func (c *testContract) RangePage(ctx contractapi.TransactionContextInterface, start, end string, pageSize int, bookmark string) (*Page, error) {
	it, meta, err := ctx.GetStub().GetStateByRangeWithPagination(start, end, int32(pageSize), bookmark)
	if err != nil {
		return nil, err
	}
	defer it.Close()
	p := &Page{Keys: []string{}, Bookmark: meta.GetBookmark(), Count: meta.GetFetchedRecordsCount()}
	for it.HasNext() {
		kv, err := it.Next()
		if err != nil {
			return nil, err
		}
		p.Keys = append(p.Keys, kv.GetKey())
	}
	return p, nil
}

// PageThenPut runs a paginated query and then writes, which Fabric refuses.
func (c *testContract) PageThenPut(ctx contractapi.TransactionContextInterface, key string) error {
	it, _, err := ctx.GetStub().GetStateByRangeWithPagination("", "", 10, "")
	if err != nil {
		return err
	}
	if err := it.Close(); err != nil {
		return err
	}
	return ctx.GetStub().PutState(key, []byte("x"))
}

// Mod is one entry of a key's history.
type Mod struct {
	TxID     string `json:"txId"`
	Time     string `json:"time"`
	IsDelete bool   `json:"isDelete"`
	Value    string `json:"value"`
}

// History returns the history of key, as GetHistoryForKey yields it.
func (c *testContract) History(ctx contractapi.TransactionContextInterface, key string) ([]Mod, error) {
	it, err := ctx.GetStub().GetHistoryForKey(key)
	if err != nil {
		return nil, err
	}
	defer it.Close()
	out := []Mod{}
	for it.HasNext() {
		m, err := it.Next()
		if err != nil {
			return nil, err
		}
		out = append(out, Mod{TxID: m.GetTxId(), Time: m.GetTimestamp().AsTime().UTC().Format(time.RFC3339Nano), IsDelete: m.GetIsDelete(), Value: string(m.GetValue())})
	}
	return out, nil
}

// Who describes the creator as cid sees it.
type Who struct {
	MSPID    string `json:"mspId"`
	ID       string `json:"id"`
	IsAdmin  bool   `json:"isAdmin"`
	IsClient bool   `json:"isClient"`
	TxID     string `json:"txId"`
	Channel  string `json:"channel"`
	TxTime   string `json:"txTime"`
}

// WhoAmI reports the creator identity and transaction context.
func (c *testContract) WhoAmI(ctx contractapi.TransactionContextInterface) (*Who, error) {
	id := ctx.GetClientIdentity()
	mspID, err := id.GetMSPID()
	if err != nil {
		return nil, err
	}
	name, err := id.GetID()
	if err != nil {
		return nil, err
	}
	isAdmin, err := cid.HasOUValue(ctx.GetStub(), "admin")
	if err != nil {
		return nil, err
	}
	isClient, err := cid.HasOUValue(ctx.GetStub(), "client")
	if err != nil {
		return nil, err
	}
	ts, err := ctx.GetStub().GetTxTimestamp()
	if err != nil {
		return nil, err
	}
	return &Who{MSPID: mspID, ID: name, IsAdmin: isAdmin, IsClient: isClient, TxID: ctx.GetStub().GetTxID(),
		Channel: ctx.GetStub().GetChannelID(), TxTime: ts.AsTime().UTC().Format(time.RFC3339Nano)}, nil
}

// Emit writes key and sets two events; only the last must be delivered.
func (c *testContract) Emit(ctx contractapi.TransactionContextInterface, key, name string) error {
	if err := ctx.GetStub().SetEvent("Overwritten", []byte("first")); err != nil {
		return err
	}
	if err := ctx.GetStub().SetEvent(name, []byte(key)); err != nil {
		return err
	}
	return ctx.GetStub().PutState(key, []byte(name))
}

// Incr increments the integer stored at key (read-modify-write).
func (c *testContract) Incr(ctx contractapi.TransactionContextInterface, key string) (int, error) {
	v, err := ctx.GetStub().GetState(key)
	if err != nil {
		return 0, err
	}
	n := 0
	if v != nil {
		if n, err = strconv.Atoi(string(v)); err != nil {
			return 0, err
		}
	}
	n++
	return n, ctx.GetStub().PutState(key, []byte(strconv.Itoa(n)))
}

// Transient returns the transient value under name.
func (c *testContract) Transient(ctx contractapi.TransactionContextInterface, name string) (string, error) {
	m, err := ctx.GetStub().GetTransient()
	if err != nil {
		return "", err
	}
	return string(m[name]), nil
}

// Unsupported calls a stub function the embedded ledger does not provide.
func (c *testContract) Unsupported(ctx contractapi.TransactionContextInterface) error {
	_, err := ctx.GetStub().GetPrivateData("coll", "k")
	return err
}

func newChaincode(t testing.TB) *contractapi.ContractChaincode {
	t.Helper()
	cc, err := contractapi.NewChaincode(&testContract{})
	require.NoError(t, err, "build test chaincode")
	return cc
}

// fakeClock hands out strictly increasing timestamps.
type fakeClock struct {
	next chan time.Time
}

func newFakeClock(start time.Time) *fakeClock {
	c := &fakeClock{next: make(chan time.Time, 1)}
	c.next <- start
	return c
}

func (c *fakeClock) Now() time.Time {
	t := <-c.next
	c.next <- t.Add(time.Second)
	return t
}

func openLedger(t testing.TB, dir string, now func() time.Time) *embedded.Ledger {
	t.Helper()
	l, err := embedded.New(t.Context(), embedded.Config{Dir: dir, Chaincode: newChaincode(t), Now: now, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err, "New")
	return l
}

func newLedger(t testing.TB) *embedded.Ledger {
	t.Helper()
	l := openLedger(t, t.TempDir(), nil)
	closeAtEnd(t, l)
	return l
}

// closeAtEnd closes l when the test ends.
func closeAtEnd(t testing.TB, l *embedded.Ledger) {
	t.Helper()
	t.Cleanup(func() { assert.NoError(t, l.Close(), "Close") })
}

func submit(t testing.TB, l ledger.Transactor, fn string, args ...string) *ledger.Commit {
	t.Helper()
	c, err := l.Submit(t.Context(), ledger.Proposal{Function: fn, Args: args})
	require.NoError(t, err, "Submit %s%q", fn, args)
	return c
}

func evaluate(t testing.TB, l ledger.Transactor, fn string, args ...string) string {
	t.Helper()
	out, err := l.Evaluate(t.Context(), ledger.Proposal{Function: fn, Args: args})
	require.NoError(t, err, "Evaluate %s%q", fn, args)
	return string(out)
}

func decode[T any](t testing.TB, s string) T {
	t.Helper()
	var v T
	require.NoError(t, json.Unmarshal([]byte(s), &v), "decode %q", s)
	return v
}

// TestFirstBlockFollowsGenesis checks the embedded ledger's block numbers;
// the rest of Submit, Evaluate and Tx is ledgertest's (conformance_test.go).
func TestFirstBlockFollowsGenesis(t *testing.T) {
	l := newLedger(t)
	c := submit(t, l, "Put", "k1", "v1")
	assert.Equal(t, uint64(1), c.Block, "block of the first transaction (block 0 is genesis)")
	assert.Equal(t, uint64(2), l.Height(), "height")
}

func TestFailedTransactionWritesNothing(t *testing.T) {
	tests := []struct {
		name     string
		function string
		ctx      func(context.Context) context.Context
	}{
		{name: "a chaincode error writes nothing", function: "PutThenFail"},
		{name: "a chaincode panic writes nothing", function: "PutThenPanic"},
		{name: "a cancelled context writes nothing", function: "Put", ctx: func(ctx context.Context) context.Context {
			c, cancel := context.WithCancel(ctx)
			cancel()
			return c
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLedger(t)
			submit(t, l, "Put", "k", "before")
			height := l.Height()
			ctx := t.Context()
			if tt.ctx != nil {
				ctx = tt.ctx(ctx)
			}
			_, err := l.Submit(ctx, ledger.Proposal{Function: tt.function, Args: []string{"k", "after"}})
			require.Error(t, err, "Submit")
			if tt.ctx == nil {
				var ce *ledger.ChaincodeError
				if assert.ErrorAs(t, err, &ce) {
					assert.NotEmpty(t, ce.TxID, "ChaincodeError TxID")
					assert.GreaterOrEqual(t, ce.Status, int32(400), "ChaincodeError status")
				}
			}
			assert.Equal(t, "before", evaluate(t, l, "Get", "k"), "k after the failed tx")
			assert.Equal(t, height, l.Height(), "height after the failed tx")
		})
	}
}

func TestReadsDoNotSeeOwnWrites(t *testing.T) {
	l := newLedger(t)
	tests := []struct {
		name, value, want string
	}{
		{name: "a new key reads as absent", value: "one", want: "seen:"},
		{name: "an existing key reads the committed value", value: "two", want: "seen:one"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := submit(t, l, "PutThenGet", "k", tt.value)
			assert.Equal(t, tt.want, string(c.Payload), "payload")
			assert.Equal(t, tt.value, evaluate(t, l, "Get", "k"), "committed value")
		})
	}
}

func TestQueries(t *testing.T) {
	l := newLedger(t)
	for i := range 5 {
		submit(t, l, "PutAsset", "alice", fmt.Sprintf("a%d", i), strconv.Itoa(i))
	}
	submit(t, l, "PutAsset", "bob", "b0", "x")
	submit(t, l, "PutAsset", "alicia", "c0", "y") // shares a prefix with alice but is another owner
	for _, k := range []string{"a", "b", "c", "d"} {
		submit(t, l, "Put", k, k)
	}

	t.Run("partial composite key finds only that owner's assets", func(t *testing.T) {
		got := decode[[]string](t, evaluate(t, l, "AllAssets", "alice"))
		assert.Equal(t, []string{"a0", "a1", "a2", "a3", "a4"}, got, "AllAssets(alice)")
	})
	t.Run("pages follow Fabric bookmarks", func(t *testing.T) {
		var all []string
		bookmark := ""
		var pages []int32
		for range 10 {
			p := decode[Page](t, evaluate(t, l, "ListAssets", "alice", "2", bookmark))
			all = append(all, p.Keys...)
			pages = append(pages, p.Count)
			if p.Bookmark == "" {
				break
			}
			bookmark = p.Bookmark
		}
		assert.Equal(t, []string{"alice/a0=0", "alice/a1=1", "alice/a2=2", "alice/a3=3", "alice/a4=4"}, all, "pages")
		assert.Equal(t, []int32{2, 2, 1}, pages, "page sizes")
	})
	t.Run("a page that ends the range has no bookmark", func(t *testing.T) {
		p := decode[Page](t, evaluate(t, l, "ListAssets", "bob", "1", ""))
		assert.Equal(t, int32(1), p.Count, "records on the page")
		assert.Empty(t, p.Bookmark, "bookmark")
	})
	t.Run("range query excludes composite keys and the end key", func(t *testing.T) {
		got := decode[[]string](t, evaluate(t, l, "Range", "", "d"))
		assert.Equal(t, []string{"a", "b", "c"}, got, `Range("", d)`)
	})
	t.Run("paged range query", func(t *testing.T) {
		p := decode[Page](t, evaluate(t, l, "RangePage", "a", "", "3", ""))
		assert.Equal(t, []string{"a", "b", "c"}, p.Keys, "first page")
		assert.Equal(t, "d", p.Bookmark, "first page bookmark")
		p = decode[Page](t, evaluate(t, l, "RangePage", "a", "", "3", p.Bookmark))
		assert.Equal(t, []string{"d"}, p.Keys, "second page")
		assert.Empty(t, p.Bookmark, "second page bookmark")
	})
	refusals := []struct {
		name string
		fn   string
		args []string
		want string
	}{
		{name: "range query with a composite start key is refused", fn: "Range", args: []string{"\x00asset", ""}, want: "null character"},
		{name: "invalid UTF-8 key is refused", fn: "Put", args: []string{"bad\xff", "v"}, want: "UTF-8"},
		{name: "a write after a paginated query is refused", fn: "PageThenPut", args: []string{"k"}, want: "Writes are not allowed"},
		{name: "unsupported stub functions say so", fn: "Unsupported", want: "not supported by the embedded ledger"},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			_, err := l.Submit(t.Context(), ledger.Proposal{Function: tt.fn, Args: tt.args})
			var ce *ledger.ChaincodeError
			require.ErrorAs(t, err, &ce)
			assert.Contains(t, ce.Message, tt.want, "ChaincodeError message")
		})
	}
}

// Bulk writes n keys prefix/0..n-1, each holding size bytes: the shape of a
// batch of readings without the signature checks.
func (c *testContract) Bulk(ctx contractapi.TransactionContextInterface, prefix string, n, size int) error {
	value := make([]byte, size)
	for i := range value {
		value[i] = 'a' + byte(i%26)
	}
	for i := range n {
		k, err := ctx.GetStub().CreateCompositeKey("bulk", []string{prefix, fmt.Sprintf("%08d", i)})
		if err != nil {
			return err
		}
		if err := ctx.GetStub().PutState(k, value); err != nil {
			return err
		}
	}
	return ctx.GetStub().SetEvent("Bulk", []byte(prefix))
}

// AddCounted adds asset (owner, id) holding the number of assets owner had
// before, counted with a range query.
func (c *testContract) AddCounted(ctx contractapi.TransactionContextInterface, owner, id string) error {
	it, err := ctx.GetStub().GetStateByPartialCompositeKey("asset", []string{owner})
	if err != nil {
		return err
	}
	defer it.Close()
	n := 0
	for it.HasNext() {
		if _, err := it.Next(); err != nil {
			return err
		}
		n++
	}
	return c.PutAsset(ctx, owner, id, strconv.Itoa(n))
}

// GetAsset returns the value of asset (owner, id).
func (c *testContract) GetAsset(ctx contractapi.TransactionContextInterface, owner, id string) (string, error) {
	k, err := ctx.GetStub().CreateCompositeKey("asset", []string{owner, id})
	if err != nil {
		return "", err
	}
	v, err := ctx.GetStub().GetState(k)
	return string(v), err
}

// BulkHistory returns the history of bulk key (prefix, index).
func (c *testContract) BulkHistory(ctx contractapi.TransactionContextInterface, prefix, index string) ([]Mod, error) {
	k, err := ctx.GetStub().CreateCompositeKey("bulk", []string{prefix, index})
	if err != nil {
		return nil, err
	}
	return c.History(ctx, k)
}
