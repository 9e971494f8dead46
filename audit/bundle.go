// Package audit takes evidence away from a medprov ledger and checks it
// without the ledger: Export writes a bundle (one tar file) of what a
// scope needs, Verify checks a bundle against a pinned trust root on a
// machine with no network and no medprov server, and checkpoints pin a
// chain's tip so a later bundle must extend that exact chain.
//
// A bundle holds every block header from genesis to the tip (linkage), the
// full blocks that hold the scope's transactions and the tip block (the
// orderers' signatures over it anchor every header before it), the ledger
// records of the scope as the chaincode answers them (an index for
// people: Verify trusts only what it finds in verified blocks), and,
// optionally, the scope's ciphertexts. Its size scales with the scope and
// the number of blocks (about 100 bytes of header each), not with the
// ledger's data.
package audit

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/medprov/medprov/evidence"
	"github.com/medprov/medprov/wire"
)

// BundleFormat names the bundle format this package writes and reads.
const BundleFormat = "medprov-audit-bundle/1"

// ErrBundle reports a bundle that cannot be read: not a tar, a missing or
// extra member, a member whose hash differs from the manifest's, or one
// beyond the size limits.
var ErrBundle = errors.New("audit: malformed bundle")

// Scope is what a bundle is about: one patient, or one reading, and
// optionally a window of transaction times.
type Scope struct {
	PatientID string `json:"patientId,omitempty"`
	ReadingID string `json:"readingId,omitempty"`
	From      string `json:"from,omitempty"`
	To        string `json:"to,omitempty"`
}

// Manifest describes a bundle; it is the tar's last member and names the
// SHA-256 of every other one.
type Manifest struct {
	Format  string    `json:"format"`
	Backend string    `json:"backend"`
	Channel string    `json:"channel"`
	Scope   Scope     `json:"scope"`
	Created time.Time `json:"created"`
	// Tip is the newest block's number when the bundle was made.
	Tip uint64 `json:"tip"`
	// Blocks are the numbers of the full blocks included.
	Blocks []uint64 `json:"blocks"`
	// Transactions are the scope's transactions (ID and block).
	Transactions []TxRef `json:"transactions"`
	// Files maps each member name to its SHA-256 (hex).
	Files map[string]string `json:"files"`
}

// TxRef names a transaction of the scope and its block.
type TxRef struct {
	TxID  string `json:"txId"`
	Block uint64 `json:"block"`
}

// Records are the scope's ledger records as the chaincode answered them
// when the bundle was made.
type Records struct {
	Readings []wire.Reading     `json:"readings"`
	Consents []wire.Consent     `json:"consents"`
	Access   []wire.AccessEvent `json:"access"`
	Audit    []wire.AuditEvent  `json:"audit"`
	Devices  []wire.Device      `json:"devices"`
	Actors   []wire.Actor       `json:"actors"`
}

// Bundle is a bundle in memory.
type Bundle struct {
	Manifest Manifest
	// Headers are every block's header, genesis first.
	Headers []evidence.Header
	// Blocks are raw full blocks by number (the backend's encoding).
	Blocks map[uint64][]byte
	// Trust is the trust root the exporting node reported; informative
	// only: Verify uses the one the verifier pinned.
	Trust   *evidence.Trust
	Records Records
	// Ciphertexts are the scope's encrypted readings by CID, if exported.
	Ciphertexts map[string][]byte
}

// Limits of what Read accepts.
const (
	maxMember = 256 << 20
	maxTotal  = 4 << 30
)

// member names.
const (
	fileManifest = "manifest.json"
	fileHeaders  = "headers.jsonl"
	fileTrust    = "trust.json"
	fileRecords  = "records.json"
	dirBlocks    = "blocks/"
	dirCipher    = "ciphertexts/"
)

// Write writes b as a tar: headers, blocks, trust, records, ciphertexts,
// then the manifest with every member's hash. The order and the members'
// metadata are fixed, so the same bundle writes the same bytes.
func Write(w io.Writer, b *Bundle) error {
	tw := tar.NewWriter(w)
	m := b.Manifest
	m.Format = BundleFormat
	m.Files = map[string]string{}
	m.Blocks = m.Blocks[:0:0]
	put := func(name string, data []byte) error {
		sum := sha256.Sum256(data)
		m.Files[name] = hex.EncodeToString(sum[:])
		return writeMember(tw, name, data, m.Created)
	}
	var hb bytes.Buffer
	enc := json.NewEncoder(&hb)
	for _, h := range b.Headers {
		if err := enc.Encode(h); err != nil {
			return fmt.Errorf("audit: encode header: %w", err)
		}
	}
	if err := put(fileHeaders, hb.Bytes()); err != nil {
		return err
	}
	nums := make([]uint64, 0, len(b.Blocks))
	for n := range b.Blocks {
		nums = append(nums, n)
	}
	slices.Sort(nums)
	for _, n := range nums {
		m.Blocks = append(m.Blocks, n)
		if err := put(blockName(n), b.Blocks[n]); err != nil {
			return err
		}
	}
	if b.Trust != nil {
		tj, err := json.MarshalIndent(b.Trust, "", "  ")
		if err != nil {
			return fmt.Errorf("audit: encode trust: %w", err)
		}
		if err := put(fileTrust, tj); err != nil {
			return err
		}
	}
	rj, err := json.MarshalIndent(b.Records, "", "  ")
	if err != nil {
		return fmt.Errorf("audit: encode records: %w", err)
	}
	if err := put(fileRecords, rj); err != nil {
		return err
	}
	cids := make([]string, 0, len(b.Ciphertexts))
	for c := range b.Ciphertexts {
		cids = append(cids, c)
	}
	slices.Sort(cids)
	for _, c := range cids {
		if !validMemberName(c) {
			return fmt.Errorf("audit: ciphertext name %q", c)
		}
		if err := put(dirCipher+c, b.Ciphertexts[c]); err != nil {
			return err
		}
	}
	mj, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("audit: encode manifest: %w", err)
	}
	if err := writeMember(tw, fileManifest, mj, m.Created); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("audit: write bundle: %w", err)
	}
	return nil
}

