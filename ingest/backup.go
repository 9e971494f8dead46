package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Backup writes a copy of the queue, as one read transaction sees it, to
// the file path, which must not exist (created 0600); OpenQueue opens the
// copy. It holds the pending records, the retained recorded ones and the
// memory of every reading the queue saw, so a node restored with it
// replays what was pending and, by reconciliation, resubmits what the
// ledger it is restored with lacks. Appends go on meanwhile, but a
// long copy delays those that must grow the file (bbolt remaps it only
// once no read transaction is open). It stops when ctx ends.
func (q *Queue) Backup(ctx context.Context, path string) (err error) {
	if err := ctx.Err(); err != nil {
		return err
	}
	q.mu.Lock()
	closed := q.closed
	q.mu.Unlock()
	if closed {
		return ErrClosed
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("queue backup: %w", err)
	}
	defer func() {
		err = errors.Join(err, f.Close())
		if err != nil {
			err = errors.Join(err, os.Remove(path))
		}
	}()
	err = q.db.View(func(tx *bolt.Tx) error {
		_, err := tx.WriteTo(ctxWriter{ctx, f})
		return err
	})
	if err != nil {
		return fmt.Errorf("queue backup: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("queue backup: %w", err)
	}
	return nil
}

// ctxWriter fails writes once ctx is done, so a long copy stops.
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (w ctxWriter) Write(p []byte) (int, error) {
	if err := w.ctx.Err(); err != nil {
		return 0, err
	}
	return w.w.Write(p)
}

// Backup writes a copy of the pipeline's queue to path; see Queue.Backup.
func (p *Pipeline) Backup(ctx context.Context, path string) error { return p.queue.Backup(ctx, path) }

// QueueFileStats describes a queue file CheckQueueFile read.
type QueueFileStats struct {
	// Pending is the number of readings acknowledged and not yet done;
	// Retained the number of recorded readings kept for resubmission.
	Pending, Retained int
}

// CheckQueueFile checks the queue file at path read-only: bbolt's
// consistency check, the queue's buckets, and that every record parses. It
// fails (after a few seconds) if a process holds the queue open, and with
// an error wrapping fs.ErrNotExist if there is no file.
func CheckQueueFile(ctx context.Context, path string) (QueueFileStats, error) {
	var st QueueFileStats
	if err := ctx.Err(); err != nil {
		return st, err
	}
	if _, err := os.Stat(path); err != nil {
		return st, fmt.Errorf("queue %s: %w", path, err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: 3 * time.Second})
	if err != nil {
		return st, fmt.Errorf("open queue %s (is a node using it?): %w", path, err)
	}
	defer db.Close() //nolint:errcheck // read-only
	err = db.View(func(tx *bolt.Tx) error {
		// The check runs in its own goroutine on tx: drain it whole.
		var bad error
		for err := range tx.Check() {
			if bad == nil {
				bad = err
			}
		}
		if bad != nil {
			return bad
		}
		for _, b := range [][]byte{bucketRecords, bucketSeen, bucketMeta, bucketRecent, bucketRecentBlocks} {
			if tx.Bucket(b) == nil {
				return fmt.Errorf("bucket %q missing", b)
			}
		}
		retained := map[string]bool{}
		if err := tx.Bucket(bucketRecent).ForEach(func(k, _ []byte) error {
			if _, err := retainedRecord(tx.Bucket(bucketRecords), k); err != nil {
				return err
			}
			retained[string(k[8:])] = true
			return nil
		}); err != nil {
			return err
		}
		st.Retained = len(retained)
		if err := tx.Bucket(bucketSeen).ForEach(func(_, v []byte) error {
			var s Seen
			return decodeSeen(v, &s)
		}); err != nil {
			return err
		}
		return tx.Bucket(bucketRecords).ForEach(func(k, v []byte) error {
			if retained[string(k)] {
				return nil
			}
			var r Record
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("decode pending record: %w", err)
			}
			st.Pending++
			return nil
		})
	})
	if err != nil {
		return QueueFileStats{}, fmt.Errorf("queue %s unreadable: %w", path, err)
	}
	return st, nil
}
