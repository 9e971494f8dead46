// Package kubo is the medprov blob store backed by a kubo (go-ipfs) daemon,
// reached over its HTTP RPC API with github.com/ipfs/go-ipfs-api.
//
// Content is added as `ipfs add --cid-version=1` does (raw leaves, 256 KiB
// chunks, SHA2-256) and pinned, so CIDs match the embedded store. Get does
// not trust the daemon: it fetches the DAG as a CAR stream (dag/export) and
// checks every block against its CID before reassembling the file. Every
// request carries the caller's context and is bounded by Config.Timeout; a
// daemon that is down, refuses, or does not answer in time yields
// ipfs.ErrUnavailable, which is the caller's cue to retry by its own policy.
// When the caller's context ends first, the error wraps ipfs.ErrUnavailable
// and the context's error.
//
// The RPC API is an admin API: run kubo with it bound to 127.0.0.1 only
// (scripts/kubo.sh does).
package kubo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	files "github.com/ipfs/boxo/files"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	shell "github.com/ipfs/go-ipfs-api"
	car "github.com/ipld/go-car/v2"
	"github.com/ipld/go-car/v2/storage"

	"github.com/medprov/medprov/ipfs"
	"github.com/medprov/medprov/ipfs/internal/unixfs"
)

// DefaultTimeout bounds one request when Config.Timeout is zero.
const DefaultTimeout = 30 * time.Second

// Config configures [New].
type Config struct {
	// API is the daemon's RPC address: "127.0.0.1:5001" or a URL such as
	// "http://127.0.0.1:5001".
	API string
	// Timeout bounds each request from dialling to the end of the response
	// body; zero means DefaultTimeout. Connecting is bounded by the smaller
	// of Timeout and two seconds.
	Timeout time.Duration
}

// Store is the kubo-backed [ipfs.Store]. It is safe for concurrent use.
type Store struct {
	sh      *shell.Shell
	client  *http.Client
	timeout time.Duration
	// bulkSh shares the connection pool but has no overall deadline, for
	// CAR imports whose size has no useful bound; the caller's context and
	// the transport's dial and response-header timeouts bound them.
	bulkSh *shell.Shell
	closed atomic.Bool
}

// errClosed reports a call on a closed Store.
var errClosed = errors.New("store is closed")

var (
	_ ipfs.Store       = (*Store)(nil)
	_ ipfs.CARImporter = (*Store)(nil)
)

