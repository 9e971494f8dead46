package embedded

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/hyperledger/fabric-chaincode-go/v2/shim"
	"github.com/hyperledger/fabric-protos-go-apiv2/ledger/queryresult"
	"github.com/hyperledger/fabric-protos-go-apiv2/peer"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// ErrNotSupported is returned by stub functions the embedded ledger does not
// implement (private data, rich queries, chaincode-to-chaincode calls,
// key-level endorsement).
var ErrNotSupported = errors.New("not supported by the embedded ledger")

const (
	compositeKeyNamespace = "\x00"
	emptyKeySubstitute    = "\x01"
	maxRune               = string(utf8.MaxRune)
	// totalQueryLimit caps the results of one query, like the peer's
	// ledger.state.totalQueryLimit default.
	totalQueryLimit = 100000
	// maxKeyLen bounds keys, which history and index keys repeat; it is
	// the limit earlier (bbolt) versions had, so chaincode sees no change.
	maxKeyLen = 32<<10 - 64
)

// proposal is a transaction proposal as the chaincode sees it.
type proposal struct {
	txID      string
	nonce     []byte
	timestamp *timestamppb.Timestamp
	creator   []byte
	// args are the function and its parameters, as the chaincode reads
	// them; function and params the same, as the block records them.
	args      [][]byte
	function  string
	params    []string
	transient map[string][]byte
	// signature is the creator's signature over the ProposalBytes, whose
	// SHA-256 is digest; set by Submit.
	digest    [sha256.Size]byte
	signature []byte
}

// rangeRecord is what a range query observed, kept in full for MVCC
// validation; the block stores its RangeRead summary.
type rangeRecord struct {
	start, end string
	exhausted  bool
	keys       []string
	versions   []Version
}

func (r *rangeRecord) summary() RangeRead {
	return RangeRead{
		Start:       r.start,
		End:         r.end,
		Exhausted:   r.exhausted,
		Count:       uint32(len(r.keys)),
		ResultsHash: hashResults(r.keys, r.versions),
	}
}

func hashResults(keys []string, versions []Version) []byte {
	h := sha256.New()
	var e encoder
	for i, k := range keys {
		e.buf = e.buf[:0]
		e.string(k)
		e.uint64(versions[i].Block)
		e.uint32(versions[i].Tx)
		h.Write(e.buf)
	}
	return h.Sum(nil)
}

// stub implements shim.ChaincodeStubInterface for one transaction simulated
// against a view of committed state. Reads see the view only, never the
// transaction's own writes, as on Fabric.
type stub struct {
	ctx     context.Context
	channel string
	prop    *proposal

	mu       sync.Mutex
	v        *view
	done     bool
	releases []func() // of the store iterators, when the simulation ends
	failed   error    // a store read that failed where the shim has no error to return
	reads    map[string]KeyRead
	ranges   []*rangeRecord
	writes   map[string]KeyWrite
	event    *ChaincodeEvent
	wrote    bool
	paginate bool
}

var _ shim.ChaincodeStubInterface = (*stub)(nil)

func newStub(ctx context.Context, channel string, p *proposal, v *view) *stub {
	return &stub{
		ctx:     ctx,
		channel: channel,
		prop:    p,
		v:       v,
		reads:   make(map[string]KeyRead),
		writes:  make(map[string]KeyWrite),
	}
}

// finish ends the simulation: iterators and state access fail afterwards.
// It returns the first store read error the chaincode could not be told
// about.
func (s *stub) finish() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.done = true
	for _, release := range s.releases {
		release()
	}
	s.releases = nil
	return s.failed
}

// check reports whether state may be accessed now. Callers hold s.mu.
func (s *stub) check() error {
	if s.done {
		return errors.New("transaction simulation has ended")
	}
	if err := s.ctx.Err(); err != nil {
		return fmt.Errorf("transaction %s: %w", s.prop.txID, err)
	}
	return nil
}

