package chaincode

import (
	"encoding/json"
	"fmt"
	"strconv"
	"unicode/utf8"

	"github.com/medprov/medprov/wire"

	"github.com/hyperledger/fabric-chaincode-go/v2/shim"
	"github.com/hyperledger/fabric-contract-api-go/v2/contractapi"
)

// scanChunk is the page size of the paginated reads the registry queries
// make; each is one round trip to the peer.
const scanChunk = 1000

// WithRegistryScan makes ListDevices and ListActors examine at most n
// records per call instead of wire.MaxRegistryScan (n < 1 keeps the
// default). Tests use a small n to reach the bound.
func WithRegistryScan(n int) Option {
	return func(c *Contract) {
		if n >= 1 {
			c.registryScan = n
		}
	}
}

// WithDeviceStatsScan makes GetDeviceStats count at most n readings
// instead of wire.MaxDeviceStatsScan (n < 1 keeps the default). Tests use
// a small n to reach the cap.
func WithDeviceStatsScan(n int) Option {
	return func(c *Contract) {
		if n >= 1 {
			c.statsScan = n
		}
	}
}

// ListDevices pages through the registered devices in device id order:
// those registered by operatorID and bound to patientID ("" matches any;
// both may be given). pageSize is 1..MaxPageSize (default DefaultPageSize);
// bookmark is "" for the first page, then the previous page's bookmark.
//
// Devices are stored under [deviceId] only, with no index by operator or
// patient. Rather than add such indexes at RegisterDevice (which devices
// registered before would lack, so a ledger would need a backfill
// transaction, and which would grow every registration's write set), a
// filtered listing is a range scan over the device records that keeps
// those that match. It works on every ledger as it stands. One call
// examines at most wire.MaxRegistryScan records (paginated reads, so a
// scan is never cut short silently by the peer's totalQueryLimit), which
// bounds its cost however rare the matches: a page may therefore hold
// fewer than pageSize devices, even none, and still carry a bookmark. Only
// a page without a bookmark is the last. If a ledger ever holds so many
// devices that listing one operator's becomes slow, indexes with a
// backfill are the next step.
func (c *Contract) ListDevices(ctx contractapi.TransactionContextInterface, operatorID, patientID, pageSizeArg, bookmark string) (*wire.DevicePage, error) {
	if operatorID != "" && !wire.ValidID(operatorID) {
		return nil, invalid("operatorId is malformed")
	}
	if patientID != "" && !wire.ValidID(patientID) {
		return nil, invalid("patientId is malformed")
	}
	n, err := pageSize(pageSizeArg)
	if err != nil {
		return nil, err
	}
	items, next, err := scanRecords(ctx.GetStub(), objDevice, bookmark, n, c.scanBudget(), func(d *wire.Device) bool {
		return (operatorID == "" || d.OperatorID == operatorID) && (patientID == "" || d.PatientID == patientID)
	})
	if err != nil {
		return nil, err
	}
	return &wire.DevicePage{Items: items, Bookmark: next, Count: len(items)}, nil
}

// ListActors pages through the registered actors in actor id order, those
// of role ("" = every role). Paging, the scan bound and short pages are as
// in ListDevices: actors are stored under [actorId] only.
func (c *Contract) ListActors(ctx contractapi.TransactionContextInterface, role, pageSizeArg, bookmark string) (*wire.ActorPage, error) {
	if role != "" && !wire.ValidRole(role) {
		return nil, invalid("role must be patient, operator, researcher or regulator")
	}
	n, err := pageSize(pageSizeArg)
	if err != nil {
		return nil, err
	}
	items, next, err := scanRecords(ctx.GetStub(), objActor, bookmark, n, c.scanBudget(), func(a *wire.Actor) bool {
		return role == "" || a.Role == role
	})
	if err != nil {
		return nil, err
	}
	return &wire.ActorPage{Items: items, Bookmark: next, Count: len(items)}, nil
}

func (c *Contract) scanBudget() int {
	if c.registryScan > 0 {
		return c.registryScan
	}
	return wire.MaxRegistryScan
}

// scanRecords pages through the JSON records of obj in key order, after
// the key the bookmark names, keeping those keep accepts: at most limit of
// them, examining at most budget records. It returns the bookmark of the
// next page: the key of the last item returned when another kept record
// follows within the budget, the key of the last record examined when the
// budget ran out first, and "" when the records are exhausted.
//
// It reads with Fabric's paginated queries, whose bookmark is the key to
// start from: a page starts at the bookmark's own key, which is skipped.
// Paginated reads are allowed in queries only, which is all this serves.
func scanRecords[T any](stub shim.ChaincodeStubInterface, obj, bookmark string, limit, budget int, keep func(*T) bool) ([]T, string, error) {
	after, err := decodeBookmark(stub, bookmark, obj, nil)
	if err != nil {
		return nil, "", err
	}
	if !utf8.ValidString(after) {
		return nil, "", invalid("bookmark is malformed")
	}
	items := []T{}
	lastItem, lastSeen := "", ""
	examined := 0
	from := after
	for examined < budget {
		it, meta, err := stub.GetStateByPartialCompositeKeyWithPagination(obj, nil, int32(min(budget-examined, scanChunk)), from)
		if err != nil {
			return nil, "", fmt.Errorf("query %s: %w", obj, err)
		}
		more, err := func() (bool, error) {
			defer it.Close()
			for it.HasNext() {
				kv, err := it.Next()
				if err != nil {
					return false, fmt.Errorf("iterate %s: %w", obj, err)
				}
				if kv.Key == after {
					continue
				}
				examined++
				lastSeen = kv.Key
				var v T
				if err := json.Unmarshal(kv.Value, &v); err != nil {
					return false, fmt.Errorf("decode %s record: %w", obj, err)
				}
				if !keep(&v) {
					continue
				}
				if len(items) == limit {
					return true, nil
				}
				items = append(items, v)
				lastItem = kv.Key
			}
			return false, nil
		}()
		if err != nil {
			return nil, "", err
		}
		if more {
			return items, encodeBookmark(lastItem), nil
		}
		if meta == nil || meta.Bookmark == "" {
			return items, "", nil
		}
		from = meta.Bookmark
	}
	return items, encodeBookmark(lastSeen), nil
}

