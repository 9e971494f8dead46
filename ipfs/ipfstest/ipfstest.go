// Package ipfstest is the conformance suite for [ipfs.Store]. Every backend's
// tests call [Run], so that no backend drifts from the contract documented on
// ipfs.Store, nor from the CIDs `ipfs add --cid-version=1` gives for the same
// bytes. It is imported only by tests.
package ipfstest

import (
	"bytes"
	"fmt"
	"sync"
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/medprov/medprov/internal/testkit"
	"github.com/medprov/medprov/ipfs"
)

// Backend gives the suite stores of one ipfs.Store implementation, and does
// in the backend's own storage what the Store methods cannot: restart it,
// corrupt a block, look at the pins.
type Backend interface {
	// Open returns an open store. Stores need not be empty nor separate
	// (they may share one daemon): the suite stores fresh random bytes in
	// every test. The suite closes every store Open, Reopen and Corrupt
	// return.
	Open(t *testing.T) ipfs.Store
	// Reopen closes s and returns a store over the same storage, as the
	// backend's next run would see it (for a daemon: after restarting it).
	Reopen(t *testing.T, s ipfs.Store) ipfs.Store
	// Corrupt flips a byte in the middle of the stored block whose CID is
	// block, as disk corruption or tampering would, and returns the store to
	// read it through: s itself, or s closed and reopened when the storage
	// cannot be written while s has it open.
	Corrupt(t *testing.T, s ipfs.Store, block string) ipfs.Store
	// Pinned reports whether c is kept from garbage collection in s: pinned
	// itself, or linked from a pinned node (ipfs/kubo pins a PutMany batch
	// through one directory node).
	Pinned(t *testing.T, s ipfs.Store, c string) bool
}

// chunkSize is the leaf size of the documented layout (kubo's size-262144).
const chunkSize = 262144

// Run checks b's stores against every clause of the ipfs.Store contract, one
// subtest per clause. Subtests run one after another, because Reopen may
// restart a daemon that other stores share.
func Run(t *testing.T, b Backend) {
	tests := []struct {
		name string
		run  func(t *testing.T, b Backend)
	}{
		{"stored bytes come back unchanged", testRoundTrip},
		{"Put returns a CIDv1 over SHA2-256", testCIDv1},
		{"bytes get the CID ipfs add --cid-version=1 gives", testKnownCIDs},
		{"same bytes give the same CID", testSameBytesSameCID},
		{"PutMany returns the CIDs Put gives, in input order", testPutManyOrder},
		{"Put and PutMany pin what they store", testPutPins},
		{"Unpin releases a pin and Pin restores it", testUnpinPin},
		{"absent content is not found", testAbsent},
		{"an invalid CID is refused with ErrInvalidCID", testInvalidCID},
		{"corrupt block is refused with ErrCorrupt", testCorrupt},
		{"stored content survives reopening the store", testReopen},
		{"methods are safe for concurrent use", testConcurrent},
		{"every method fails after Close", testClosed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.run(t, b) })
	}
}

// fixture holds the store a test currently uses, which Reopen and Corrupt
// may replace, and closes it when the test ends.
type fixture struct {
	s ipfs.Store
}

func open(t *testing.T, b Backend) *fixture {
	t.Helper()
	f := &fixture{s: b.Open(t)}
	t.Cleanup(func() {
		if f.s != nil {
			assert.NoError(t, f.s.Close(), "Close")
		}
	})
	return f
}

func (f *fixture) put(t *testing.T, data []byte) string {
	t.Helper()
	c, err := f.s.Put(t.Context(), data)
	require.NoError(t, err, "Put")
	return c
}

func (f *fixture) putMany(t *testing.T, data [][]byte) []string {
	t.Helper()
	cids, err := f.s.PutMany(t.Context(), data)
	require.NoError(t, err, "PutMany")
	require.Len(t, cids, len(data), "PutMany CIDs")
	return cids
}

// assertContent checks that c reads back as want and that its root is had.
func (f *fixture) assertContent(t *testing.T, c string, want []byte) {
	t.Helper()
	got, err := f.s.Get(t.Context(), c)
	if assert.NoError(t, err, "Get %s", c) {
		// bytes.Equal, not assert.Equal: a diff of megabytes helps no one.
		assert.True(t, bytes.Equal(got, want), "Get %s returned %d bytes that differ from the %d put", c, len(got), len(want))
	}
	ok, err := f.s.Has(t.Context(), c)
	assert.NoError(t, err, "Has %s", c)
	assert.True(t, ok, "Has %s", c)
}

