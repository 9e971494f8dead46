package embedded

import (
	"context"
	"fmt"

	ds "github.com/ipfs/go-datastore"
	leveldb "github.com/ipfs/go-ds-leveldb"
	"github.com/syndtr/goleveldb/leveldb/opt"
)

// syncMarker is written with fsync to make every earlier write durable.
var syncMarker = []byte("/medprov/sync")

// pinStore is the pinner's LevelDB datastore with writes made durable once
// per Sync rather than once per key: the pinner writes several index keys
// per pin and syncs on Flush, which Store calls at the end of every Put,
// PutMany, Pin and Unpin.
type pinStore struct {
	*leveldb.Datastore
}

func (p pinStore) Put(_ context.Context, key ds.Key, value []byte) error {
	return p.DB.Put(key.Bytes(), value, &opt.WriteOptions{Sync: false})
}

func (p pinStore) Delete(_ context.Context, key ds.Key) error {
	return p.DB.Delete(key.Bytes(), &opt.WriteOptions{Sync: false})
}

// Sync fsyncs LevelDB's journal, which holds every write made so far.
func (p pinStore) Sync(context.Context, ds.Key) error {
	if err := p.DB.Put(syncMarker, nil, &opt.WriteOptions{Sync: true}); err != nil {
		return fmt.Errorf("sync pins: %w", err)
	}
	return nil
}
