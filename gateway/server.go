package gateway

import (
	"context"
	"crypto/ecdsa"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/time/rate"

	"github.com/medprov/medprov/audit"
	"github.com/medprov/medprov/envelope"
	"github.com/medprov/medprov/ingest"
	"github.com/medprov/medprov/ledger"
	"github.com/medprov/medprov/web"
	"github.com/medprov/medprov/wire"
)

//go:embed openapi.yaml
var openAPISpec []byte

// OpenAPI returns the OpenAPI 3 document the gateway serves at
// /openapi.yaml: the contract of every route, request and response.
func OpenAPI() []byte { return slices.Clone(openAPISpec) }

// Blobs reads ciphertext by content address.
//
// Get MUST verify that the bytes it returns hash to cid (failing with
// ipfs.ErrCorrupt otherwise) and fail with ipfs.ErrNotFound for absent
// content. Both methods MUST be safe for concurrent use.
type Blobs interface {
	Get(ctx context.Context, cid string) ([]byte, error)
	Has(ctx context.Context, cid string) (bool, error)
}

// Opener decrypts readings sealed under their patient's key.
//
// Open MUST fail unless the ciphertext was sealed for exactly (patientID,
// readingID), and MUST fail with seal.ErrErased for erased
// (crypto-shredded) patients.
type Opener interface {
	Open(ctx context.Context, patientID, readingID string, sealed []byte) ([]byte, error)
}

// Ingest is the reading path behind POST /v1/readings (ingest.Pipeline).
//
// Submit MUST return only after every reading it reports queued is
// durable; Await MUST return by the time ctx is done.
type Ingest interface {
	Submit(ctx context.Context, rs []ingest.Reading, watch bool) ([]ingest.Receipt, error)
	Await(ctx context.Context, rs []ingest.Receipt) map[int]ingest.Outcome
	Lag() time.Duration
	Pending() int
	// Reconciled reports the start-up check of the readings the pipeline
	// saw recorded against the ledger.
	Reconciled() ingest.Reconciliation
}

// Verifier checks a DER ECDSA signature over a SHA-256 digest and returns
// an error if it does not verify.
type Verifier interface {
	VerifyDigest(pub *ecdsa.PublicKey, digest, sig []byte) error
}

// verifyCounter is a Verifier that counts its work (envelope.VerifyMemo);
// the gateway exports the counts as metrics.
type verifyCounter interface {
	Counts() (computed, remembered uint64)
}

// countingVerifier verifies every signature with ECDSA and counts them.
type countingVerifier struct{ n atomic.Uint64 }

func (v *countingVerifier) VerifyDigest(pub *ecdsa.PublicKey, digest, sig []byte) error {
	v.n.Add(1)
	return envelope.VerifyDigest(pub, digest, sig)
}

func (v *countingVerifier) Counts() (uint64, uint64) { return v.n.Load(), 0 }