func testRoundTrip(t *testing.T, b Backend) {
	f := open(t, b)
	for _, size := range []int{0, 1, 1000, chunkSize, chunkSize + 1, 1<<20 + 7, 3 << 20} {
		t.Run(fmt.Sprintf("%d bytes come back unchanged", size), func(t *testing.T) {
			want := testkit.RandomBytes(t, size)
			c := f.put(t, want)
			f.assertContent(t, c, want)
		})
	}
}

func testCIDv1(t *testing.T, b Backend) {
	f := open(t, b)
	for _, size := range []int{1000, 1 << 20} {
		t.Run(fmt.Sprintf("for %d bytes", size), func(t *testing.T) {
			got, err := cid.Decode(f.put(t, testkit.RandomBytes(t, size)))
			require.NoError(t, err, "Put returned a string that is not a CID")
			assert.Equal(t, uint64(1), got.Version(), "CID version")
			assert.Equal(t, uint64(multihash.SHA2_256), got.Prefix().MhType, "multihash")
		})
	}
}

// pattern returns n deterministic bytes in which no two chunks are alike.
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i % 251)
	}
	return b
}

// The CIDs were produced by kubo v0.42.0:
// `ipfs add --cid-version=1 -q --only-hash FILE`.
func testKnownCIDs(t *testing.T, b Backend) {
	f := open(t, b)
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"an empty file is one empty raw leaf", []byte{}, "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"},
		{"a one-block file is a raw leaf", []byte("hello\n"), "bafkreicysg23kiwv34eg2d7qweipxwosdo2py4ldv42nbauguluen5v6am"},
		{"a three-chunk file is a dag-pb root over raw leaves", make([]byte, 600000), "bafybeib7pcuusxw7atqqc4apxvkezssdjbqkkhymjpo5x7bsj5sytn2ph4"},
		{"a 175-chunk file needs a second level of links", pattern(175 * chunkSize), "bafybeie73j3heycdgkdsehpoe6cxh2y3iywtf6djpi3dzqrywevvjmazny"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := f.put(t, tt.data)
			assert.Equal(t, tt.want, got, "CID")
			f.assertContent(t, got, tt.data)
		})
	}
}

func testSameBytesSameCID(t *testing.T, b Backend) {
	f := open(t, b)
	tests := []struct {
		name   string
		first  func(t *testing.T, data []byte) string
		second func(t *testing.T, data []byte) string
	}{
		{"when put twice", f.put, f.put},
		{"when put by PutMany then by Put", f.putOneOfMany, f.put},
		{"when put by Put then by PutMany", f.put, f.putOneOfMany},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := testkit.RandomBytes(t, 300000)
			first := tt.first(t, data)
			second := tt.second(t, data)
			assert.Equal(t, first, second)
		})
	}
}

// putOneOfMany stores data in a PutMany batch with other payloads and
// returns its CID.
func (f *fixture) putOneOfMany(t *testing.T, data []byte) string {
	t.Helper()
	return f.putMany(t, [][]byte{testkit.RandomBytes(t, 10), data, testkit.RandomBytes(t, 20)})[1]
}

func testPutManyOrder(t *testing.T, b Backend) {
	f := open(t, b)
	same := testkit.RandomBytes(t, 100)
	tests := []struct {
		name  string
		batch [][]byte
	}{
		{"an empty batch", nil},
		{"a batch of one", [][]byte{testkit.RandomBytes(t, 100)}},
		{"a batch with a repeated and an empty payload", [][]byte{same, testkit.RandomBytes(t, 600000), same, nil, testkit.RandomBytes(t, 100)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cids := f.putMany(t, tt.batch)
			for i := range cids {
				for j := range i {
					assert.Equal(t, bytes.Equal(tt.batch[i], tt.batch[j]), cids[i] == cids[j],
						"payloads %d and %d: equal bytes must give equal CIDs and different bytes different CIDs (%s, %s)", j, i, cids[j], cids[i])
				}
			}
			for i, c := range cids {
				assert.Equal(t, f.put(t, tt.batch[i]), c, "payload %d: Put's CID", i)
				f.assertContent(t, c, tt.batch[i])
			}
		})
	}
}

