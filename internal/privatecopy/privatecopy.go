// Package privatecopy copies files and directory trees so that only their
// owner can read the copy (directories 0700, files 0600) and every copied
// file is synced before the copy is reported done. Backups, restores and
// tests of medprov's stores use it; it follows no links and copies nothing
// but directories and regular files.
package privatecopy

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// Tree copies src, a regular file or a directory of directories and
// regular files, to dst. Directories are created as needed; a file that
// already exists at its destination is an error, so a copy never
// overwrites.
func Tree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		to := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(to, 0o700)
		case !d.Type().IsRegular():
			return fmt.Errorf("privatecopy: %s is neither a file nor a directory", p)
		}
		return File(p, to)
	})
}

// File copies the regular file from to the new file to (mode 0600) and
// syncs it.
func File(from, to string) (err error) {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close() //nolint:errcheck // read-only
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, out.Close()) }()
	if _, err := io.Copy(out, in); err != nil {
		return err
	}
	return out.Sync()
}