func validKey(key string) error {
	if !utf8.ValidString(key) {
		return fmt.Errorf("key is not a valid UTF-8 string: [%x]", key)
	}
	if len(key) > maxKeyLen {
		return fmt.Errorf("key of %d bytes exceeds the embedded ledger's limit of %d", len(key), maxKeyLen)
	}
	return nil
}

// readVersioned returns the committed value of key and its version, nil if
// absent.
func (s *stub) readVersioned(key string) ([]byte, Version, bool, error) {
	v, err := s.v.getState(key)
	if err != nil || v == nil {
		return nil, Version{}, false, err
	}
	ver, val := splitStateValue(v)
	return bytes.Clone(val), ver, true, nil
}

// GetState implements shim.ChaincodeStubInterface.
func (s *stub) GetState(key string) ([]byte, error) {
	if err := validKey(key); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(); err != nil {
		return nil, err
	}
	val, ver, ok, err := s.readVersioned(key)
	if err != nil {
		return nil, err
	}
	if _, seen := s.reads[key]; !seen {
		s.reads[key] = KeyRead{Key: key, Exists: ok, Version: ver}
	}
	return val, nil
}

// GetMultipleStates implements shim.ChaincodeStubInterface.
func (s *stub) GetMultipleStates(keys ...string) ([][]byte, error) {
	out := make([][]byte, 0, len(keys))
	for _, k := range keys {
		v, err := s.GetState(k)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// PutState implements shim.ChaincodeStubInterface. As on Fabric, an empty
// value is recorded as a delete.
func (s *stub) PutState(key string, value []byte) error {
	if key == "" {
		return errors.New("key must not be an empty string")
	}
	return s.write(key, value)
}

// DelState implements shim.ChaincodeStubInterface.
func (s *stub) DelState(key string) error { return s.write(key, nil) }

func (s *stub) write(key string, value []byte) error {
	if err := validKey(key); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(); err != nil {
		return err
	}
	if s.paginate {
		return fmt.Errorf("txid [%s]: unsuppored transaction. Transaction has already performed a paginated query. Writes are not allowed", s.prop.txID)
	}
	s.wrote = true
	if len(value) == 0 {
		s.writes[key] = KeyWrite{Key: key, Delete: true}
	} else {
		s.writes[key] = KeyWrite{Key: key, Value: bytes.Clone(value)}
	}
	return nil
}

// CreateCompositeKey implements shim.ChaincodeStubInterface.
func (s *stub) CreateCompositeKey(objectType string, attributes []string) (string, error) {
	return shim.CreateCompositeKey(objectType, attributes)
}

// SplitCompositeKey implements shim.ChaincodeStubInterface.
func (s *stub) SplitCompositeKey(compositeKey string) (string, []string, error) {
	if !strings.HasPrefix(compositeKey, compositeKeyNamespace) || len(compositeKey) < 2 || compositeKey[len(compositeKey)-1] != 0 {
		return "", nil, fmt.Errorf("not a composite key: %q", compositeKey)
	}
	var parts []string
	start := 1
	for i := 1; i < len(compositeKey); i++ {
		if compositeKey[i] == 0 {
			parts = append(parts, compositeKey[start:i])
			start = i + 1
		}
	}
	return parts[0], parts[1:], nil
}

func validateSimpleKeys(keys ...string) error {
	for _, key := range keys {
		if len(key) > 0 && key[0] == compositeKeyNamespace[0] {
			return fmt.Errorf(`first character of the key [%s] contains a null character which is not allowed`, key)
		}
	}
	return nil
}

func partialKeyRange(objectType string, attributes []string) (string, string, error) {
	prefix, err := shim.CreateCompositeKey(objectType, attributes)
	if err != nil {
		return "", "", err
	}
	return prefix, prefix + maxRune, nil
}

// GetStateByRange implements shim.ChaincodeStubInterface.
func (s *stub) GetStateByRange(startKey, endKey string) (shim.StateQueryIteratorInterface, error) {
	if startKey == "" {
		startKey = emptyKeySubstitute
	}
	if err := validateSimpleKeys(startKey, endKey); err != nil {
		return nil, err
	}
	return s.rangeQuery(startKey, endKey)
}

// GetStateByRangeWithPagination implements shim.ChaincodeStubInterface.
func (s *stub) GetStateByRangeWithPagination(startKey, endKey string, pageSize int32, bookmark string) (shim.StateQueryIteratorInterface, *peer.QueryResponseMetadata, error) {
	if startKey == "" {
		startKey = emptyKeySubstitute
	}
	if err := validateSimpleKeys(startKey, endKey); err != nil {
		return nil, nil, err
	}
	return s.pagedQuery(startKey, endKey, pageSize, bookmark)
}

// GetStateByPartialCompositeKey implements shim.ChaincodeStubInterface.
func (s *stub) GetStateByPartialCompositeKey(objectType string, keys []string) (shim.StateQueryIteratorInterface, error) {
	start, end, err := partialKeyRange(objectType, keys)
	if err != nil {
		return nil, err
	}
	return s.rangeQuery(start, end)
}

// GetStateByPartialCompositeKeyWithPagination implements shim.ChaincodeStubInterface.
func (s *stub) GetStateByPartialCompositeKeyWithPagination(objectType string, keys []string, pageSize int32, bookmark string) (shim.StateQueryIteratorInterface, *peer.QueryResponseMetadata, error) {
	start, end, err := partialKeyRange(objectType, keys)
	if err != nil {
		return nil, nil, err
	}
	return s.pagedQuery(start, end, pageSize, bookmark)
}

// GetAllStatesCompositeKeyWithPagination implements shim.ChaincodeStubInterface.
func (s *stub) GetAllStatesCompositeKeyWithPagination(pageSize int32, bookmark string) (shim.StateQueryIteratorInterface, *peer.QueryResponseMetadata, error) {
	return s.pagedQuery(compositeKeyNamespace, compositeKeyNamespace+maxRune, pageSize, bookmark)
}

func (s *stub) rangeQuery(start, end string) (shim.StateQueryIteratorInterface, error) {
	if err := validRangeKeys(start, end); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(); err != nil {
		return nil, err
	}
	rec := &rangeRecord{start: start, end: end}
	s.ranges = append(s.ranges, rec)
	it := &rangeIterator{s: s, rec: rec, iter: s.v.stateIterator(start, end), limit: totalQueryLimit}
	s.releases = append(s.releases, it.iter.release)
	it.advance()
	return it, nil
}

func validRangeKeys(keys ...string) error {
	for _, k := range keys {
		if !utf8.ValidString(k) {
			return fmt.Errorf("key is not a valid UTF-8 string: [%x]", k)
		}
	}
	return nil
}

// pagedQuery reads one page eagerly, as the peer does, and returns Fabric's
// bookmark: the first key after the page, or "" when the range is done.
func (s *stub) pagedQuery(start, end string, pageSize int32, bookmark string) (shim.StateQueryIteratorInterface, *peer.QueryResponseMetadata, error) {
	if err := validRangeKeys(start, end, bookmark); err != nil {
		return nil, nil, err
	}
	if pageSize == 0 && bookmark == "" {
		// The peer treats this as an ordinary range query with empty
		// response metadata.
		it, err := s.rangeQuery(start, end)
		if err != nil {
			return nil, nil, err
		}
		return it, &peer.QueryResponseMetadata{}, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(); err != nil {
		return nil, nil, err
	}
	if s.wrote {
		return nil, nil, fmt.Errorf("txid [%s]: unsuppored transaction. Paginated queries are supported only in a read-only transaction", s.prop.txID)
	}
	s.paginate = true
	if bookmark != "" {
		start = bookmark
	}
	limit := totalQueryLimit // a negative page size means no page limit, as on the peer
	if pageSize > 0 && int(pageSize) < limit {
		limit = int(pageSize)
	}
	rec := &rangeRecord{start: start, end: end}
	s.ranges = append(s.ranges, rec)
	it := s.v.stateIterator(start, end)
	defer it.release()
	var page []*queryresult.KV
	next := ""
	for it.next() {
		ver, val := splitStateValue(it.value)
		k := string(it.key)
		rec.keys = append(rec.keys, k)
		rec.versions = append(rec.versions, ver)
		if len(page) == limit {
			next = k
			break
		}
		page = append(page, &queryresult.KV{Namespace: "", Key: k, Value: bytes.Clone(val)})
	}
	if err := it.err(); err != nil {
		return nil, nil, err
	}
	rec.exhausted = next == ""
	meta := &peer.QueryResponseMetadata{FetchedRecordsCount: int32(len(page)), Bookmark: next}
	return &pageIterator{s: s, items: page}, meta, nil
}

// rangeIterator walks a key range lazily over the view, recording each
// key it returns for MVCC validation. k and v hold the next entry (nil at
// the end of the range).
type rangeIterator struct {
	s      *stub
	rec    *rangeRecord
	iter   *stateIterator
	k, v   []byte
	count  int
	limit  int
	closed bool
}

// advance loads the next entry. A store error ends the range and fails
// the transaction, since HasNext cannot report it.
func (it *rangeIterator) advance() {
	if it.iter.next() {
		it.k, it.v = it.iter.key, it.iter.value
		return
	}
	it.k, it.v = nil, nil
	if err := it.iter.err(); err != nil && it.s.failed == nil {
		it.s.failed = err
	}
	it.rec.exhausted = true
}

// HasNext implements shim.StateQueryIteratorInterface.
func (it *rangeIterator) HasNext() bool {
	it.s.mu.Lock()
	defer it.s.mu.Unlock()
	return !it.closed && !it.s.done && it.k != nil && it.count < it.limit
}

// Next implements shim.StateQueryIteratorInterface.
func (it *rangeIterator) Next() (*queryresult.KV, error) {
	it.s.mu.Lock()
	defer it.s.mu.Unlock()
	if err := it.s.check(); err != nil {
		return nil, err
	}
	if it.closed || it.k == nil || it.count >= it.limit {
		return nil, errors.New("no such key")
	}
	ver, val := splitStateValue(it.v)
	kv := &queryresult.KV{Key: string(it.k), Value: bytes.Clone(val)}
	it.rec.keys = append(it.rec.keys, kv.Key)
	it.rec.versions = append(it.rec.versions, ver)
	it.count++
	it.advance()
	return kv, nil
}

// Close implements shim.StateQueryIteratorInterface.
func (it *rangeIterator) Close() error {
	it.s.mu.Lock()
	defer it.s.mu.Unlock()
	it.closed = true
	return nil
}

// pageIterator returns a page already read.
type pageIterator struct {
	s     *stub
	items []*queryresult.KV
}

// HasNext implements shim.StateQueryIteratorInterface.
func (it *pageIterator) HasNext() bool { return len(it.items) > 0 }

// Next implements shim.StateQueryIteratorInterface.
func (it *pageIterator) Next() (*queryresult.KV, error) {
	if len(it.items) == 0 {
		return nil, errors.New("no such key")
	}
	kv := it.items[0]
	it.items = it.items[1:]
	return kv, nil
}

// Close implements shim.StateQueryIteratorInterface.
func (it *pageIterator) Close() error { it.items = nil; return nil }

// GetArgs implements shim.ChaincodeStubInterface.
func (s *stub) GetArgs() [][]byte { return s.prop.args }

// GetStringArgs implements shim.ChaincodeStubInterface.
func (s *stub) GetStringArgs() []string {
	out := make([]string, 0, len(s.prop.args))
	for _, a := range s.prop.args {
		out = append(out, string(a))
	}
	return out
}

// GetFunctionAndParameters implements shim.ChaincodeStubInterface.
func (s *stub) GetFunctionAndParameters() (string, []string) {
	args := s.GetStringArgs()
	if len(args) == 0 {
		return "", []string{}
	}
	return args[0], args[1:]
}

// GetArgsSlice implements shim.ChaincodeStubInterface.
func (s *stub) GetArgsSlice() ([]byte, error) { return slices.Concat(s.prop.args...), nil }

// GetTxID implements shim.ChaincodeStubInterface.
func (s *stub) GetTxID() string { return s.prop.txID }

// GetChannelID implements shim.ChaincodeStubInterface.
func (s *stub) GetChannelID() string { return s.channel }

// GetCreator implements shim.ChaincodeStubInterface: a serialized
// msp.SerializedIdentity holding the submitter's PEM certificate.
func (s *stub) GetCreator() ([]byte, error) { return s.prop.creator, nil }

// GetTransient implements shim.ChaincodeStubInterface.
func (s *stub) GetTransient() (map[string][]byte, error) { return s.prop.transient, nil }

// GetBinding implements shim.ChaincodeStubInterface, computed as the peer
// does: SHA-256(nonce || creator || epoch), epoch 0.
func (s *stub) GetBinding() ([]byte, error) {
	h := sha256.New()
	h.Write(s.prop.nonce)
	h.Write(s.prop.creator)
	var epoch [8]byte
	binary.LittleEndian.PutUint64(epoch[:], 0)
	h.Write(epoch[:])
	return h.Sum(nil), nil
}

// GetDecorations implements shim.ChaincodeStubInterface.
func (s *stub) GetDecorations() map[string][]byte { return map[string][]byte{} }

// GetTxTimestamp implements shim.ChaincodeStubInterface.
func (s *stub) GetTxTimestamp() (*timestamppb.Timestamp, error) {
	return &timestamppb.Timestamp{Seconds: s.prop.timestamp.Seconds, Nanos: s.prop.timestamp.Nanos}, nil
}

// SetEvent implements shim.ChaincodeStubInterface: one event per
// transaction, the last call wins.
func (s *stub) SetEvent(name string, payload []byte) error {
	if name == "" {
		return errors.New("event name can not be empty string")
	}
	if !utf8.ValidString(name) {
		return fmt.Errorf("event name is not a valid UTF-8 string: [%x]", name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.event = &ChaincodeEvent{Name: name, Payload: bytes.Clone(payload)}
	return nil
}

// StartWriteBatch implements shim.ChaincodeStubInterface. Writes are always
// buffered until commit, so batching changes nothing.
func (s *stub) StartWriteBatch() {}

// FinishWriteBatch implements shim.ChaincodeStubInterface.
func (s *stub) FinishWriteBatch() error { return nil }

func notSupported(what string) error { return fmt.Errorf("%s: %w", what, ErrNotSupported) }

// InvokeChaincode implements shim.ChaincodeStubInterface; not supported.
func (s *stub) InvokeChaincode(string, [][]byte, string) *peer.Response {
	return &peer.Response{Status: shim.ERROR, Message: notSupported("InvokeChaincode").Error()}
}

// SetStateValidationParameter implements shim.ChaincodeStubInterface; not supported.
func (s *stub) SetStateValidationParameter(string, []byte) error {
	return notSupported("SetStateValidationParameter")
}

// GetStateValidationParameter implements shim.ChaincodeStubInterface; not supported.
func (s *stub) GetStateValidationParameter(string) ([]byte, error) {
	return nil, notSupported("GetStateValidationParameter")
}

// GetQueryResult implements shim.ChaincodeStubInterface; rich queries are
// not supported (as on a LevelDB peer).
func (s *stub) GetQueryResult(string) (shim.StateQueryIteratorInterface, error) {
	return nil, notSupported("GetQueryResult")
}

// GetQueryResultWithPagination implements shim.ChaincodeStubInterface; not supported.
func (s *stub) GetQueryResultWithPagination(string, int32, string) (shim.StateQueryIteratorInterface, *peer.QueryResponseMetadata, error) {
	return nil, nil, notSupported("GetQueryResultWithPagination")
}

// GetPrivateData implements shim.ChaincodeStubInterface; not supported.
func (s *stub) GetPrivateData(string, string) ([]byte, error) {
	return nil, notSupported("GetPrivateData")
}

// GetMultiplePrivateData implements shim.ChaincodeStubInterface; not supported.
func (s *stub) GetMultiplePrivateData(string, ...string) ([][]byte, error) {
	return nil, notSupported("GetMultiplePrivateData")
}

// GetPrivateDataHash implements shim.ChaincodeStubInterface; not supported.
func (s *stub) GetPrivateDataHash(string, string) ([]byte, error) {
	return nil, notSupported("GetPrivateDataHash")
}

// PutPrivateData implements shim.ChaincodeStubInterface; not supported.
func (s *stub) PutPrivateData(string, string, []byte) error {
	return notSupported("PutPrivateData")
}

// DelPrivateData implements shim.ChaincodeStubInterface; not supported.
func (s *stub) DelPrivateData(string, string) error { return notSupported("DelPrivateData") }

// PurgePrivateData implements shim.ChaincodeStubInterface; not supported.
func (s *stub) PurgePrivateData(string, string) error { return notSupported("PurgePrivateData") }

// SetPrivateDataValidationParameter implements shim.ChaincodeStubInterface; not supported.
func (s *stub) SetPrivateDataValidationParameter(string, string, []byte) error {
	return notSupported("SetPrivateDataValidationParameter")
}

// GetPrivateDataValidationParameter implements shim.ChaincodeStubInterface; not supported.
func (s *stub) GetPrivateDataValidationParameter(string, string) ([]byte, error) {
	return nil, notSupported("GetPrivateDataValidationParameter")
}

// GetPrivateDataByRange implements shim.ChaincodeStubInterface; not supported.
func (s *stub) GetPrivateDataByRange(string, string, string) (shim.StateQueryIteratorInterface, error) {
	return nil, notSupported("GetPrivateDataByRange")
}

// GetPrivateDataByPartialCompositeKey implements shim.ChaincodeStubInterface; not supported.
func (s *stub) GetPrivateDataByPartialCompositeKey(string, string, []string) (shim.StateQueryIteratorInterface, error) {
	return nil, notSupported("GetPrivateDataByPartialCompositeKey")
}

// GetPrivateDataQueryResult implements shim.ChaincodeStubInterface; not supported.
func (s *stub) GetPrivateDataQueryResult(string, string) (shim.StateQueryIteratorInterface, error) {
	return nil, notSupported("GetPrivateDataQueryResult")
}

// GetSignedProposal implements shim.ChaincodeStubInterface; not supported:
// the embedded ledger has no signed proposal.
func (s *stub) GetSignedProposal() (*peer.SignedProposal, error) {
	return nil, notSupported("GetSignedProposal")
}

// simulation returns what the transaction did, in deterministic order.
func (s *stub) simulation() (reads []KeyRead, ranges []*rangeRecord, writes []KeyWrite, event *ChaincodeEvent) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.reads {
		reads = append(reads, r)
	}
	slices.SortFunc(reads, func(a, b KeyRead) int { return strings.Compare(a.Key, b.Key) })
	for _, w := range s.writes {
		writes = append(writes, w)
	}
	slices.SortFunc(writes, func(a, b KeyWrite) int { return strings.Compare(a.Key, b.Key) })
	return reads, s.ranges, writes, s.event
}