// New connects to the daemon at cfg.API and checks that it answers; if it
// does not, the error wraps ipfs.ErrUnavailable.
func New(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.API == "" {
		return nil, errors.New("kubo: API address is empty")
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	base := cfg.API
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	if _, err := url.Parse(base); err != nil {
		return nil, fmt.Errorf("kubo: API address %q: %w", cfg.API, err)
	}
	dialer := &net.Dialer{Timeout: min(timeout, 2*time.Second)}
	client := &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			Proxy:                 nil, // the daemon is local; never go through a proxy
			DialContext:           dialer.DialContext,
			MaxIdleConnsPerHost:   32,
			IdleConnTimeout:       90 * time.Second,
			ResponseHeaderTimeout: timeout,
		},
	}
	bulk := *client
	bulk.Timeout = 0
	s := &Store{
		sh:      shell.NewShellWithClient(base, client),
		client:  client,
		timeout: timeout,
		bulkSh:  shell.NewShellWithClient(base, &bulk),
	}
	if err := s.ping(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// Close releases idle connections; the daemon keeps running. Every later
// call fails.
func (s *Store) Close() error {
	s.closed.Store(true)
	s.client.CloseIdleConnections()
	return nil
}

func (s *Store) ping(ctx context.Context) error {
	var v struct{ Version string }
	if err := s.exec(ctx, s.sh.Request("version"), &v); err != nil {
		return fmt.Errorf("kubo: version: %w", err)
	}
	return nil
}

// Put adds data, pins it and returns its CID.
func (s *Store) Put(ctx context.Context, data []byte) (string, error) {
	cids, err := s.PutMany(ctx, [][]byte{data})
	if err != nil {
		return "", err
	}
	return cids[0], nil
}

// addEntry is one line of kubo's add output.
type addEntry struct {
	Name string
	Hash string
}

// PutMany lays every payload out locally exactly as add does and sends all
// blocks to the daemon in one dag/import request (a CARv1 stream whose roots
// are the payloads, pinned by kubo), returning the CIDs in input order. kubo
// checks every block against its CID on import. This is one round trip for
// the batch, and faster in kubo than a multi-file add, which fsyncs per file.
func (s *Store) PutMany(ctx context.Context, data [][]byte) ([]string, error) {
	if s.closed.Load() {
		return nil, fmt.Errorf("kubo: put: %w", errClosed)
	}
	if len(data) == 0 {
		return nil, nil
	}
	if len(data) == 1 {
		return s.add(ctx, data)
	}
	roots := make([]cid.Cid, len(data))
	sizes := make([]uint64, len(data))
	var all []blocks.Block
	for i, d := range data {
		root, blks, err := unixfs.Build(d)
		if err != nil {
			return nil, fmt.Errorf("kubo: put payload %d: %w", i, err)
		}
		roots[i] = root
		for _, b := range blks {
			sizes[i] += uint64(len(b.RawData()))
		}
		all = append(all, blks...)
	}
	// kubo flushes its pin set (an fsync) for every root it pins, so
	// pinning each payload costs a disk sync per reading. One directory
	// node linking the whole batch is pinned instead: one pin per batch.
	batch, err := unixfs.Batch(roots, sizes)
	if err != nil {
		return nil, fmt.Errorf("kubo: %w", err)
	}
	all = append(all, batch)
	var buf bytes.Buffer
	cw, err := storage.NewWritable(&buf, []cid.Cid{batch.Cid()}, car.WriteAsCarV1(true))
	if err != nil {
		return nil, fmt.Errorf("kubo: car writer: %w", err)
	}
	for _, b := range all {
		if err := cw.Put(ctx, b.Cid().KeyString(), b.RawData()); err != nil {
			return nil, fmt.Errorf("kubo: car block %s: %w", b.Cid(), err)
		}
	}
	if err := cw.Finalize(); err != nil {
		return nil, fmt.Errorf("kubo: finish car: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	pinned, err := s.ImportCAR(ctx, &buf)
	if err != nil {
		return nil, err
	}
	if len(pinned) != 1 || pinned[0] != batch.Cid().String() {
		return nil, fmt.Errorf("kubo: dag import pinned %v, want the batch %s", pinned, batch.Cid())
	}
	out := make([]string, len(roots))
	for i, r := range roots {
		out[i] = r.String()
	}
	return out, nil
}

// add adds payloads as files of one multipart add request, which computes
// the CIDs in kubo, and returns them in input order.
func (s *Store) add(ctx context.Context, data [][]byte) ([]string, error) {
	entries := make([]files.DirEntry, len(data))
	for i, d := range data {
		entries[i] = files.FileEntry(strconv.Itoa(i), files.NewBytesFile(d))
	}
	body := files.NewMultiFileReader(files.NewSliceDirectory(entries), true, false)
	req := s.sh.Request("add").
		Option("cid-version", 1).
		Option("raw-leaves", true).
		Option("chunker", fmt.Sprintf("size-%d", unixfs.ChunkSize)).
		Option("hash", "sha2-256").
		Option("pin", true).
		Option("progress", false).
		Body(body)
	resp, err := s.send(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("kubo: add: %w", err)
	}
	defer resp.Close()
	out := make([]string, len(data))
	dec := json.NewDecoder(resp.Output)
	for {
		var e addEntry
		if err := dec.Decode(&e); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, fmt.Errorf("kubo: add: read result: %w", classify(err))
		}
		i, err := strconv.Atoi(e.Name)
		if err != nil || i < 0 || i >= len(out) {
			return nil, fmt.Errorf("kubo: add: unexpected entry %q in result", e.Name)
		}
		if _, err := cid.Decode(e.Hash); err != nil {
			return nil, fmt.Errorf("kubo: add: entry %d: bad CID %q: %w", i, e.Hash, err)
		}
		out[i] = e.Hash
	}
	for i, c := range out {
		if c == "" {
			return nil, fmt.Errorf("kubo: add: no CID for payload %d", i)
		}
	}
	return out, nil
}

// Get fetches the DAG under c as a CAR stream and reassembles the file,
// checking every block against its CID. It never asks the daemon to search
// the network.
func (s *Store) Get(ctx context.Context, c string) ([]byte, error) {
	root, err := parseCID(c)
	if err != nil {
		return nil, err
	}
	resp, err := s.send(ctx, s.sh.Request("dag/export", root.String()).Option("offline", true).Option("progress", false))
	if err != nil {
		return nil, fmt.Errorf("kubo: get %s: %w", c, err)
	}
	defer resp.Close()
	// Blocks are checked by unixfs.Read below, with errors callers can test.
	br, err := car.NewBlockReader(resp.Output, car.WithTrustedCAR(true))
	if err != nil {
		return nil, fmt.Errorf("kubo: get %s: read car: %w", c, classify(err))
	}
	got := make(map[cid.Cid][]byte)
	for {
		b, err := br.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			// A daemon that read a corrupt block may fail in ways that hide
			// it (a link altered in a parent points nowhere): blame the
			// blocks received so far first.
			if verr := verifyAll(got); verr != nil {
				return nil, fmt.Errorf("kubo: get %s: %w", c, verr)
			}
			return nil, fmt.Errorf("kubo: get %s: read car: %w", c, classify(err))
		}
		got[b.Cid()] = b.RawData()
	}
	data, err := unixfs.Read(ctx, func(_ context.Context, bc cid.Cid) ([]byte, error) {
		d, ok := got[bc]
		if !ok {
			return nil, fmt.Errorf("%w: block %s missing from export", ipfs.ErrNotFound, bc)
		}
		return d, nil
	}, root)
	if err != nil {
		return nil, fmt.Errorf("kubo: get %s: %w", c, err)
	}
	return data, nil
}

// verifyAll checks every block against its CID.
func verifyAll(blocks map[cid.Cid][]byte) error {
	for c, data := range blocks {
		if err := unixfs.Verify(c, data); err != nil {
			return err
		}
	}
	return nil
}

// Has reports whether the daemon holds the root block of c.
func (s *Store) Has(ctx context.Context, c string) (bool, error) {
	root, err := parseCID(c)
	if err != nil {
		return false, err
	}
	var st struct{ Key string }
	err = s.exec(ctx, s.sh.Request("block/stat", root.String()).Option("offline", true), &st)
	if errors.Is(err, ipfs.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("kubo: has %s: %w", c, err)
	}
	return true, nil
}

// Pin pins c recursively; it fails with ipfs.ErrNotFound if any block is
// missing.
func (s *Store) Pin(ctx context.Context, c string) error {
	root, err := parseCID(c)
	if err != nil {
		return err
	}
	var out struct{ Pins []string }
	if err := s.exec(ctx, s.sh.Request("pin/add", root.String()).Option("recursive", true).Option("offline", true), &out); err != nil {
		return fmt.Errorf("kubo: pin %s: %w", c, err)
	}
	return nil
}

// Unpin removes the recursive pin of c, if any.
func (s *Store) Unpin(ctx context.Context, c string) error {
	root, err := parseCID(c)
	if err != nil {
		return err
	}
	var out struct{ Pins []string }
	err = s.exec(ctx, s.sh.Request("pin/rm", root.String()).Option("recursive", true), &out)
	var apiErr *shell.Error
	if errors.As(err, &apiErr) && strings.Contains(apiErr.Message, "not pinned") {
		return nil
	}
	if err != nil {
		return fmt.Errorf("kubo: unpin %s: %w", c, err)
	}
	return nil
}

// importEntry is one line of kubo's dag/import output.
type importEntry struct {
	Root *struct {
		Cid struct {
			Target string `json:"/"`
		}
		PinErrorMsg string
	}
}

// ImportCAR imports a CAR stream with dag/import, pinning its roots, and
// returns the roots. kubo checks every block against its CID. Because a CAR
// may be arbitrarily large, Config.Timeout does not bound the whole import:
// connecting and the wait for the daemon's answer after the upload are
// bounded, the upload itself only by ctx.
func (s *Store) ImportCAR(ctx context.Context, r io.Reader) ([]string, error) {
	body := files.NewMultiFileReader(files.NewSliceDirectory([]files.DirEntry{
		files.FileEntry("import.car", files.NewReaderFile(r)),
	}), true, false)
	req := s.bulkSh.Request("dag/import").Option("pin-roots", true).Option("stats", false).Body(body)
	// A CAR can be large: bound it by the caller's context, not by Timeout.
	resp, err := s.sendUnbounded(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("kubo: dag import: %w", err)
	}
	defer resp.Close()
	var roots []string
	dec := json.NewDecoder(resp.Output)
	for {
		var e importEntry
		if err := dec.Decode(&e); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, fmt.Errorf("kubo: dag import: read result: %w", classify(err))
		}
		if e.Root == nil {
			continue
		}
		if e.Root.PinErrorMsg != "" {
			return nil, fmt.Errorf("kubo: dag import: pin %s: %s", e.Root.Cid.Target, e.Root.PinErrorMsg)
		}
		roots = append(roots, e.Root.Cid.Target)
	}
	return roots, nil
}