func testPutPins(t *testing.T, b Backend) {
	f := open(t, b)
	t.Run("Put pins its content", func(t *testing.T) {
		c := f.put(t, testkit.RandomBytes(t, 700000))
		assert.True(t, b.Pinned(t, f.s, c), "%s not pinned after Put", c)
	})
	t.Run("PutMany pins every payload", func(t *testing.T) {
		cids := f.putMany(t, [][]byte{testkit.RandomBytes(t, 100), testkit.RandomBytes(t, 700000), testkit.RandomBytes(t, 5000)})
		for i, c := range cids {
			assert.True(t, b.Pinned(t, f.s, c), "payload %d (%s) not pinned after PutMany", i, c)
		}
	})
}

func testUnpinPin(t *testing.T, b Backend) {
	f := open(t, b)
	tests := []struct {
		name string
		put  func(t *testing.T, data []byte) string
		// released is whether Unpin must release the content: a backend may
		// pin a PutMany batch as a whole, which Unpin of one payload keeps.
		released bool
	}{
		{"for content stored by Put", f.put, true},
		{"for a payload of a PutMany batch, which the batch may keep pinned", f.putOneOfMany, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			c := tt.put(t, testkit.RandomBytes(t, 700000))
			require.NoError(t, f.s.Unpin(ctx, c), "Unpin")
			if tt.released {
				assert.False(t, b.Pinned(t, f.s, c), "still pinned after Unpin")
			}
			assert.NoError(t, f.s.Unpin(ctx, c), "Unpin of content that is not pinned")
			require.NoError(t, f.s.Pin(ctx, c), "Pin")
			assert.True(t, b.Pinned(t, f.s, c), "not pinned after Pin")
			assert.NoError(t, f.s.Pin(ctx, c), "Pin of pinned content")
			assert.True(t, b.Pinned(t, f.s, c), "not pinned after a second Pin")
		})
	}
}

// rawCID returns the CID of data as a one-block file, without storing it.
func rawCID(t *testing.T, data []byte) string {
	t.Helper()
	require.Less(t, len(data), chunkSize+1, "a one-block file")
	mh, err := multihash.Sum(data, multihash.SHA2_256, -1)
	require.NoError(t, err)
	return cid.NewCidV1(cid.Raw, mh).String()
}

func testAbsent(t *testing.T, b Backend) {
	f := open(t, b)
	absent := rawCID(t, testkit.RandomBytes(t, 100))
	t.Run("by Get, which fails with ErrNotFound", func(t *testing.T) {
		got, err := f.s.Get(t.Context(), absent)
		require.ErrorIs(t, err, ipfs.ErrNotFound)
		assert.Nil(t, got, "Get returned bytes with an error")
	})
	t.Run("by Has, which reports false", func(t *testing.T) {
		ok, err := f.s.Has(t.Context(), absent)
		require.NoError(t, err, "Has")
		assert.False(t, ok, "Has")
	})
	t.Run("by Pin, which fails with ErrNotFound", func(t *testing.T) {
		require.ErrorIs(t, f.s.Pin(t.Context(), absent), ipfs.ErrNotFound)
	})
	t.Run("by Unpin, which is not an error", func(t *testing.T) {
		require.NoError(t, f.s.Unpin(t.Context(), absent))
	})
}

func testInvalidCID(t *testing.T, b Backend) {
	f := open(t, b)
	methods := []struct {
		name string
		call func(t *testing.T, c string) error
	}{
		{"Get", func(t *testing.T, c string) error {
			got, err := f.s.Get(t.Context(), c)
			assert.Nil(t, got, "Get returned bytes with an error")
			return err
		}},
		{"Has", func(t *testing.T, c string) error {
			ok, err := f.s.Has(t.Context(), c)
			assert.False(t, ok, "Has reported an invalid CID as stored")
			return err
		}},
		{"Pin", func(t *testing.T, c string) error { return f.s.Pin(t.Context(), c) }},
		{"Unpin", func(t *testing.T, c string) error { return f.s.Unpin(t.Context(), c) }},
	}
	inputs := []struct {
		name string
		cid  string
	}{
		{"a word", "not-a-cid"},
		{"an empty string", ""},
		{"a CID cut short", "bafkreicysg23kiwv34eg2d7qweipxwosdo2py4ldv42nbaugulu"},
	}
	for _, m := range methods {
		for _, in := range inputs {
			t.Run(fmt.Sprintf("%s refuses %s", m.name, in.name), func(t *testing.T) {
				require.ErrorIs(t, m.call(t, in.cid), ipfs.ErrInvalidCID)
			})
		}
	}
}

