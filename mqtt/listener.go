package mqtt

import (
	"context"
	"crypto"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/medprov/medprov/gateway"
)

// Gateway is the reading path the listener hands messages to
// (*gateway.Server).
//
// AuthenticateDevice MUST succeed only for the registered, active key of
// an existing device, and SHOULD charge failures to the peer address.
// SubmitReadings MUST return only after every reading it reports queued is
// durable, and MUST apply to each reading the same verification, rate
// limits and pushback as the HTTP routes. WatchRevocations MUST call fn
// for every device revoked on the ledger while the watch lasts.
type Gateway interface {
	AuthenticateDevice(ctx context.Context, peer, deviceID string, pub crypto.PublicKey) error
	SubmitReadings(ctx context.Context, sub gateway.Submission) (*gateway.Receipts, error)
	WatchRevocations(fn func(deviceID string)) (stop func())
}

// Config configures New. Addr, TLS (with the server's certificate) and
// Gateway are required.
type Config struct {
	// Addr is the TCP address to listen on, e.g. "0.0.0.0:8883".
	Addr string
	// TLS holds the server's certificate. The listener uses a copy that
	// requires a client certificate (tls.RequireAnyClientCert: the ledger,
	// not a CA, vouches for device keys) and at least TLS 1.2.
	TLS     *tls.Config
	Gateway Gateway
	// Registerer, if set, receives the listener's series (the gateway's
	// registry, served at /metrics: gateway.Metrics.Registerer).
	Registerer prometheus.Registerer
	// MaxPacketBytes bounds an MQTT packet; a larger one ends the
	// connection (MQTT 5 clients are told the bound). It should exceed the
	// gateway's batch body limit. Default 8 MiB + 64 KiB.
	MaxPacketBytes uint32
	// OutcomeWait bounds how long the ledger outcome of a queued reading
	// is awaited to be published as a result. Default 30s.
	OutcomeWait time.Duration
	// Recheck is how often every connected device is authenticated again,
	// the backstop for a revocation whose event this gateway did not see.
	// Default 1m.
	Recheck time.Duration
	// ConnectTimeout bounds the TLS handshake and the CONNECT packet of a
	// new connection. Default 10s.
	ConnectTimeout time.Duration
	Logger         *slog.Logger
}

// Listener is a running MQTT listener. Close it once.
type Listener struct {
	cfg     Config
	srv     *mochi.Server
	ln      net.Listener
	m       *metrics
	results *mochi.Client // the inline client results are published from

	// authed marks clients whose CONNECT passed authenticate, between the
	// broker's OnConnect and OnConnectAuthenticate hooks.
	authed sync.Map // *mochi.Client -> struct{}

	// mu guards closed against new hook calls while Close waits for the
	// calls in flight (calls) and the outcome waiters (waiters).
	mu        sync.RWMutex
	closed    bool
	calls     sync.WaitGroup
	waiters   sync.WaitGroup
	life      context.Context // ends once the calls in flight are done
	endLife   context.CancelFunc
	outcomes  context.Context // ends when Close begins
	endWaits  context.CancelFunc
	stopWatch func()
	stopCheck chan struct{}
	checkDone chan struct{}
	closeOnce sync.Once
}

// New listens on cfg.Addr and serves MQTT until Close.
func New(ctx context.Context, cfg Config) (_ *Listener, err error) {
	if cfg.Addr == "" || cfg.Gateway == nil || cfg.TLS == nil || (len(cfg.TLS.Certificates) == 0 && cfg.TLS.GetCertificate == nil) {
		return nil, errors.New("mqtt: Addr, Gateway and a TLS certificate are required")
	}
	if cfg.MaxPacketBytes == 0 {
		cfg.MaxPacketBytes = 8<<20 + 64<<10
	}
	if cfg.OutcomeWait <= 0 {
		cfg.OutcomeWait = 30 * time.Second
	}
	if cfg.Recheck <= 0 {
		cfg.Recheck = time.Minute
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	tc := cfg.TLS.Clone()
	tc.ClientAuth = tls.RequireAnyClientCert
	tc.MinVersion = max(tc.MinVersion, tls.VersionTLS12)

	caps := mochi.NewDefaultServerCapabilities()
	caps.MaximumPacketSize = cfg.MaxPacketBytes
	caps.RetainAvailable = 0
	caps.SharedSubAvailable = 0
	caps.MaximumSessionExpiryInterval = 3600
	caps.MaximumMessageExpiryInterval = 3600
	srv := mochi.New(&mochi.Options{
		Capabilities:           caps,
		Logger:                 slog.New(brokerLog{cfg.Logger.Handler(), rate.NewLimiter(5, 20)}),
		SysTopicResendInterval: 3600,
		// Results queued for a device go out together, up to 32 KiB a
		// write (the broker's default, 2 KiB, is ~8 results).
		ClientNetWriteBufferSize: 32 << 10,
	})
	l := &Listener{cfg: cfg, srv: srv, stopCheck: make(chan struct{}), checkDone: make(chan struct{})}
	l.life, l.endLife = context.WithCancel(context.WithoutCancel(ctx))
	l.outcomes, l.endWaits = context.WithCancel(l.life)
	defer func() {
		if err != nil {
			l.endLife()
		}
	}()
	l.results = srv.NewClient(nil, "local", "medprov-results", true)
	m, err := newMetrics(cfg.Registerer, func() float64 { return float64(atomic.LoadInt64(&srv.Info.ClientsConnected)) })
	if err != nil {
		return nil, fmt.Errorf("mqtt: metrics: %w", err)
	}
	l.m = m
	if err := srv.AddHook(&hook{l: l}, nil); err != nil {
		return nil, fmt.Errorf("mqtt: %w", err)
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("mqtt: listen: %w", err)
	}
	l.ln = ln
	if err := srv.AddListener(listeners.NewNet("medprov-tls", tls.NewListener(deadlineListener{ln, cfg.ConnectTimeout}, tc))); err != nil {
		return nil, errors.Join(fmt.Errorf("mqtt: %w", err), ln.Close())
	}
	if err := srv.Serve(); err != nil {
		return nil, errors.Join(fmt.Errorf("mqtt: %w", err), srv.Close(), ln.Close())
	}
	l.stopWatch = cfg.Gateway.WatchRevocations(func(deviceID string) {
		// Off the gateway's event follower: a disconnect writes to the
		// device, which may be slow.
		if l.enter() {
			go func() { defer l.calls.Done(); l.revoked(deviceID) }()
		}
	})
	go l.recheck()
	return l, nil
}

// Addr returns the address the listener listens on.
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

// Close stops accepting connections, disconnects every client, waits for
// the messages being taken in (their readings are queued or not, and
// unacknowledged either way) and stops publishing results.
func (l *Listener) Close() error {
	var err error
	l.closeOnce.Do(func() {
		l.stopWatch()
		close(l.stopCheck)
		<-l.checkDone
		l.mu.Lock()
		l.closed = true
		l.mu.Unlock()
		l.endWaits()
		err = l.srv.Close()
		l.calls.Wait()
		l.waiters.Wait()
		l.endLife()
	})
	return err
}

// enter registers a hook call; false once Close began.
func (l *Listener) enter() bool {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return false
	}
	l.calls.Add(1)
	return true
}