func blockName(n uint64) string { return fmt.Sprintf("%s%020d.block", dirBlocks, n) }

func writeMember(tw *tar.Writer, name string, data []byte, at time.Time) error {
	hdr := &tar.Header{Name: name, Mode: 0o600, Size: int64(len(data)), ModTime: at.UTC().Truncate(time.Second), Typeflag: tar.TypeReg, Format: tar.FormatPAX}
	if err := tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("audit: write %s: %w", name, err)
	}
	if _, err := tw.Write(data); err != nil {
		return fmt.Errorf("audit: write %s: %w", name, err)
	}
	return nil
}

// validMemberName accepts CIDs and similar: letters and digits only.
func validMemberName(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// Read reads a bundle and checks its members against the manifest: every
// member named there is present with that SHA-256, nothing else is, and
// nothing exceeds the size limits. It checks no signature: that is Verify.
func Read(r io.Reader) (*Bundle, error) {
	tr := tar.NewReader(r)
	members := map[string][]byte{}
	var total int64
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBundle, err)
		}
		if hdr.Typeflag != tar.TypeReg || hdr.Size > maxMember || path.Clean(hdr.Name) != hdr.Name || strings.HasPrefix(hdr.Name, "/") {
			return nil, fmt.Errorf("%w: member %q", ErrBundle, hdr.Name)
		}
		if _, dup := members[hdr.Name]; dup {
			return nil, fmt.Errorf("%w: member %q twice", ErrBundle, hdr.Name)
		}
		total += hdr.Size
		if total > maxTotal {
			return nil, fmt.Errorf("%w: larger than %d bytes", ErrBundle, int64(maxTotal))
		}
		data, err := io.ReadAll(io.LimitReader(tr, maxMember+1))
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBundle, err)
		}
		members[hdr.Name] = data
	}
	mj, ok := members[fileManifest]
	if !ok {
		return nil, fmt.Errorf("%w: no %s", ErrBundle, fileManifest)
	}
	delete(members, fileManifest)
	b := &Bundle{Blocks: map[uint64][]byte{}, Ciphertexts: map[string][]byte{}}
	if err := wire.DecodeStrict(mj, &b.Manifest); err != nil {
		return nil, fmt.Errorf("%w: manifest: %v", ErrBundle, err)
	}
	if b.Manifest.Format != BundleFormat {
		return nil, fmt.Errorf("%w: format %q, want %q", ErrBundle, b.Manifest.Format, BundleFormat)
	}
	if len(b.Manifest.Files) != len(members) {
		return nil, fmt.Errorf("%w: the manifest names %d members, the tar holds %d", ErrBundle, len(b.Manifest.Files), len(members))
	}
	for name, data := range members {
		want, ok := b.Manifest.Files[name]
		sum := sha256.Sum256(data)
		if !ok || want != hex.EncodeToString(sum[:]) {
			return nil, fmt.Errorf("%w: member %q does not match the manifest", ErrBundle, name)
		}
		switch {
		case name == fileHeaders:
			dec := json.NewDecoder(bytes.NewReader(data))
			for dec.More() {
				var h evidence.Header
				if err := dec.Decode(&h); err != nil {
					return nil, fmt.Errorf("%w: headers: %v", ErrBundle, err)
				}
				b.Headers = append(b.Headers, h)
			}
		case name == fileTrust:
			b.Trust = &evidence.Trust{}
			if err := json.Unmarshal(data, b.Trust); err != nil {
				return nil, fmt.Errorf("%w: trust: %v", ErrBundle, err)
			}
		case name == fileRecords:
			if err := json.Unmarshal(data, &b.Records); err != nil {
				return nil, fmt.Errorf("%w: records: %v", ErrBundle, err)
			}
		case strings.HasPrefix(name, dirBlocks):
			s := strings.TrimSuffix(strings.TrimPrefix(name, dirBlocks), ".block")
			n, err := strconv.ParseUint(s, 10, 64)
			if err != nil || blockName(n) != name {
				return nil, fmt.Errorf("%w: member %q", ErrBundle, name)
			}
			b.Blocks[n] = data
		case strings.HasPrefix(name, dirCipher) && validMemberName(strings.TrimPrefix(name, dirCipher)):
			b.Ciphertexts[strings.TrimPrefix(name, dirCipher)] = data
		default:
			return nil, fmt.Errorf("%w: unknown member %q", ErrBundle, name)
		}
	}
	return b, nil
}
