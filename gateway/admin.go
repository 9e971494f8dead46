package gateway

import (
	"errors"
	"net/http"
	"syscall"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/medprov/medprov/wire"
)

const (
	// backupWriteTimeout bounds each write of a backup stream: a client
	// that stops reading for this long is cut off. It replaces the HTTP
	// server's write timeout, which a large backup would outlast.
	backupWriteTimeout = 2 * time.Minute
	// backupRetryAfter is what a request meeting a running backup is told
	// to wait.
	backupRetryAfter = 30 * time.Second
)

// backup answers GET /v1/admin/backup (admin token): a tar stream of a
// consistent backup of the node, from Config.Backup. No path comes from the
// client: the node chooses where it assembles the backup, and the client
// chooses where to unpack it. One backup runs at a time; a request
// meanwhile is answered 429 with Retry-After. A failure before the first
// byte is an ordinary JSON error (503); a failure once the stream has begun
// aborts the connection, and the stream lacks its final entry (the
// manifest), so a reader cannot take it for a whole backup.
func (s *Server) backup(c *gin.Context) {
	if s.cfg.Backup == nil {
		fail(c, errf(wire.CodeNotFound, "this gateway takes no backups"))
		return
	}
	if !s.backups.TryLock() {
		fail(c, &apiError{Code: wire.CodeRateLimited, Message: "a backup is already running", RetryAfter: backupRetryAfter})
		return
	}
	defer s.backups.Unlock()
	rc := http.NewResponseController(c.Writer)
	// Taking the backup may last longer than the server's write timeout,
	// before the first byte is written; each write then sets its own.
	if err := rc.SetWriteDeadline(time.Time{}); err != nil && !errors.Is(err, http.ErrNotSupported) {
		s.log.Warn("backup: cannot lift the write deadline", "errKind", errKind(err))
	}
	w := &backupStream{c: c, rc: rc, name: "medprov-backup-" + s.cfg.Now().UTC().Format("20060102T150405Z") + ".tar"}
	err := s.cfg.Backup(c.Request.Context(), w)
	if err != nil {
		s.logBackupFailure(c, err, w.started)
	}
	switch {
	case err == nil && !w.started:
		w.start() // an empty stream; the reader refuses it
	case err != nil && !w.started:
		var ae *apiError
		if !errors.As(err, &ae) {
			ae = &apiError{Code: wire.CodeUnavailable, Message: "the backup could not be taken; see the gateway's log", RetryAfter: backupRetryAfter, cause: err}
		}
		fail(c, ae)
	case err != nil:
		panic(http.ErrAbortHandler)
	}
}

// backupStage is implemented by errors that name the store a backup
// failed on (node.BackupError).
type backupStage interface{ BackupStore() string }

// logBackupFailure logs why a backup failed: its class, the store it
// failed on and the system error, if any, never the error's text (a store's
// error may quote a key, and keys hold pseudonymous IDs).
func (s *Server) logBackupFailure(c *gin.Context, err error, streaming bool) {
	attrs := []any{"requestId", c.GetString("requestID"), "errKind", errKind(err), "streaming", streaming}
	var st backupStage
	if errors.As(err, &st) {
		attrs = append(attrs, "store", st.BackupStore())
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		attrs = append(attrs, "cause", errno.Error())
	}
	s.log.Error("backup failed", attrs...)
}

// backupStream is the response writer of a backup: it sends the headers
// with the first byte, and gives every write its own deadline.
type backupStream struct {
	c       *gin.Context
	rc      *http.ResponseController
	name    string
	started bool
}

func (w *backupStream) start() {
	w.started = true
	h := w.c.Writer.Header()
	h.Set("Content-Type", "application/x-tar")
	h.Set("Content-Disposition", `attachment; filename="`+w.name+`"`)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.c.Status(http.StatusOK)
	w.c.Writer.WriteHeaderNow()
}

// Write implements io.Writer.
func (w *backupStream) Write(p []byte) (int, error) {
	if !w.started {
		w.start()
	}
	if err := w.rc.SetWriteDeadline(time.Now().Add(backupWriteTimeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return 0, err
	}
	return w.c.Writer.Write(p)
}
