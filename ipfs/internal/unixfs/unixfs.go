// Package unixfs lays bytes out as a UnixFS file the way
// `ipfs add --cid-version=1` does, and reads such files back while checking
// every block against its CID. Both blob store backends use it, so they agree
// on CIDs and on what counts as corrupt.
package unixfs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"

	chunk "github.com/ipfs/boxo/chunker"
	"github.com/ipfs/boxo/ipld/merkledag"
	ft "github.com/ipfs/boxo/ipld/unixfs"
	"github.com/ipfs/boxo/ipld/unixfs/importer/balanced"
	"github.com/ipfs/boxo/ipld/unixfs/importer/helpers"
	uio "github.com/ipfs/boxo/ipld/unixfs/io"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	"github.com/multiformats/go-multihash"

	"github.com/medprov/medprov/ipfs"
)

// ChunkSize is the leaf size kubo uses by default (size-262144).
const ChunkSize = 262144

// cidBuilder makes CIDv1 with SHA2-256; leaves get the raw codec.
var cidBuilder = cid.V1Builder{Codec: cid.DagProtobuf, MhType: multihash.SHA2_256, MhLength: -1}

// Build lays data out as a balanced UnixFS DAG with 256 KiB raw leaves and
// CIDv1, as `ipfs add --cid-version=1` does, and returns the root CID and
// every block, root last.
func Build(data []byte) (cid.Cid, []blocks.Block, error) {
	col := &collector{}
	params := helpers.DagBuilderParams{
		Maxlinks:   helpers.DefaultLinksPerBlock,
		RawLeaves:  true,
		CidBuilder: cidBuilder,
		Dagserv:    col,
	}
	db, err := params.New(chunk.NewSizeSplitter(bytes.NewReader(data), ChunkSize))
	if err != nil {
		return cid.Undef, nil, fmt.Errorf("unixfs: dag builder: %w", err)
	}
	root, err := balanced.Layout(db)
	if err != nil {
		return cid.Undef, nil, fmt.Errorf("unixfs: layout: %w", err)
	}
	return root.Cid(), col.blocks, nil
}

// GetBlockFunc returns the stored bytes of one block; it reports a missing
// block with an error wrapping ipfs.ErrNotFound.
type GetBlockFunc func(ctx context.Context, c cid.Cid) ([]byte, error)

// Read reassembles the file whose root is root, fetching blocks with get and
// checking each against its CID (ipfs.ErrCorrupt on mismatch).
func Read(ctx context.Context, get GetBlockFunc, root cid.Cid) ([]byte, error) {
	ng := nodeGetter{get: get}
	nd, err := ng.Get(ctx, root)
	if err != nil {
		return nil, err
	}
	r, err := uio.NewDagReader(ctx, nd, ng)
	if err != nil {
		return nil, fmt.Errorf("unixfs: %s is not a file: %w", root, err)
	}
	defer r.Close()
	out := make([]byte, 0, r.Size())
	buf := bytes.NewBuffer(out)
	if _, err := io.Copy(buf, r); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Verify checks that data hashes to c, returning ipfs.ErrCorrupt if not.
func Verify(c cid.Cid, data []byte) error {
	got, err := c.Prefix().Sum(data)
	if err != nil {
		return fmt.Errorf("unixfs: hash %s: %w", c, err)
	}
	if !got.Equals(c) {
		return fmt.Errorf("%w: block %s hashes to %s", ipfs.ErrCorrupt, c, got)
	}
	return nil
}

// Decode verifies a block and decodes it as a dag-pb or raw node.
func Decode(c cid.Cid, data []byte) (ipld.Node, error) {
	if err := Verify(c, data); err != nil {
		return nil, err
	}
	b, err := blocks.NewBlockWithCid(data, c)
	if err != nil {
		return nil, fmt.Errorf("unixfs: block %s: %w", c, err)
	}
	switch c.Type() {
	case cid.DagProtobuf:
		nd, err := merkledag.DecodeProtobufBlock(b)
		if err != nil {
			return nil, fmt.Errorf("unixfs: decode %s: %w", c, err)
		}
		return nd, nil
	case cid.Raw:
		nd, err := merkledag.DecodeRawBlock(b)
		if err != nil {
			return nil, fmt.Errorf("unixfs: decode %s: %w", c, err)
		}
		return nd, nil
	default:
		return nil, fmt.Errorf("unixfs: block %s has codec %#x, want dag-pb or raw", c, c.Type())
	}
}

// nodeGetter serves verified nodes to the UnixFS reader.
type nodeGetter struct{ get GetBlockFunc }

func (g nodeGetter) Get(ctx context.Context, c cid.Cid) (ipld.Node, error) {
	data, err := g.get(ctx, c)
	if err != nil {
		return nil, err
	}
	return Decode(c, data)
}

func (g nodeGetter) GetMany(ctx context.Context, cids []cid.Cid) <-chan *ipld.NodeOption {
	out := make(chan *ipld.NodeOption, len(cids))
	go func() {
		defer close(out)
		for _, c := range cids {
			nd, err := g.Get(ctx, c)
			select {
			case out <- &ipld.NodeOption{Node: nd, Err: err}:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}

// collector is a write-only DAG service that keeps the blocks it is given.
type collector struct{ blocks []blocks.Block }

var errWriteOnly = errors.New("unixfs: collector is write-only")

func (c *collector) Add(_ context.Context, nd ipld.Node) error {
	c.blocks = append(c.blocks, nd)
	return nil
}

func (c *collector) AddMany(ctx context.Context, nds []ipld.Node) error {
	for _, nd := range nds {
		if err := c.Add(ctx, nd); err != nil {
			return err
		}
	}
	return nil
}

func (c *collector) Get(context.Context, cid.Cid) (ipld.Node, error) { return nil, errWriteOnly }

func (c *collector) GetMany(context.Context, []cid.Cid) <-chan *ipld.NodeOption {
	out := make(chan *ipld.NodeOption, 1)
	out <- &ipld.NodeOption{Err: errWriteOnly}
	close(out)
	return out
}

func (c *collector) Remove(context.Context, cid.Cid) error       { return errWriteOnly }
func (c *collector) RemoveMany(context.Context, []cid.Cid) error { return errWriteOnly }

// Batch returns a UnixFS directory node (CIDv1, dag-pb) whose entries "0",
// "1", ... link the given file roots, with sizes[i] the total bytes of the
// blocks under roots[i]. Pinning this one node recursively keeps every file
// of the batch, so a store pins a batch with one pin instead of one per file.
func Batch(roots []cid.Cid, sizes []uint64) (blocks.Block, error) {
	if len(roots) != len(sizes) {
		return nil, errors.New("unixfs: batch roots and sizes differ in length")
	}
	dir := merkledag.NodeWithData(ft.FolderPBData())
	if err := dir.SetCidBuilder(cidBuilder); err != nil {
		return nil, fmt.Errorf("unixfs: batch: %w", err)
	}
	for i, r := range roots {
		if err := dir.AddRawLink(strconv.Itoa(i), &ipld.Link{Cid: r, Size: sizes[i]}); err != nil {
			return nil, fmt.Errorf("unixfs: batch link %d: %w", i, err)
		}
	}
	b, err := blocks.NewBlockWithCid(dir.RawData(), dir.Cid())
	if err != nil {
		return nil, fmt.Errorf("unixfs: batch block: %w", err)
	}
	return b, nil
}