// Limits bound what one request and one client may ask of the gateway.
type Limits struct {
	// MaxReadingBytes bounds a single reading request body. Default 64 KiB.
	MaxReadingBytes int64
	// MaxBatchBytes bounds a batch request body. Default 8 MiB.
	MaxBatchBytes int64
	// MaxBatchItems bounds the readings in one batch request. Default 1000.
	MaxBatchItems int
	// MaxActionBytes bounds every other request body. Default 64 KiB.
	MaxActionBytes int64
	// DeviceRate and DeviceBurst limit readings per second per device.
	// Defaults 200/s, burst 1000. A negative rate disables the limit.
	// A reading is charged only once its signature verifies, so forged
	// readings naming a device cannot spend its budget.
	DeviceRate  float64
	DeviceBurst int
	// ActorRate and ActorBurst limit requests per second per actor (signed
	// actions and signed GETs). Defaults 50/s, burst 200. A negative rate
	// disables the limit. A request is charged only once its signature
	// verifies and its nonce is fresh.
	ActorRate  float64
	ActorBurst int
	// ClientFailureRate and ClientFailureBurst bound, per client address,
	// the requests that fail authentication: a bad or missing signature or
	// admin token, an unknown or revoked device or actor, a stale issuedAt,
	// a replayed nonce. Once a client's budget is spent it is answered 429
	// with Retry-After before anything is verified or looked up. The
	// address is the TCP peer's (no proxy header is trusted); IPv6 peers
	// count per /64. Defaults 10/s, burst 100. A negative rate disables the
	// limit.
	ClientFailureRate  float64
	ClientFailureBurst int
	// MaxKeys bounds the device keys and, separately, the actor keys the
	// gateway caches (least recently used evicted first; an evicted key is
	// read from the ledger again). Default 100 000 each.
	MaxKeys int
	// MaxUnknownKeys bounds the remembered lookups of device and actor IDs
	// the ledger does not hold (least recently used evicted first; each is
	// remembered 2s at most). They are kept apart from registered keys, so
	// a flood of junk IDs cannot evict those. Default 100 000.
	MaxUnknownKeys int
	// MaxNonces bounds the nonces of signed requests the gateway remembers
	// (each until its issuedAt leaves the signature window, plus a minute).
	// When full, the nonce issued earliest is forgotten and every signature
	// issued at or before it is refused from then on, so forgetting never
	// lets a replay through; only under sustained load beyond about
	// MaxNonces per 6 minutes are older, still-valid signatures refused.
	// Default 100 000 (about 10 MB).
	MaxNonces int
	// MaxLimiterKeys bounds each set of rate-limit buckets: per device, per
	// actor and per client address (least recently used evicted first; an
	// evicted bucket comes back full). Default 100 000 each.
	MaxLimiterKeys int
	// MaxSessions bounds the portal's live sessions and, separately, its
	// pending sign-in payloads (least recently used ended first).
	// Default 10 000.
	MaxSessions int
	// UnauthenticatedLogRate and UnauthenticatedLogBurst bound the request
	// log lines of 4xx answers to requests that did not authenticate
	// (floods of forged, unsigned or malformed requests); lines beyond the
	// bound are counted in medprov_log_lines_suppressed_total instead.
	// Defaults 5 lines/s, burst 20. A negative rate logs every line.
	UnauthenticatedLogRate  float64
	UnauthenticatedLogBurst int
	// CommitWait bounds how long ?wait=commit waits. Default 30s.
	CommitWait time.Duration
	// MaxLag is pushback: while the oldest reading not yet handed to the
	// ledger has waited longer than this, new readings are refused with
	// 503 and Retry-After, so the backlog (and commit latency) stays
	// bounded instead of growing until the queue is full. Default 2s.
	MaxLag time.Duration
	// IngestSlots bounds the ingest requests verified and sealed at once,
	// so that under overload the batcher still gets CPU to commit; others
	// wait for a slot. Default 2 x GOMAXPROCS.
	IngestSlots int
}

