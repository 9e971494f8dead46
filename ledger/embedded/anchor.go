package embedded

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// The chain anchor is the height and tip hash of the chain, kept in a file
// of its own beside the store and rewritten after every block. LevelDB's
// checksums catch damaged bytes, but not a journal that lost its tail or a
// store rolled back to older files: the records left are intact, the chain
// is simply shorter. The anchor catches that: on start, and in VerifyDir,
// a store that ends before the anchored tip, or whose block at the
// anchored height has another hash, is refused.
//
// The anchor is written after the block's synced LevelDB write and is not
// synced itself, so after a crash it may name an earlier block (which is
// checked as far as it goes) but never a block the store does not hold.
// It guards against accidents, not against someone able to rewrite both
// files; the anchors that hold against that are outside the node (a
// regulator's copy of the tip, an audit bundle).
const anchorFileName = "ledger.tip"

// AnchorFile is the name of the chain anchor's file inside Config.Dir.
const AnchorFile = anchorFileName

// anchorMagic starts the anchor record; the record is one fixed-width
// line: magic, height, tip hash (hex) and a CRC-32C of what precedes it.
const anchorMagic = "medprov-ledger-tip/1"

type anchor struct {
	height uint64
	tip    []byte
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func (a anchor) encode() []byte {
	b := fmt.Appendf(nil, "%s %020d %064x ", anchorMagic, a.height, a.tip)
	return fmt.Appendf(b, "%08x\n", crc32.Checksum(b, castagnoli))
}

func decodeAnchor(b []byte) (anchor, error) {
	fields := strings.Fields(string(b))
	if len(fields) != 4 || fields[0] != anchorMagic || !bytes.HasSuffix(b, []byte("\n")) {
		return anchor{}, errors.New("not an anchor record")
	}
	body := b[:bytes.LastIndexByte(b[:len(b)-1], ' ')+1]
	sum, err := strconv.ParseUint(fields[3], 16, 32)
	if err != nil || uint32(sum) != crc32.Checksum(body, castagnoli) {
		return anchor{}, errors.New("checksum mismatch")
	}
	height, err := strconv.ParseUint(fields[1], 10, 64)
	if err != nil || height == 0 {
		return anchor{}, errors.New("bad height")
	}
	tip, err := hex.DecodeString(fields[2])
	if err != nil || len(tip) != 32 {
		return anchor{}, errors.New("bad tip hash")
	}
	return anchor{height: height, tip: tip}, nil
}

// readAnchor reads the anchor in dir; found is false if there is none.
func readAnchor(dir string) (a anchor, found bool, err error) {
	path := filepath.Join(dir, anchorFileName)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return anchor{}, false, nil
	}
	if err != nil {
		return anchor{}, false, fmt.Errorf("read chain anchor: %w", err)
	}
	a, err = decodeAnchor(b)
	if err != nil {
		return anchor{}, false, fmt.Errorf("%w: the chain anchor %s is damaged (%v); if the store is known to be good, remove the file to accept the store as it is", ErrCorrupt, path, err)
	}
	return a, true, nil
}

// checkAnchor checks the stored chain (height blocks ending in tip) against
// a: the store must hold the anchored block, with the anchored hash.
func checkAnchor(r reader, a anchor, height uint64, tip []byte) error {
	switch {
	case a.height > height:
		return &TamperError{Block: height, Reason: fmt.Sprintf("the store ends at block %d but block %d was committed (%s): committed blocks were lost", height-1, a.height-1, anchorFileName)}
	case a.height == height:
		if !equalBytes(a.tip, tip) {
			return &TamperError{Block: height - 1, Reason: fmt.Sprintf("the chain tip differs from the tip %s recorded", anchorFileName)}
		}
		return nil
	}
	rec, _, found, err := loadBlock(r, a.height-1)
	switch {
	case errors.Is(err, errCorrupt):
		return &TamperError{Block: a.height - 1, Reason: err.Error()}
	case err != nil:
		return err
	case !found:
		return &TamperError{Block: a.height - 1, Reason: "block missing"}
	case !equalBytes(rec.header.Hash(), a.tip):
		return &TamperError{Block: a.height - 1, Reason: fmt.Sprintf("header hash differs from the one %s recorded", anchorFileName)}
	}
	return nil
}

// anchorWriter rewrites the anchor in place after every block.
type anchorWriter struct {
	f *os.File
}

// openAnchor records a in the anchor file in dir, replacing it whole (a
// crash leaves the old file or the new one, never an empty one), and
// opens it for the committer's in-place updates.
func openAnchor(dir string, a anchor) (*anchorWriter, error) {
	path := filepath.Join(dir, anchorFileName)
	tmp := path + ".tmp"
	if err := writeFileSynced(tmp, a.encode()); err != nil {
		return nil, fmt.Errorf("chain anchor: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return nil, fmt.Errorf("chain anchor: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, filePerm)
	if err != nil {
		return nil, fmt.Errorf("chain anchor: %w", err)
	}
	return &anchorWriter{f: f}, nil
}

func writeFileSynced(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, filePerm)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		return errors.Join(err, f.Close())
	}
	if err := f.Sync(); err != nil {
		return errors.Join(err, f.Close())
	}
	return f.Close()
}

// record overwrites the anchor with height and tip; the record's fixed
// width makes it one small write.
func (w *anchorWriter) record(height uint64, tip []byte) error {
	if w == nil {
		return nil
	}
	if _, err := w.f.WriteAt(anchor{height: height, tip: tip}.encode(), 0); err != nil {
		return fmt.Errorf("chain anchor: %w", err)
	}
	return nil
}

func (w *anchorWriter) close() error {
	if w == nil {
		return nil
	}
	return w.f.Close()
}
