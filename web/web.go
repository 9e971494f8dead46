// Package web is medprov's portal: the pages people use in a browser,
// served by the gateway from the same binary.
//
// Pages are html/template documents and the static assets (portal.js,
// portal.css, the icon) are embedded with go:embed, so the portal works
// offline: no CDN, no external font or script. Every response carries a
// strict Content-Security-Policy (no inline script or style, no framing),
// nosniff and no-referrer, so an invitation's token in a page's address
// never leaves in a Referer header.
//
// This slice has two pages: the landing page (GET /) and the enrolment
// page behind an invitation's link (GET /enrol/{token}), where portal.js
// runs the WebAuthn registration ceremony against the gateway's
// POST /v1/enrol/{token}/options and POST /v1/enrol/{token}. The pages of
// patients, regulators, researchers and operators are still to come.
package web

import (
	"bytes"
	"embed"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"path"
	"strings"

	"github.com/gin-gonic/gin"
)

// ContentSecurityPolicy is the policy of every portal response: everything
// from the portal's own origin, no inline script or style, no framing.
const ContentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// pages are parsed once; they are embedded, so a parse error is a bug that
// the package's tests catch.
var pages = map[string]*template.Template{
	"landing": page("landing.html"),
	"enrol":   page("enrol.html"),
}

func page(name string) *template.Template {
	return template.Must(template.ParseFS(templateFS, "templates/layout.html", "templates/"+name))
}

// Config is what the portal shows about the node that serves it.
type Config struct {
	// Name is the portal's name in page titles and headers; default
	// "medprov".
	Name string
	// Logger receives errors of page rendering; default slog.Default().
	Logger *slog.Logger
}

// Register adds the portal's routes to r: GET / (landing page),
// GET /enrol/:token (enrolment page), GET /static/*file (embedded assets)
// and GET /favicon.ico. They are pages for people, not part of the HTTP API
// that openapi.yaml describes.
func Register(r gin.IRoutes, cfg Config) {
	if cfg.Name == "" {
		cfg.Name = "medprov"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	h := &handler{cfg: cfg}
	r.GET("/", secure, h.landing)
	r.GET("/enrol/:token", secure, h.enrol)
	r.GET("/static/*file", secure, h.static)
	r.GET("/favicon.ico", secure, func(c *gin.Context) { h.serveAsset(c, "favicon.svg") })
}

// secure sets the headers every portal response carries.
func secure(c *gin.Context) {
	hd := c.Writer.Header()
	hd.Set("Content-Security-Policy", ContentSecurityPolicy)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
}

type handler struct{ cfg Config }

// pageData is what every page template receives.
type pageData struct {
	Name  string
	Title string
}

func (h *handler) landing(c *gin.Context) {
	h.render(c, "landing", pageData{Name: h.cfg.Name, Title: h.cfg.Name + ": provenance for medical device data"})
}

func (h *handler) enrol(c *gin.Context) {
	// The token is a secret: the page must not be cached or stored.
	c.Header("Cache-Control", "no-store")
	h.render(c, "enrol", pageData{Name: h.cfg.Name, Title: "Create your passkey · " + h.cfg.Name})
}

// render executes page name into a buffer first, so a failure answers a
// plain 500 instead of half a page.
func (h *handler) render(c *gin.Context, name string, data pageData) {
	var buf bytes.Buffer
	if err := pages[name].ExecuteTemplate(&buf, "layout", data); err != nil {
		h.cfg.Logger.Error("portal page", "page", name, "err", err)
		c.Data(http.StatusInternalServerError, "text/plain; charset=utf-8", []byte("The page could not be shown.\n"))
		return
	}
	c.Data(http.StatusOK, "text/html; charset=utf-8", buf.Bytes())
}

func (h *handler) static(c *gin.Context) {
	h.serveAsset(c, strings.TrimPrefix(c.Param("file"), "/"))
}

// contentTypes are the types of the embedded assets, by extension.
var contentTypes = map[string]string{
	".js":  "text/javascript; charset=utf-8",
	".css": "text/css; charset=utf-8",
	".svg": "image/svg+xml",
}

func (h *handler) serveAsset(c *gin.Context, name string) {
	ct, known := contentTypes[path.Ext(name)]
	b, err := fs.ReadFile(staticFS, "static/"+name)
	if !known || err != nil || !fs.ValidPath(name) {
		c.Data(http.StatusNotFound, "text/plain; charset=utf-8", []byte("Not found.\n"))
		return
	}
	// Assets are not fingerprinted: revalidate, so a new binary's script
	// and style are used at once.
	c.Header("Cache-Control", "no-cache")
	c.Data(http.StatusOK, ct, b)
}
