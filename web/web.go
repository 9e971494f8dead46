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
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/medprov/medprov/wire"
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
	"landing":    page("landing.html"),
	"enrol":      page("enrol.html"),
	"signin":     page("signin.html"),
	"message":    page("message.html"),
	"patient":    page("patient.html"),
	"regulator":  page("regulator.html"),
	"provenance": page("provenance.html"),
	"researcher": page("researcher.html"),
	"operator":   page("operator.html"),
}

func page(name string) *template.Template {
	return template.Must(template.New(name).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/partials.html", "templates/"+name))
}

// Config is what the portal shows about the node that serves it, and the
// API it reads through.
type Config struct {
	// Name is the portal's name in page titles and headers; default
	// "medprov".
	Name string
	// API is the gateway's HTTP API. Pages read through it, as the
	// signed-in person (their session cookie), so a page shows exactly
	// what the API would answer that person: the same authentication,
	// authorisation, budgets and access logging, never a side door.
	// Without it only the landing, sign-in and enrolment pages work.
	API http.Handler
	// Logger receives errors of page rendering; default slog.Default().
	Logger *slog.Logger
}

// Register adds the portal's routes to r: the landing page (GET /), the
// enrolment page behind an invitation (GET /enrol/:token), sign-in
// (GET /signin), the signed-in person's home (GET /me, which sends each
// role to its pages), the pages of patients (/patient), regulators
// (/regulator), researchers (/researcher) and operators (/operator), and
// the embedded assets. They are pages for people, not part of the HTTP API
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
	r.GET("/signin", secure, h.signin)
	r.GET("/me", secure, h.me)
	h.registerPatient(r)
	h.registerRegulator(r)
	h.registerResearcher(r)
	h.registerOperator(r)
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
	// Session is the signed-in person, nil on public pages.
	Session *wire.Session
	// Flash is a fixed sentence about the action just done (?done=).
	Flash string
	// Page is the page's own data.
	Page any
}

func (h *handler) data(title string, ses *wire.Session, page any) pageData {
	return pageData{Name: h.cfg.Name, Title: title + " · " + h.cfg.Name, Session: ses, Page: page}
}

func (h *handler) landing(c *gin.Context) {
	h.render(c, http.StatusOK, "landing", pageData{Name: h.cfg.Name, Title: h.cfg.Name + ": provenance for medical device data"})
}

// enrolPage is the enrolment page's data: the invitation, when it is live.
type enrolPage struct {
	Invitation *wire.InvitationStatus
}

func (h *handler) enrol(c *gin.Context) {
	// The token is a secret: the page must not be cached or stored.
	c.Header("Cache-Control", "no-store")
	var inv wire.InvitationStatus
	err := h.get(c, "/v1/enrol/"+url.PathEscape(c.Param("token")), &inv)
	var ae *APIError
	switch {
	case err == nil:
		h.render(c, http.StatusOK, "enrol", h.data("Create your passkey", nil, enrolPage{Invitation: &inv}))
	case errors.As(err, &ae) && ae.Status == http.StatusNotFound:
		h.render(c, http.StatusNotFound, "enrol", h.data("Invitation not valid", nil, enrolPage{}))
	default:
		h.fail(c, err)
	}
}

func (h *handler) signin(c *gin.Context) {
	c.Header("Cache-Control", "no-store")
	h.render(c, http.StatusOK, "signin", h.data("Sign in", nil, nil))
}

// homes are the first page of each role.
var homes = map[string]string{
	wire.RolePatient:    "/patient",
	wire.RoleRegulator:  "/regulator",
	wire.RoleResearcher: "/researcher",
	wire.RoleOperator:   "/operator",
}

// me sends the signed-in person to their role's page.
func (h *handler) me(c *gin.Context) {
	ses, ok := h.session(c, "")
	if !ok {
		return
	}
	home, known := homes[ses.Role]
	if !known {
		h.message(c, http.StatusForbidden, ses, "No pages for your role", "The portal has no pages for the role "+ses.Role+". Use the API or the command line.")
		return
	}
	c.Redirect(http.StatusSeeOther, home)
}

// session returns the signed-in person, who must hold role (any role when
// role is ""). Without a session it sends the browser to sign in and
// reports false; with another role it answers a 403 page.
func (h *handler) session(c *gin.Context, role string) (*wire.Session, bool) {
	c.Header("Cache-Control", "no-store")
	var ses wire.Session
	err := h.get(c, "/v1/session", &ses)
	var ae *APIError
	if errors.As(err, &ae) && ae.Status == http.StatusUnauthorized {
		c.Redirect(http.StatusSeeOther, "/signin?next="+url.QueryEscape(c.Request.URL.Path))
		return nil, false
	}
	if err != nil {
		h.fail(c, err)
		return nil, false
	}
	if role != "" && ses.Role != role {
		h.message(c, http.StatusForbidden, &ses, "This page is not for your role",
			"You are signed in as a "+ses.Role+". This page is for "+role+"s.")
		return nil, false
	}
	return &ses, true
}

// messagePage is a page that only says something.
type messagePage struct{ Heading, Text string }

func (h *handler) message(c *gin.Context, status int, ses *wire.Session, heading, text string) {
	h.render(c, status, "message", h.data(heading, ses, messagePage{Heading: heading, Text: text}))
}

// fail answers a page for an error of the API a page read through.
func (h *handler) fail(c *gin.Context, err error) {
	var ae *APIError
	if !errors.As(err, &ae) {
		h.cfg.Logger.Error("portal read", "path", c.FullPath(), "err", err)
		h.message(c, http.StatusInternalServerError, nil, "Something went wrong", "The page could not be shown. Try again in a moment.")
		return
	}
	status := ae.Status
	if status < 400 {
		status = http.StatusBadGateway
	}
	h.message(c, status, nil, "The request was refused", sentence(ae.Message))
}

// sentence makes an API message a sentence for people.
func sentence(s string) string {
	if s == "" {
		return "The server refused the request."
	}
	s = strings.ToUpper(s[:1]) + s[1:]
	if !strings.HasSuffix(s, ".") {
		s += "."
	}
	return s
}

// render executes page name into a buffer first, so a failure answers a
// plain 500 instead of half a page.
func (h *handler) render(c *gin.Context, status int, name string, data pageData) {
	if data.Flash == "" {
		data.Flash = flashes[c.Query("done")]
	}
	var buf bytes.Buffer
	if err := pages[name].ExecuteTemplate(&buf, "layout", data); err != nil {
		h.cfg.Logger.Error("portal page", "page", name, "err", err)
		c.Data(http.StatusInternalServerError, "text/plain; charset=utf-8", []byte("The page could not be shown.\n"))
		return
	}
	c.Data(status, "text/html; charset=utf-8", buf.Bytes())
}

// flashes are the sentences ?done= may show after an action: fixed text,
// so nothing a link carries is reflected into a page.
var flashes = map[string]string{
	"granted":    "Your consent was recorded on the ledger.",
	"revoked":    "Your consent was withdrawn. Requests from now on are refused.",
	"erased":     "Your data was erased. The ledger keeps the record that it existed.",
	"registered": "The device was registered on the ledger.",
	"retired":    "The device was revoked. Its readings are refused from now on.",
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