// exec sends req and decodes a single JSON answer into out.
func (s *Store) exec(ctx context.Context, req *shell.RequestBuilder, out any) error {
	resp, err := s.send(ctx, req)
	if err != nil {
		return err
	}
	defer resp.Close()
	if err := json.NewDecoder(resp.Output).Decode(out); err != nil {
		return fmt.Errorf("decode answer: %w", classify(err))
	}
	return nil
}

// send issues req bounded by the store timeout and returns an open response
// or a classified error.
func (s *Store) send(ctx context.Context, req *shell.RequestBuilder) (*shell.Response, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	resp, err := s.sendUnbounded(ctx, req)
	if err != nil {
		cancel()
		return nil, err
	}
	resp.Output = &cancelOnClose{ReadCloser: resp.Output, cancel: cancel}
	return resp, nil
}

func (s *Store) sendUnbounded(ctx context.Context, req *shell.RequestBuilder) (*shell.Response, error) {
	if s.closed.Load() {
		return nil, errClosed
	}
	resp, err := req.Send(ctx)
	if err != nil {
		return nil, classify(err)
	}
	if resp.Error != nil {
		return nil, classify(resp.Error)
	}
	return resp, nil
}

// cancelOnClose releases a request's context when its body is closed.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c *cancelOnClose) Close() error {
	defer c.cancel()
	return c.ReadCloser.Close()
}

