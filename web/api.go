package web

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/medprov/medprov/wire"
)

// APIError is a refusal of the API a page read through: the HTTP status
// and the API's error body.
type APIError struct {
	Status  int
	Code    string
	Message string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("api %d %s: %s", e.Status, e.Code, e.Message)
}

// errNoAPI is what pages that read the API answer without Config.API.
var errNoAPI = errors.New("web: the portal has no API to read through")

// get reads path (with its query) from the API as the person making the
// page's request: the request carries their session cookie and client
// address and nothing else of theirs, and the answer decodes into out.
func (h *handler) get(c *gin.Context, path string, out any) error {
	body, err := h.call(c, path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("web: decode %s: %w", strings.SplitN(path, "?", 2)[0], err)
	}
	return nil
}

// call is get without decoding.
func (h *handler) call(c *gin.Context, path string) ([]byte, error) {
	if h.cfg.API == nil {
		return nil, errNoAPI
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, path, nil)
	if err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	req.RemoteAddr = c.Request.RemoteAddr
	req.Host = c.Request.Host
	req.Header.Set("Accept", "application/json")
	if ck, err := c.Request.Cookie(wire.SessionCookie); err == nil {
		req.AddCookie(ck)
	}
	rec := &recorder{header: http.Header{}, status: http.StatusOK}
	h.cfg.API.ServeHTTP(rec, req)
	if rec.status < 200 || rec.status > 299 {
		var e wire.ErrorResponse
		_ = json.Unmarshal(rec.body.Bytes(), &e)
		return nil, &APIError{Status: rec.status, Code: string(e.Error.Code), Message: e.Error.Message}
	}
	return rec.body.Bytes(), nil
}

// recorder is the http.ResponseWriter of an API read made for a page.
type recorder struct {
	header      http.Header
	status      int
	wroteHeader bool
	body        bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(status int) {
	if !r.wroteHeader {
		r.status, r.wroteHeader = status, true
	}
}

func (r *recorder) Write(b []byte) (int, error) {
	r.WriteHeader(http.StatusOK)
	return r.body.Write(b)
}

// funcs are the template functions of every page.
var funcs = map[string]any{
	// when shows an RFC 3339 time as "2026-12-01 10:00 UTC".
	"when": func(s string) string {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return s
		}
		return t.UTC().Format("2006-01-02 15:04 UTC")
	},
	// day shows an RFC 3339 time as its UTC date.
	"day": func(s string) string {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return s
		}
		return t.UTC().Format("2006-01-02")
	},
	"join": strings.Join,
	// short shows the first 12 characters of a transaction id or hash.
	"short": func(s string) string {
		if len(s) > 12 {
			return s[:12] + "…"
		}
		return s
	},
	"label": label,
}

// words are tokens whose words are not their letters.
var words = map[string]string{"spo2": "SpO2", "ecg": "ECG", "eeg": "EEG"}

// label turns a token (heart_rate, data_type_not_consented) into words.
func label(s string) string {
	if w, ok := words[s]; ok {
		return w
	}
	s = strings.NewReplacer("_", " ", "-", " ", ".", " ").Replace(s)
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