// GetDeviceStats returns the number of readings recorded for a device and
// its reading with the highest seq, or a not_found refusal for an unknown
// device.
//
// Readings are keyed [deviceId, seq] with no counter (a counter key would
// make every batch of a device conflict with the next), so counting is a
// scan of the device's reading keys in paginated reads. It stops at
// wire.MaxDeviceStatsScan readings: beyond that the count is the cap and
// readingsCapped is true. The last reading is the last key of a complete
// scan; after a capped one it is found by binary search over the seq
// space, each step a paginated read of one key starting at a seq (about 53
// reads at most), so it is exact either way.
func (c *Contract) GetDeviceStats(ctx contractapi.TransactionContextInterface, deviceID string) (*wire.DeviceStats, error) {
	stub := ctx.GetStub()
	if !wire.ValidID(deviceID) {
		return nil, invalid("device id is malformed")
	}
	if _, found, err := getDevice(stub, deviceID); err != nil {
		return nil, err
	} else if !found {
		return nil, refuse(wire.CodeNotFound, "device %s not found", deviceID)
	}
	limit := wire.MaxDeviceStatsScan
	if c.statsScan > 0 {
		limit = c.statsScan
	}
	prefix := []string{deviceID}
	st := &wire.DeviceStats{DeviceID: deviceID}
	var last []byte // the value of the last reading key scanned
	from := ""
	for st.Readings < limit {
		it, meta, err := stub.GetStateByPartialCompositeKeyWithPagination(objReading, prefix, int32(min(limit-st.Readings, scanChunk)), from)
		if err != nil {
			return nil, fmt.Errorf("query %s: %w", objReading, err)
		}
		err = func() error {
			defer it.Close()
			for it.HasNext() {
				kv, err := it.Next()
				if err != nil {
					return fmt.Errorf("iterate %s: %w", objReading, err)
				}
				st.Readings++
				last = kv.Value
			}
			return nil
		}()
		if err != nil {
			return nil, err
		}
		from = ""
		if meta != nil {
			from = meta.Bookmark
		}
		if from == "" {
			break
		}
	}
	if from != "" {
		// The scan stopped at the cap with readings left: the count is a
		// lower bound and the last reading lies beyond the scan.
		st.ReadingsCapped = true
		var err error
		if last, err = lastReading(stub, deviceID, last); err != nil {
			return nil, err
		}
	}
	if last != nil {
		var r wire.Reading
		if err := json.Unmarshal(last, &r); err != nil {
			return nil, fmt.Errorf("decode reading record: %w", err)
		}
		st.LastReading = &wire.LastReading{ReadingID: r.ID, Seq: r.Seq, MeasuredAt: r.MeasuredAt, TxID: r.TxID, TxTime: r.TxTime}
	}
	return st, nil
}

// lastReading finds the device's reading with the highest seq, given the
// value of one of its readings (known), by binary search: lo always names a
// recorded seq and no reading has a seq at or above hi. Each probe reads
// the first reading key at or above a seq.
func lastReading(stub shim.ChaincodeStubInterface, deviceID string, known []byte) ([]byte, error) {
	var r wire.Reading
	if err := json.Unmarshal(known, &r); err != nil {
		return nil, fmt.Errorf("decode reading record: %w", err)
	}
	lo, hi, val := r.Seq, uint64(wire.MaxSeq)+1, known
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		seq, v, found, err := firstReadingFrom(stub, deviceID, mid)
		if err != nil {
			return nil, err
		}
		if !found || seq >= hi {
			hi = mid
			continue
		}
		lo, val = seq, v
	}
	return val, nil
}

// firstReadingFrom returns the seq and value of the device's first reading
// with a seq at or above from.
func firstReadingFrom(stub shim.ChaincodeStubInterface, deviceID string, from uint64) (uint64, []byte, bool, error) {
	start, err := key(stub, objReading, deviceID, seqString(from))
	if err != nil {
		return 0, nil, false, fmt.Errorf("reading key: %w", err)
	}
	it, _, err := stub.GetStateByPartialCompositeKeyWithPagination(objReading, []string{deviceID}, 1, start)
	if err != nil {
		return 0, nil, false, fmt.Errorf("query %s: %w", objReading, err)
	}
	defer it.Close()
	if !it.HasNext() {
		return 0, nil, false, nil
	}
	kv, err := it.Next()
	if err != nil {
		return 0, nil, false, fmt.Errorf("iterate %s: %w", objReading, err)
	}
	_, attrs, err := stub.SplitCompositeKey(kv.Key)
	if err != nil {
		return 0, nil, false, fmt.Errorf("split %s key: %w", objReading, err)
	}
	if len(attrs) != 2 {
		return 0, nil, false, fmt.Errorf("%s key has %d attributes", objReading, len(attrs))
	}
	seq, err := strconv.ParseUint(attrs[1], 10, 64)
	if err != nil {
		return 0, nil, false, fmt.Errorf("%s key seq %q: %w", objReading, attrs[1], err)
	}
	return seq, kv.Value, true, nil
}