// revoked disconnects every connection of deviceID and drops its
// sessions.
func (l *Listener) revoked(deviceID string) {
	for _, cl := range l.srv.Clients.GetAll() {
		if deviceOf(cl) == deviceID {
			l.m.refuse(reasonRevoked)
			l.disconnect(cl)
		}
	}
}

// disconnect ends cl's connection as not authorized and drops its session
// (subscriptions, results in flight).
func (l *Listener) disconnect(cl *mochi.Client) {
	if cl.Properties.ProtocolVersion >= 5 {
		_ = l.srv.DisconnectClient(cl, packets.ErrNotAuthorized) //nolint:errcheck // the client is going either way
	} else {
		cl.Stop(packets.ErrNotAuthorized) // MQTT 3.1.1 servers send no DISCONNECT
	}
	l.srv.UnsubscribeClient(cl)
	l.srv.Clients.Delete(cl.ID)
}

// recheck authenticates every connected device again every Recheck and
// disconnects those refused (revoked, or their key replaced).
func (l *Listener) recheck() {
	defer close(l.checkDone)
	t := time.NewTicker(l.cfg.Recheck)
	defer t.Stop()
	for {
		select {
		case <-l.stopCheck:
			return
		case <-t.C:
		}
		for _, cl := range l.srv.Clients.GetAll() {
			tc, ok := cl.Net.Conn.(*tls.Conn)
			if !ok || cl.Closed() {
				continue // the inline client, or a session whose device is away
			}
			certs := tc.ConnectionState().PeerCertificates
			if len(certs) == 0 {
				continue
			}
			ctx, cancel := context.WithTimeout(l.life, 10*time.Second)
			err := l.cfg.Gateway.AuthenticateDevice(ctx, cl.Net.Remote, certs[0].Subject.CommonName, certs[0].PublicKey)
			cancel()
			if err != nil && gateway.ClientError(err).Code.Status() < 500 {
				l.m.refuse(reasonRevoked)
				l.disconnect(cl)
			}
		}
	}
}

// deadlineListener bounds how long a new connection may take to
// handshake and send CONNECT; the broker sets the keepalive deadline once
// it has read CONNECT.
type deadlineListener struct {
	net.Listener
	d time.Duration
}

// Accept returns the next connection. It fails only once the listener is
// closed: the broker stops serving at the first error, so failures such as
// running out of file descriptors are waited out here instead.
func (l deadlineListener) Accept() (net.Conn, error) {
	pause := 5 * time.Millisecond
	for {
		c, err := l.Listener.Accept()
		if errors.Is(err, net.ErrClosed) {
			return nil, err
		}
		if err == nil {
			if err = c.SetDeadline(time.Now().Add(l.d)); err == nil {
				return c, nil
			}
			c.Close()
		}
		time.Sleep(pause)
		pause = min(2*pause, time.Second)
	}
}

// brokerLog passes on the broker's warnings and errors with only their
// "error", "hook" and "listener" attributes (its log lines also carry
// packets, whose payloads are readings, health data, and client ids, which
// are device ids), at most 5 a second (a warning per failed connection
// must not let a flood of them flood the log).
type brokerLog struct {
	h   slog.Handler
	lim *rate.Limiter
}

func (b brokerLog) Enabled(ctx context.Context, lv slog.Level) bool {
	return lv >= slog.LevelWarn && b.h.Enabled(ctx, lv)
}

func (b brokerLog) Handle(ctx context.Context, r slog.Record) error {
	if !b.lim.Allow() {
		return nil
	}
	out := slog.NewRecord(r.Time, r.Level, "mqtt broker: "+r.Message, r.PC)
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "error", "hook", "listener":
			out.AddAttrs(a)
		}
		return true
	})
	return b.h.Handle(ctx, out)
}

// WithAttrs drops the attributes: the broker sets none worth keeping.
func (b brokerLog) WithAttrs([]slog.Attr) slog.Handler { return b }

func (b brokerLog) WithGroup(string) slog.Handler { return b }