// Config configures New. Ledger, Ingest, Blobs, Opener and AdminToken are
// required.
type Config struct {
	Ledger ledger.Transactor
	Ingest Ingest
	Blobs  Blobs
	Opener Opener
	// Shredder crypto-shreds erased patients' keys; default: the Opener,
	// when it is a Shredder (seal.Keyring is). Required either way.
	Shredder   Shredder
	AdminToken string
	Limits     Limits
	// Metrics receives the gateway's series; give the same Metrics to the
	// ingest pipeline as its Observer. Default: new metrics. One Metrics
	// serves one Server.
	Metrics *Metrics
	// EventCheckpointPath, if set, is where the gateway records the last
	// chaincode event it handled, so that after a restart it resumes there.
	EventCheckpointPath string
	// NoncePath, if set, is the file (bbolt, created 0600) where the
	// gateway keeps the nonces of signed requests it accepted, so that a
	// signed GET cannot be replayed after a restart either. Without it
	// nonces are kept in memory only.
	NoncePath string
	// Backup, if set, writes a consistent backup of the node to w as a
	// tar stream (GET /v1/admin/backup, admin token; see admin.go). It
	// SHOULD take the backup before writing the first byte (a failure
	// before it answers a JSON error, one after it aborts the
	// connection), MUST stop when ctx ends, and MUST end the stream with
	// an entry a reader checks for (the node's manifest). Without it the
	// route answers 404.
	Backup func(ctx context.Context, w io.Writer) error
	// Org is the MSP ID of the organisation this gateway acts for: the
	// org whose relying party (PUT /v1/admin/relying-party, kept on the
	// ledger) enrolment ceremonies use. Without it the invitation routes
	// answer 404; passkey-signed requests work either way (an actor's
	// passkeys are checked against the relying party of the actor's org).
	Org string
	// InvitePath, if set, is the file (bbolt, created 0600) where the
	// gateway keeps its invitations (see invites.go): the SHA-256 of each
	// token, never the token. Without it they are kept in memory only.
	InvitePath string
	// PublicURL is the gateway's external base URL (scheme, host, port,
	// no trailing slash), e.g. https://portal.hospital.example: an
	// invitation's link is PublicURL + "/enrol/<token>". Without it an
	// invitation carries the path only.
	PublicURL string
	// BlockFormat decodes the ledger's raw blocks, for the audit evidence
	// routes (GET /v1/audit/trust, /v1/audit/bundle); without it, or with a
	// ledger that hands out no blocks, they answer 404.
	BlockFormat audit.Format
	// Verifier checks device signatures at ingest; default
	// envelope.VerifyDigest. With the embedded ledger, the node passes the
	// same envelope.VerifyMemo to the in-process chaincode.
	Verifier Verifier
	// SignatureWindow bounds |issuedAt - now| for signed GETs. Default 5m.
	SignatureWindow time.Duration
	// Now is the gateway's clock. Default time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// Server is the gateway. Create it with New, serve Handler, and Close it.
type Server struct {
	cfg   Config
	log   *slog.Logger
	chain *chain
	keys  *keyCache
	// integrity shares one full ledger verification among audit requests.
	integrity integrityCheck
	// shredder crypto-shreds erased patients (lifecycle.go).
	shredder *shredder
	nonces   *nonceStore
	// passkeys caches passkeys and relying parties (passkeys.go);
	// invites keeps invitations (invites.go).
	passkeys *passkeyCache
	sessions *sessionStore
	invites  *inviteStore
	devLim   *limiterSet
	actLim   *limiterSet
	// failLim is the per-client-address budget of failed authentications.
	failLim *limiterSet
	// quietLog bounds the log lines of unauthenticated 4xx answers; nil
	// logs all.
	quietLog *rate.Limiter
	m        *Metrics
	slots    chan struct{}
	engine   *gin.Engine
	routes   []Route
	cancel   context.CancelFunc
	wg       sync.WaitGroup

	// backups is held while a backup streams: one at a time.
	backups sync.Mutex
	// revocations are told of devices revoked (WatchRevocations).
	revocations revocationWatchers
}

// Route is a method and Gin path pattern the gateway serves.
type Route struct{ Method, Path string }

// New builds the router over the ingest pipeline and the ledger and starts
// following the ledger's events.
func New(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Ledger == nil || cfg.Ingest == nil || cfg.Blobs == nil || cfg.Opener == nil {
		return nil, errors.New("gateway: Ledger, Ingest, Blobs and Opener are required")
	}
	if cfg.Shredder == nil {
		cfg.Shredder, _ = cfg.Opener.(Shredder)
	}
	if cfg.Shredder == nil {
		return nil, errors.New("gateway: Shredder is required (or an Opener that shreds)")
	}
	if len(cfg.AdminToken) < 16 {
		return nil, errors.New("gateway: AdminToken must be at least 16 characters")
	}
	setDefaults(&cfg)
	s := &Server{cfg: cfg, log: cfg.Logger, m: cfg.Metrics, integrity: integrityCheck{maxAge: time.Minute}}
	l := cfg.Limits
	s.chain = &chain{t: cfg.Ledger}
	s.shredder = newShredder(cfg.Shredder)
	s.keys = newKeyCache(s.chain, 30*time.Second, cfg.Now, l.MaxKeys, l.MaxUnknownKeys)
	s.passkeys = newPasskeyCache(s.chain, 30*time.Second, cfg.Now, l.MaxKeys, l.MaxUnknownKeys)
	s.sessions = newSessionStore(cfg.Now, l.MaxSessions)
	s.devLim = newLimiterSet(l.DeviceRate, l.DeviceBurst, l.MaxLimiterKeys, cfg.Now)
	s.actLim = newLimiterSet(l.ActorRate, l.ActorBurst, l.MaxLimiterKeys, cfg.Now)
	s.failLim = newLimiterSet(l.ClientFailureRate, l.ClientFailureBurst, l.MaxLimiterKeys, cfg.Now)
	if l.UnauthenticatedLogRate >= 0 {
		s.quietLog = rate.NewLimiter(rate.Limit(l.UnauthenticatedLogRate), max(l.UnauthenticatedLogBurst, 1))
	}
	if err := s.m.watchQueue(func() float64 { return float64(cfg.Ingest.Pending()) }); err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	if vc, ok := cfg.Verifier.(verifyCounter); ok {
		if err := s.m.watchVerifier(vc); err != nil {
			return nil, fmt.Errorf("gateway: %w", err)
		}
	}
	nonces, err := openNonceStore(cfg.NoncePath, max(cfg.SignatureWindow, wire.IssuedAtWindow), l.MaxNonces, cfg.Now)
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	s.nonces = nonces
	invites, err := openInviteStore(cfg.InvitePath, cfg.Now)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("gateway: %w", err), s.nonces.close())
	}
	s.invites = invites
	if err := s.m.watchCaches(map[string]func() int{
		"device_keys": s.keys.dev.Len, "actor_keys": s.keys.act.Len, "unknown_ids": s.keys.unknown.Len,
		"nonces": s.nonces.len, "device_limits": s.devLim.len, "actor_limits": s.actLim.len,
		"client_failure_limits": s.failLim.len,

		"passkeys": s.passkeys.creds.Len, "relying_parties": s.passkeys.rps.Len,
		"unknown_passkeys": s.passkeys.unknown.Len, "passkey_counters": s.passkeys.counters.Len,
		"invites": s.invites.len,
	}); err != nil {
		return nil, errors.Join(fmt.Errorf("gateway: %w", err), s.nonces.close(), s.invites.close())
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel = cancel
	s.wg.Add(1)
	go func() { defer s.wg.Done(); s.followEvents(runCtx) }()
	s.slots = make(chan struct{}, cfg.Limits.IngestSlots)
	s.engine = s.router()
	return s, nil
}

