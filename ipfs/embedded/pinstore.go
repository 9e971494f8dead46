package embedded

import (
	"context"
	"fmt"

	"github.com/ipfs/go-cid"
	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/opt"
	"github.com/syndtr/goleveldb/leveldb/util"
)

// pinPrefix starts the key of every recursively pinned root in pins/.
var pinPrefix = []byte("r/")

// pinSet is the store's set of recursively pinned roots: one LevelDB key per
// root. The store has no garbage collector, so it needs no reference
// counting or indirect-pin index; boxo's dspinner kept several index
// records per pin and dominated the cost of storing small readings (about
// 12% of the gateway's CPU under load). Writes are synced before they
// return.
type pinSet struct{ db *leveldb.DB }

func openPinSet(path string) (pinSet, error) {
	db, err := leveldb.OpenFile(path, nil)
	if err != nil {
		return pinSet{}, fmt.Errorf("open pins: %w", err)
	}
	return pinSet{db: db}, nil
}

func pinKey(c cid.Cid) []byte { return append(append([]byte{}, pinPrefix...), c.Bytes()...) }

// add pins roots with one synced batch.
func (p pinSet) add(roots ...cid.Cid) error {
	var b leveldb.Batch
	for _, r := range roots {
		b.Put(pinKey(r), nil)
	}
	if err := p.db.Write(&b, &opt.WriteOptions{Sync: true}); err != nil {
		return fmt.Errorf("write pins: %w", err)
	}
	return nil
}

// remove unpins root; removing an absent pin is not an error.
func (p pinSet) remove(root cid.Cid) error {
	if err := p.db.Delete(pinKey(root), &opt.WriteOptions{Sync: true}); err != nil {
		return fmt.Errorf("delete pin: %w", err)
	}
	return nil
}

// list returns the pinned roots in key order.
func (p pinSet) list(ctx context.Context) ([]cid.Cid, error) {
	it := p.db.NewIterator(util.BytesPrefix(pinPrefix), nil)
	defer it.Release()
	var out []cid.Cid
	for it.Next() {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		c, err := cid.Cast(it.Key()[len(pinPrefix):])
		if err != nil {
			return nil, fmt.Errorf("stored pin: %w", err)
		}
		out = append(out, c)
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("list pins: %w", err)
	}
	return out, nil
}

func (p pinSet) close() error { return p.db.Close() }