func testCorrupt(t *testing.T, b Backend) {
	tests := []struct {
		name string
		size int
		// block picks the block to corrupt from the file's root CID and bytes.
		block func(t *testing.T, root string, data []byte) string
	}{
		{"in a one-block file", 1000, func(_ *testing.T, root string, _ []byte) string { return root }},
		{"in a leaf of a multi-block file", 1 << 20, func(t *testing.T, _ string, data []byte) string {
			return rawCID(t, data[2*chunkSize:3*chunkSize])
		}},
		{"in the root node of a multi-block file", 1 << 20, func(_ *testing.T, root string, _ []byte) string { return root }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := open(t, b)
			data := testkit.RandomBytes(t, tt.size)
			root := f.put(t, data)
			f.s = b.Corrupt(t, f.s, tt.block(t, root, data))
			got, err := f.s.Get(t.Context(), root)
			require.ErrorIs(t, err, ipfs.ErrCorrupt)
			assert.Nil(t, got, "Get returned bytes with ErrCorrupt")
		})
	}
}

func testReopen(t *testing.T, b Backend) {
	f := open(t, b)
	one := testkit.RandomBytes(t, 500000)
	many := [][]byte{testkit.RandomBytes(t, 100), testkit.RandomBytes(t, 300000)}
	oneCID := f.put(t, one)
	manyCIDs := f.putMany(t, many)
	f.s = b.Reopen(t, f.s)
	cids := append([]string{oneCID}, manyCIDs...)
	want := append([][]byte{one}, many...)
	for i, c := range cids {
		f.assertContent(t, c, want[i])
		assert.True(t, b.Pinned(t, f.s, c), "%s not pinned after reopening", c)
	}
}

func testConcurrent(t *testing.T, b Backend) {
	f := open(t, b)
	ctx := t.Context()
	const workers = 8
	payloads := make([][][]byte, workers)
	for i := range payloads {
		payloads[i] = [][]byte{testkit.RandomBytes(t, 1000), testkit.RandomBytes(t, 300000), testkit.RandomBytes(t, 50)}
	}
	var wg sync.WaitGroup
	for _, p := range payloads {
		// assert, not require: require may not stop a test from another
		// goroutine.
		wg.Go(func() {
			one, err := f.s.Put(ctx, p[0])
			if !assert.NoError(t, err, "Put") {
				return
			}
			many, err := f.s.PutMany(ctx, p[1:])
			if !assert.NoError(t, err, "PutMany") || !assert.Len(t, many, 2, "PutMany CIDs") {
				return
			}
			for i, c := range append([]string{one}, many...) {
				got, err := f.s.Get(ctx, c)
				assert.NoError(t, err, "Get")
				assert.True(t, bytes.Equal(got, p[i]), "Get %s returned %d bytes that differ from the %d put", c, len(got), len(p[i]))
				ok, err := f.s.Has(ctx, c)
				assert.NoError(t, err, "Has")
				assert.True(t, ok, "Has")
			}
			assert.NoError(t, f.s.Unpin(ctx, one), "Unpin")
			assert.NoError(t, f.s.Pin(ctx, one), "Pin")
		})
	}
	wg.Wait()
}

func testClosed(t *testing.T, b Backend) {
	f := open(t, b)
	ctx := t.Context()
	c := f.put(t, testkit.RandomBytes(t, 1000))
	s := f.s
	f.s = nil
	require.NoError(t, s.Close(), "Close")
	tests := []struct {
		name string
		call func() error
	}{
		{"Put", func() error { _, err := s.Put(ctx, []byte("after close")); return err }},
		{"PutMany", func() error { _, err := s.PutMany(ctx, [][]byte{{1}, {2}}); return err }},
		{"PutMany of an empty batch", func() error { _, err := s.PutMany(ctx, nil); return err }},
		{"Get", func() error { _, err := s.Get(ctx, c); return err }},
		{"Has", func() error { _, err := s.Has(ctx, c); return err }},
		{"Pin", func() error { return s.Pin(ctx, c) }},
		{"Unpin", func() error { return s.Unpin(ctx, c) }},
	}
	for _, tt := range tests {
		t.Run(tt.name+" fails", func(t *testing.T) {
			assert.Error(t, tt.call())
		})
	}
}