// classify maps transport failures to ipfs.ErrUnavailable, the daemon's
// "not found" answers to ipfs.ErrNotFound and its "hash mismatch" answers
// (a stored block that does not hash to its CID) to ipfs.ErrCorrupt,
// keeping the original error.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var apiErr *shell.Error
	if errors.As(err, &apiErr) {
		switch {
		case isCorrupt(apiErr.Message):
			return fmt.Errorf("%w: %w", ipfs.ErrCorrupt, err)
		case isNotFound(apiErr.Message):
			return fmt.Errorf("%w: %w", ipfs.ErrNotFound, err)
		}
		return err
	}
	var netErr net.Error
	switch {
	case errors.As(err, &netErr),
		errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE):
		return fmt.Errorf("%w: %w", ipfs.ErrUnavailable, err)
	// Errors reported in a stream trailer arrive as plain errors.
	case isCorrupt(err.Error()):
		return fmt.Errorf("%w: %w", ipfs.ErrCorrupt, err)
	case isNotFound(err.Error()):
		return fmt.Errorf("%w: %w", ipfs.ErrNotFound, err)
	}
	var urlErr *url.Error
	if errors.As(err, &urlErr) {
		return fmt.Errorf("%w: %w", ipfs.ErrUnavailable, err)
	}
	return err
}

// isCorrupt recognises the daemon's report of a block that does not hash to
// its CID (go-ipld-prime's ErrHashMismatch, met while walking a DAG).
func isCorrupt(msg string) bool {
	return strings.Contains(msg, "hash mismatch")
}

func isNotFound(msg string) bool {
	if strings.Contains(msg, "command not found") { // a 404 for an unknown RPC
		return false
	}
	return strings.Contains(msg, "not found") || strings.Contains(msg, "could not find")
}

func parseCID(s string) (cid.Cid, error) {
	c, err := cid.Decode(s)
	if err != nil {
		return cid.Undef, fmt.Errorf("%w %q: %w", ipfs.ErrInvalidCID, s, err)
	}
	return c, nil
}
