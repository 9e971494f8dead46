package seal

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// MasterKeySize is the size of a keyring master key in bytes.
const MasterKeySize = 32

// ParseMasterKey decodes a master key written as 64 hex digits or as
// standard base64 of 32 bytes; surrounding white space is ignored.
func ParseMasterKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if b, err := hex.DecodeString(s); err == nil && len(b) == MasterKeySize {
		return b, nil
	}
	if b, err := base64.StdEncoding.DecodeString(s); err == nil && len(b) == MasterKeySize {
		return b, nil
	}
	return nil, fmt.Errorf("seal: master key must be %d bytes as hex or base64", MasterKeySize)
}

// LoadOrCreateMasterKey returns the master key stored in the file at path.
// If the file does not exist it generates a random key and writes it there
// as hex, with mode 0600, creating the parent directory (0700) if needed.
// It refuses a key file readable or writable by group or others.
func LoadOrCreateMasterKey(path string) ([]byte, error) {
	key, err := readMasterKey(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("seal: master key dir: %w", err)
	}
	key = make([]byte, MasterKeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("seal: generate master key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		// Created concurrently by another process: use theirs.
		return readMasterKey(path)
	}
	if err != nil {
		return nil, fmt.Errorf("seal: create master key: %w", err)
	}
	if _, err := f.WriteString(hex.EncodeToString(key) + "\n"); err != nil {
		_ = f.Close() // the write error is the one to report
		return nil, fmt.Errorf("seal: write master key: %w", err)
	}
	if err := f.Sync(); err != nil {
		_ = f.Close() // the sync error is the one to report
		return nil, fmt.Errorf("seal: sync master key: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("seal: close master key: %w", err)
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return nil, err
	}
	return key, nil
}

func readMasterKey(path string) ([]byte, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("seal: master key: %w", err)
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("seal: master key %s has mode %#o; run chmod 600 on it", path, perm)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("seal: master key: %w", err)
	}
	key, err := ParseMasterKey(string(b))
	if err != nil {
		return nil, fmt.Errorf("%w (file %s)", err, path)
	}
	return key, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("seal: open dir: %w", err)
	}
	if err := d.Sync(); err != nil {
		_ = d.Close() // the sync error is the one to report
		return fmt.Errorf("seal: sync dir: %w", err)
	}
	if err := d.Close(); err != nil {
		return fmt.Errorf("seal: close dir: %w", err)
	}
	return nil
}
