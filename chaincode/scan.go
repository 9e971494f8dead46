package chaincode

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"

	"github.com/medprov/medprov/wire"

	"github.com/hyperledger/fabric-chaincode-go/v2/shim"
)

// monthQuery walks a month-bucketed index in key order. The marker object
// holds one key [prefix..., rest..., YYYY-MM] per non-empty bucket; the index
// object holds [marker attributes..., fixed-width time, id...]. Markers let a
// query visit only non-empty months, and the time attribute bounds it within
// a month. Works with plain (non-paginated) partial composite key queries, so
// it runs in submit transactions too.
type monthQuery struct {
	marker, index string
	prefix        []string
	from, to      string // fixed-width times, inclusive; "" = open
	after         string // index key of the last item already returned; "" = start
}

// scanMonths visits index entries in key order, after q.after, within
// [q.from, q.to]. load returns the item for an index entry and whether it is
// wanted. It stops after limit wanted items; more reports whether another
// wanted item follows, and last is the key of the last item returned.
func scanMonths[T any](stub shim.ChaincodeStubInterface, q monthQuery, limit int,
	load func(attrs []string) (T, bool, error)) (items []T, last string, more bool, err error) {
	fromMonth, toMonth := "", ""
	if q.from != "" {
		fromMonth = q.from[:7]
	}
	if q.to != "" {
		toMonth = q.to[:7]
	}
	buckets, err := partialKeys(stub, q.marker, q.prefix)
	if err != nil {
		return nil, "", false, err
	}
	items = []T{}
	for _, b := range buckets {
		month := b[len(b)-1]
		if (fromMonth != "" && month < fromMonth) || (toMonth != "" && month > toMonth) {
			continue
		}
		bucketKey, err := stub.CreateCompositeKey(q.index, b)
		if err != nil {
			return nil, "", false, fmt.Errorf("index key: %w", err)
		}
		if q.after != "" && bucketKey < q.after && !strings.HasPrefix(q.after, bucketKey) {
			continue // the whole bucket lies before the bookmark
		}
		done, err := func() (bool, error) {
			it, err := stub.GetStateByPartialCompositeKey(q.index, b)
			if err != nil {
				return false, fmt.Errorf("query %s: %w", q.index, err)
			}
			defer it.Close()
			for it.HasNext() {
				kv, err := it.Next()
				if err != nil {
					return false, fmt.Errorf("iterate %s: %w", q.index, err)
				}
				if q.after != "" && kv.Key <= q.after {
					continue
				}
				_, attrs, err := stub.SplitCompositeKey(kv.Key)
				if err != nil {
					return false, fmt.Errorf("split %s key: %w", q.index, err)
				}
				if len(attrs) <= len(b) {
					return false, fmt.Errorf("%s key has %d attributes", q.index, len(attrs))
				}
				at := attrs[len(b)]
				if (q.from != "" && at < q.from) || (q.to != "" && at > q.to) {
					continue
				}
				item, ok, err := load(attrs)
				if err != nil {
					return false, err
				}
				if !ok {
					continue
				}
				if len(items) == limit {
					more = true
					return true, nil
				}
				items = append(items, item)
				last = kv.Key
			}
			return false, nil
		}()
		if err != nil {
			return nil, "", false, err
		}
		if done {
			break
		}
	}
	return items, last, more, nil
}

// partialKeys returns the attributes of every key of obj under prefix, in key
// order.
func partialKeys(stub shim.ChaincodeStubInterface, obj string, prefix []string) ([][]string, error) {
	it, err := stub.GetStateByPartialCompositeKey(obj, prefix)
	if err != nil {
		return nil, fmt.Errorf("query %s: %w", obj, err)
	}
	defer it.Close()
	var out [][]string
	for it.HasNext() {
		kv, err := it.Next()
		if err != nil {
			return nil, fmt.Errorf("iterate %s: %w", obj, err)
		}
		_, attrs, err := stub.SplitCompositeKey(kv.Key)
		if err != nil {
			return nil, fmt.Errorf("split %s key: %w", obj, err)
		}
		out = append(out, attrs)
	}
	return out, nil
}

// encodeBookmark makes an index key into an opaque, URL-safe bookmark.
func encodeBookmark(k string) string {
	if k == "" {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString([]byte(k))
}

// decodeBookmark checks that a bookmark is an index key of obj under prefix
// and returns the key. A forged bookmark can only move the start of a scan
// within the caller's own prefix.
func decodeBookmark(stub shim.ChaincodeStubInterface, bm, obj string, prefix []string) (string, error) {
	if bm == "" {
		return "", nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(bm)
	if err != nil {
		return "", invalid("bookmark is malformed")
	}
	k := string(raw)
	p, err := stub.CreateCompositeKey(obj, prefix)
	if err != nil {
		return "", fmt.Errorf("bookmark prefix: %w", err)
	}
	if !strings.HasPrefix(k, p) {
		return "", invalid("bookmark does not belong to this query")
	}
	return k, nil
}

// pageSize parses a page size argument: "" is DefaultPageSize.
func pageSize(s string) (int, error) {
	if s == "" {
		return wire.DefaultPageSize, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > wire.MaxPageSize {
		return 0, invalid("pageSize must be an integer in 1..%d", wire.MaxPageSize)
	}
	return n, nil
}

// timeBound parses an optional RFC 3339 bound into fixed-width form.
func timeBound(field, s string) (string, error) {
	if s == "" {
		return "", nil
	}
	t, err := parseTime(field, s)
	if err != nil {
		return "", err
	}
	return formatTime(t), nil
}
