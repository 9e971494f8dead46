// Package ipfs defines medprov's content-addressed blob store: bytes in,
// CID out, bytes back verified against their CID.
//
// Two backends implement [Store]: ipfs/embedded (the default; a boxo
// blockstore on disk) and ipfs/kubo (a kubo daemon over its HTTP RPC API).
// Both lay out content exactly as `ipfs add --cid-version=1` does (256 KiB
// chunks, balanced DAG of at most 174 links per node, raw leaves, CIDv1,
// SHA2-256), so the same bytes get the same CID from either backend and can
// move between them as a CAR file ([Migrate]).
package ipfs

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// Store is a content-addressed blob store.
//
// Contract:
//   - Put stores data as a UnixFS file, pins it and returns its CIDv1 as a
//     string. Putting the same bytes twice returns the same CID and is not an
//     error. Put MUST return only after the content is durable in the store.
//   - PutMany stores many payloads in one operation where the backend allows
//     it (one request to kubo, one batch to disk) and returns their CIDs in
//     the input order, durable and pinned as by Put. On error none of the
//     returned CIDs may be relied on. A backend MAY pin the batch as a whole
//     (one directory node linking every payload, as ipfs/kubo does to avoid
//     one pin flush per payload); Unpin of one payload then does not release
//     it. medprov erases by crypto-shredding, never by unpinning.
//   - Get returns the bytes stored under cid. Every block read MUST be
//     checked against its CID: content that does not hash to its CID fails
//     with ErrCorrupt, never returns wrong bytes. Absent content fails with
//     ErrNotFound; a Store never fetches from the network to find it.
//   - Has reports whether the root block of cid is stored locally.
//   - Pin keeps cid and everything below it from garbage collection (it
//     fails with ErrNotFound if content is missing); Unpin lets it be
//     collected again. Unpinning content that is not pinned is not an error.
//   - Any method fails with ErrUnavailable when the backend cannot answer
//     (daemon down, timed out) within the store's configured bound; such
//     errors are worth retrying, the others are not.
//   - An invalid CID string fails with ErrInvalidCID.
//   - Methods are safe for concurrent use; after Close they fail.
type Store interface {
	Put(ctx context.Context, data []byte) (string, error)
	PutMany(ctx context.Context, data [][]byte) ([]string, error)
	Get(ctx context.Context, cid string) ([]byte, error)
	Has(ctx context.Context, cid string) (bool, error)
	Pin(ctx context.Context, cid string) error
	Unpin(ctx context.Context, cid string) error
	Close() error
}

// Errors shared by every Store. Backends wrap them with detail; callers test
// with errors.Is.
var (
	// ErrNotFound reports content that is not in the store.
	ErrNotFound = errors.New("ipfs: content not found")
	// ErrCorrupt reports content whose bytes do not hash to its CID.
	ErrCorrupt = errors.New("ipfs: content does not match its CID")
	// ErrUnavailable reports a backend that is down or did not answer in
	// time. It is the only error worth retrying.
	ErrUnavailable = errors.New("ipfs: store unavailable")
	// ErrInvalidCID reports a string that is not a CID.
	ErrInvalidCID = errors.New("ipfs: invalid CID")
)

// CARExporter writes all of a store's content as a CARv1 stream whose roots
// are the store's pinned CIDs, and returns those roots.
type CARExporter interface {
	ExportCAR(ctx context.Context, w io.Writer) ([]string, error)
}

// CARImporter reads a CAR stream, checks every block against its CID, stores
// the blocks and pins the CAR's roots, which it returns.
type CARImporter interface {
	ImportCAR(ctx context.Context, r io.Reader) ([]string, error)
}

// Migrate copies everything src holds into dst as one CAR stream, keeping
// every CID, and returns the roots dst pinned (the same as src's pins).
func Migrate(ctx context.Context, dst CARImporter, src CARExporter) ([]string, error) {
	pr, pw := io.Pipe()
	exported := make(chan error, 1)
	go func() {
		_, err := src.ExportCAR(ctx, pw)
		pw.CloseWithError(err)
		exported <- err
	}()
	roots, importErr := dst.ImportCAR(ctx, pr)
	// Unblock the exporter if the importer stopped reading early.
	pr.CloseWithError(errors.New("ipfs: import ended"))
	exportErr := <-exported
	if importErr != nil {
		return nil, fmt.Errorf("ipfs: migrate: import: %w", importErr)
	}
	if exportErr != nil {
		return nil, fmt.Errorf("ipfs: migrate: export: %w", exportErr)
	}
	return roots, nil
}
