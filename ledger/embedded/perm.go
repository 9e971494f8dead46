package embedded

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/syndtr/goleveldb/leveldb/storage"
)

// Everything under Config.Dir is the owner's alone: the ledger holds
// pseudonymous IDs, the MSP's private keys and the store other processes
// must not read or alter.
const (
	dirPerm  fs.FileMode = 0o700
	filePerm fs.FileMode = 0o600
)

// enforcePerms makes root and every directory under it 0700 and every file
// 0600, or says which one it cannot change. Symbolic links and special
// files under root are refused: the ledger directory holds its own files.
func enforcePerms(root string) error {
	root, err := filepath.EvalSymlinks(root)
	if err != nil {
		return fmt.Errorf("ledger directory: %w", err)
	}
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if path != root && errors.Is(err, fs.ErrNotExist) {
				return nil // removed meanwhile (a LevelDB compaction)
			}
			return fmt.Errorf("ledger directory: %w", err)
		}
		var want fs.FileMode
		switch t := d.Type(); {
		case d.IsDir():
			want = dirPerm
		case t.IsRegular():
			want = filePerm
		case t&fs.ModeSymlink != 0:
			return fmt.Errorf("ledger directory: %s is a symbolic link; keep the ledger's files in the directory itself (point Dir at the target instead)", path)
		default:
			return fmt.Errorf("ledger directory: %s is not a regular file or directory", path)
		}
		info, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("ledger directory: %w", err)
		}
		return restrict(path, info.Mode().Perm(), want)
	})
}

// restrict changes path's mode from got to want if they differ.
func restrict(path string, got, want fs.FileMode) error {
	if got == want {
		return nil
	}
	if err := os.Chmod(path, want); err != nil {
		return fmt.Errorf("ledger directory: %s has mode %04o and cannot be made %04o: %w", path, got, want, err)
	}
	return nil
}

// permStorage is LevelDB's file storage with the files it creates made
// 0600 as soon as they exist (LevelDB creates them 0644).
type permStorage struct {
	storage.Storage
	dir string
	log *slog.Logger
}

// Create implements storage.Storage.
func (s *permStorage) Create(fd storage.FileDesc) (storage.Writer, error) {
	w, err := s.Storage.Create(fd)
	if err != nil {
		return nil, err
	}
	if err := s.chmod(fileName(fd)); err != nil {
		return nil, errors.Join(err, w.Close())
	}
	return w, nil
}

// SetMeta implements storage.Storage: it rewrites CURRENT (and keeps the
// previous one as CURRENT.bak).
func (s *permStorage) SetMeta(fd storage.FileDesc) error {
	if err := s.Storage.SetMeta(fd); err != nil {
		return err
	}
	return s.chmod("CURRENT", "CURRENT.bak")
}

// Rename implements storage.Storage.
func (s *permStorage) Rename(oldfd, newfd storage.FileDesc) error {
	if err := s.Storage.Rename(oldfd, newfd); err != nil {
		return err
	}
	return s.chmod(fileName(newfd))
}

// Log implements storage.Storage; LevelDB rotates its LOG file as it
// writes it.
func (s *permStorage) Log(str string) {
	s.Storage.Log(str)
	if err := s.chmod("LOG"); err != nil {
		s.log.Warn("LevelDB's LOG file keeps the mode LevelDB gave it", "error", err)
	}
}

// chmod makes the named files 0600; names that do not exist are skipped,
// and a name LevelDB does not use (an unknown file type) makes it sweep
// the directory.
func (s *permStorage) chmod(names ...string) error {
	for _, name := range names {
		if name == "" {
			if err := enforcePerms(s.dir); err != nil {
				return err
			}
			continue
		}
		if err := os.Chmod(filepath.Join(s.dir, name), filePerm); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("ledger directory: make %s %04o: %w", name, filePerm, err)
		}
	}
	return nil
}

// fileName is the name LevelDB's file storage gives fd, "" if unknown.
func fileName(fd storage.FileDesc) string {
	switch fd.Type {
	case storage.TypeManifest:
		return fmt.Sprintf("MANIFEST-%06d", fd.Num)
	case storage.TypeJournal:
		return fmt.Sprintf("%06d.log", fd.Num)
	case storage.TypeTable:
		return fmt.Sprintf("%06d.ldb", fd.Num)
	case storage.TypeTemp:
		return fmt.Sprintf("%06d.tmp", fd.Num)
	}
	return ""
}