func setDefaults(cfg *Config) {
	l := &cfg.Limits
	if l.MaxReadingBytes <= 0 {
		l.MaxReadingBytes = 64 << 10
	}
	if l.MaxBatchBytes <= 0 {
		l.MaxBatchBytes = 8 << 20
	}
	if l.MaxBatchItems <= 0 {
		l.MaxBatchItems = 1000
	}
	if l.MaxActionBytes <= 0 {
		l.MaxActionBytes = 64 << 10
	}
	if l.DeviceRate == 0 {
		l.DeviceRate, l.DeviceBurst = 200, 1000
	}
	if l.ActorRate == 0 {
		l.ActorRate, l.ActorBurst = 50, 200
	}
	if l.ClientFailureRate == 0 {
		l.ClientFailureRate, l.ClientFailureBurst = 10, 100
	}
	if l.UnauthenticatedLogRate == 0 {
		l.UnauthenticatedLogRate, l.UnauthenticatedLogBurst = 5, 20
	}
	for _, n := range []*int{&l.MaxKeys, &l.MaxUnknownKeys, &l.MaxNonces, &l.MaxLimiterKeys} {
		if *n <= 0 {
			*n = 100_000
		}
	}
	if l.MaxSessions <= 0 {
		l.MaxSessions = 10_000
	}
	if l.CommitWait <= 0 {
		l.CommitWait = 30 * time.Second
	}
	if l.MaxLag <= 0 {
		l.MaxLag = 2 * time.Second
	}
	if l.IngestSlots <= 0 {
		l.IngestSlots = 2 * runtime.GOMAXPROCS(0)
	}
	if cfg.SignatureWindow <= 0 {
		cfg.SignatureWindow = 5 * time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Verifier == nil {
		cfg.Verifier = &countingVerifier{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics()
	}
}

// Handler returns the HTTP handler serving every route.
func (s *Server) Handler() http.Handler { return s.engine }

// Routes returns every route the gateway serves.
func (s *Server) Routes() []Route { return slices.Clone(s.routes) }

// Close stops following events and closes the nonce and invitation
// stores. It closes neither the ingest pipeline nor the backends.
func (s *Server) Close() error {
	s.cancel()
	s.wg.Wait()
	return errors.Join(s.nonces.close(), s.invites.close())
}

func (s *Server) router() *gin.Engine {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.HandleMethodNotAllowed = true
	// No redirects: a path that differs from a route by a trailing slash
	// (/fhir/R4//) is not found, answered in the API's format, rather than
	// a 301 in HTML to a path whose signed GET would no longer verify.
	r.RedirectTrailingSlash = false
	r.ContextWithFallback = true
	// The client address is the TCP peer's: failures are charged to it, so
	// no client may choose it with a forwarding header.
	if err := r.SetTrustedProxies(nil); err != nil {
		panic(fmt.Sprintf("gateway: trusting no proxy failed: %v", err)) // cannot fail for nil
	}
	r.Use(s.requestID, s.logRequest, s.recover, s.rememberActionNonce)
	r.NoRoute(func(c *gin.Context) { fail(c, errf(wire.CodeNotFound, "no such route")) })
	r.NoMethod(func(c *gin.Context) {
		fail(c, errf(wire.CodeMethodNotAllowed, "method not allowed on this route"))
	})
	add := func(method, path string, h ...gin.HandlerFunc) {
		s.routes = append(s.routes, Route{method, path})
		r.Handle(method, path, h...)
	}
	add(http.MethodGet, "/healthz", s.healthz)
	add(http.MethodGet, "/readyz", s.readyz)
	add(http.MethodGet, "/metrics", gin.WrapH(promhttp.HandlerFor(s.m.reg, promhttp.HandlerOpts{})))
	add(http.MethodGet, "/openapi.yaml", func(c *gin.Context) { c.Data(http.StatusOK, "application/yaml", openAPISpec) })

	add(http.MethodPost, "/v1/actors", s.limitBody(s.cfg.Limits.MaxActionBytes), s.requireAdmin, s.registerActor)
	add(http.MethodPost, "/v1/actors/:id/revoke", s.limitBody(s.cfg.Limits.MaxActionBytes), s.adminOrSigned, s.revokeActor)
	add(http.MethodPost, "/v1/actors/:id/rotate", s.limitBody(s.cfg.Limits.MaxActionBytes), s.rotateActor)
	add(http.MethodPost, "/v1/devices", s.limitBody(s.cfg.Limits.MaxActionBytes), s.registerDevice)
	add(http.MethodPost, "/v1/devices/:id/revoke", s.limitBody(s.cfg.Limits.MaxActionBytes), s.revokeDevice)
	add(http.MethodPost, "/v1/readings", s.limitBody(s.cfg.Limits.MaxReadingBytes), s.postReading)
	add(http.MethodPost, "/v1/readings/batch", s.limitBody(s.cfg.Limits.MaxBatchBytes), s.postReadingBatch)
	add(http.MethodPost, "/v1/consents", s.limitBody(s.cfg.Limits.MaxActionBytes), s.grantConsent)
	add(http.MethodPost, "/v1/consents/:id/revoke", s.limitBody(s.cfg.Limits.MaxActionBytes), s.revokeConsent)
	add(http.MethodGet, "/v1/patients/:id/consents", s.signedGET, s.listConsents)
	add(http.MethodGet, "/v1/patients/:id/access-log", s.signedGET, s.accessLog)
	add(http.MethodPost, "/v1/patients/:id/erase", s.limitBody(s.cfg.Limits.MaxActionBytes), s.erasePatient)
	add(http.MethodPost, "/v1/access", s.limitBody(s.cfg.Limits.MaxActionBytes), s.requestAccess)
	add(http.MethodGet, "/v1/readings/:id/provenance", s.signedGET, s.provenance)
	add(http.MethodGet, "/v1/audit/events", s.signedGET, s.auditEvents)
	add(http.MethodGet, "/v1/audit/verify/:id", s.signedGET, s.auditVerify)
	add(http.MethodGet, "/v1/audit/trust", s.signedGET, s.auditTrust)
	add(http.MethodGet, "/v1/audit/bundle", s.signedGET, s.auditBundle)
	add(http.MethodGet, "/v1/devices", s.signedGET, s.listDevices)
	add(http.MethodGet, "/v1/devices/:id", s.signedGET, s.deviceDetail)
	add(http.MethodGet, "/v1/actors", s.signedGET, s.listActors)
	add(http.MethodPut, "/v1/admin/relying-party", s.limitBody(s.cfg.Limits.MaxActionBytes), s.requireAdmin, s.setRelyingParty)
	add(http.MethodPost, "/v1/invites", s.limitBody(s.cfg.Limits.MaxActionBytes), s.requireAdmin, s.createInvite)
	add(http.MethodGet, "/v1/enrol/:token", s.invitation)
	add(http.MethodPost, "/v1/enrol/:token/options", s.limitBody(s.cfg.Limits.MaxActionBytes), s.enrolmentOptions)
	add(http.MethodPost, "/v1/enrol/:token", s.limitBody(s.cfg.Limits.MaxActionBytes), s.enrol)
	add(http.MethodGet, "/v1/admin/backup", s.requireAdmin, s.backup)
	add(http.MethodPost, "/v1/session/options", s.sameSite, s.limitBody(s.cfg.Limits.MaxActionBytes), s.sessionOptions)
	add(http.MethodPost, "/v1/session", s.sameSite, s.limitBody(s.cfg.Limits.MaxActionBytes), s.startSession)
	add(http.MethodGet, "/v1/session", s.getSession)
	add(http.MethodDelete, "/v1/session", s.sameSite, s.endSession)
	// FHIR R4 views of the same reads (fhir.go): not API routes, not in openapi.yaml
	s.mountFHIR(r)
	web.Register(r, web.Config{Logger: s.log, API: r}) // the portal's pages: not API routes, not in openapi.yaml
	return r
}

func (s *Server) healthz(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) }

// readyz reports whether the ledger and the blob store answer.
func (s *Server) readyz(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c, 3*time.Second)
	defer cancel()
	checks := gin.H{}
	ready := true
	if err := s.chain.ping(ctx); err != nil {
		ready = false
		checks["ledger"] = "unavailable"
		s.log.Warn("readiness: ledger", "err", err)
	} else {
		checks["ledger"] = "ok"
	}
	if _, err := s.cfg.Blobs.Has(ctx, emptyCID); err != nil {
		ready = false
		checks["blobs"] = "unavailable"
		s.log.Warn("readiness: blob store", "err", err)
	} else {
		checks["blobs"] = "ok"
	}
	checks["queueDepth"] = s.cfg.Ingest.Pending()
	// Until the queue's recorded readings are checked against the ledger
	// (and while that check cannot be made) the node is not ready: what it
	// believes recorded is not yet known to be on the ledger.
	switch rec := s.cfg.Ingest.Reconciled(); {
	case !rec.Done:
		ready = false
		checks["reconcile"] = gin.H{"status": "running"}
	case rec.Err != nil:
		ready = false
		checks["reconcile"] = gin.H{"status": "failed"}
	default:
		checks["reconcile"] = gin.H{"status": "ok", "resubmitted": rec.Resubmitted, "lost": rec.Lost}
	}
	status := http.StatusOK
	if !ready {
		status = http.StatusServiceUnavailable
	}
	checks["ready"] = ready
	c.JSON(status, checks)
}

// emptyCID is the CIDv1 (raw) of zero bytes, used to probe the blob store.
const emptyCID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"

func (s *Server) limitBody(n int64) gin.HandlerFunc {
	return func(c *gin.Context) {
		if c.Request.ContentLength > n {
			fail(c, errf(wire.CodeTooLarge, "request body exceeds %d bytes", n))
			return
		}
		c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, n)
		c.Next()
	}
}

// pageArgs reads ?pageSize and ?bookmark.
func pageArgs(c *gin.Context) (string, string, error) {
	ps := c.DefaultQuery("pageSize", "100")
	n, err := strconv.Atoi(ps)
	if err != nil || n < 1 || n > wire.MaxPageSize {
		return "", "", badRequest("pageSize must be an integer in 1..%d", wire.MaxPageSize)
	}
	return strconv.Itoa(n), c.Query("bookmark"), nil
}
