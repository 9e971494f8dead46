// Package loadgen drives a running medprov gateway with signed readings
// over real HTTP and reports what it measured: readings acknowledged and
// committed per second, acknowledgement and commit latency percentiles,
// the gateway's CPU per reading (from its /metrics) and a same-run ECDSA
// verification reference. "medprov bench" and the load benchmarks in
// test/load use it, so both measure the process users run.
package loadgen

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/medprov/medprov/client"
	"github.com/medprov/medprov/envelope"
	"github.com/medprov/medprov/wire"
)

// device is one simulated device.
type device struct {
	id  string
	key *ecdsa.PrivateKey
}

// Config configures a load run against a running gateway. Zero values
// take the defaults named on each field.
type Config struct {
	// Gateway is the gateway's base URL. Only loopback hosts are accepted.
	Gateway string
	// AdminToken registers the run's operator and patient.
	AdminToken string
	// Devices is how many simulated devices are registered. Default 50.
	Devices int
	// Concurrency is how many requests are in flight at once. Default 32.
	Concurrency int
	// Batch is the readings per request; 1 sends POST /v1/readings, more
	// sends POST /v1/readings/batch. Default 100.
	Batch int
	// Duration is the length of the load phase. Default 30s.
	Duration time.Duration
	// Rate paces the load in readings per second; 0 sends as fast as the
	// gateway answers.
	Rate float64
	// CommitSample is the fraction of requests sent with ?wait=commit to
	// measure commit latency under the same load; 0 sends none.
	CommitSample float64
	// Readings is how many readings are signed before the load phase; the
	// load phase ends early if they run out. Default: Duration times Rate,
	// or times PresignRate when Rate is 0, plus 5%.
	Readings int
	// PresignRate is the rate assumed when sizing the pre-signed readings
	// for an unpaced run. Default 15000/s.
	PresignRate float64
	// DrainTimeout bounds the wait, after the load phase, for the ingest
	// queue to empty. Default 2m.
	DrainTimeout time.Duration
	// VerifyFor is how long the ECDSA reference runs after the drain;
	// negative skips it. Default 2s.
	VerifyFor time.Duration
	// HTTPClient sends the requests. Default: a client with a connection
	// pool sized for Concurrency and a 60s timeout.
	HTTPClient *http.Client
	// Progress, if set, receives one line per phase and a load progress
	// line every 5s.
	Progress io.Writer
	// MQTT, if set, is the gateway's MQTT listener (loopback host:port):
	// the readings are published there at QoS 1 instead of POSTed, each
	// body holding one device's readings, each device on its own
	// connection (see mqtt.go). Ack latency is then PUBACK latency.
	// MQTTRootCAs verifies the listener's certificate (nil: the
	// system's); MQTTInsecure skips that.
	MQTT         string
	MQTTRootCAs  *x509.CertPool
	MQTTInsecure bool
}

// Report is the outcome of a load run. Rates are readings per second;
// latencies are milliseconds. Counts of committed and rejected readings come
// from the gateway's /metrics (medprov_readings_committed_total), so they
// include any other traffic the gateway served meanwhile.
type Report struct {
	Gateway string `json:"gateway"`
	// MQTT is the MQTT listener the readings went to, if not over HTTP.
	MQTT         string  `json:"mqtt,omitempty"`
	Devices      int     `json:"devices"`
	Concurrency  int     `json:"concurrency"`
	Batch        int     `json:"batch"`
	Rate         float64 `json:"rate"`
	CommitSample float64 `json:"commit_sample"`
	GOMAXPROCS   int     `json:"gomaxprocs"`

	PresignedReadings int     `json:"presigned_readings"`
	PresignSeconds    float64 `json:"presign_s"`
	// PresignExhausted is true when the load phase ended because every
	// pre-signed reading was sent: raise Readings or PresignRate.
	PresignExhausted bool `json:"presign_exhausted"`

	// LoadSeconds is the load window: Duration, or less if the pre-signed
	// readings ran out. TailSeconds is how long the requests in flight at
	// its end took to answer.
	LoadSeconds float64 `json:"load_s"`
	TailSeconds float64 `json:"tail_s"`
	// DrainSeconds is the time from the end of the load window until the
	// queue depth was 0 (the tail included); Drained is false if that did
	// not happen within DrainTimeout.
	DrainSeconds float64 `json:"drain_s"`
	Drained      bool    `json:"drained"`

	Requests     int64 `json:"requests"`
	ReadingsSent int64 `json:"readings_sent"`
	// ReadingsAcked counts every acknowledged reading, the tail included.
	ReadingsAcked int64 `json:"readings_acked"`
	// AckedPerSec is the readings acknowledged within the load window over
	// LoadSeconds.
	AckedPerSec float64 `json:"acked_per_sec"`
	// ReadingsCommitted is the growth of committed_total{outcome="recorded"}
	// from the start of the load to the drain.
	ReadingsCommitted int64 `json:"readings_committed"`
	// ReadingsRejected is the growth of committed_total{outcome="rejected"}.
	ReadingsRejected int64 `json:"readings_rejected"`
	// CommittedPerSec is ReadingsCommitted over LoadSeconds+DrainSeconds:
	// from the start of the load until the queue was empty.
	CommittedPerSec float64 `json:"committed_per_sec"`
	// CommittedDuringLoadPerSec counts only what committed within the load
	// window: the sustained ledger rate under load.
	CommittedDuringLoadPerSec float64 `json:"committed_during_load_per_sec"`
	// GatewayCPUSeconds is the growth of the gateway's
	// process_cpu_seconds_total from the start of the load to the drain;
	// GatewayCores is it over that time, and GatewayCPUPerReadingUs over
	// ReadingsCommitted. Unlike rates, CPU per reading holds on a machine
	// shared with other work. Zero when the gateway does not export it.
	GatewayCPUSeconds      float64 `json:"gateway_cpu_s"`
	GatewayCores           float64 `json:"gateway_cores"`
	GatewayCPUPerReadingUs float64 `json:"gateway_cpu_us_per_reading"`
	// ECDSAPerReading is the growth of the gateway's
	// medprov_ecdsa_verifications_total over ReadingsCommitted: the ECDSA
	// verifications of reading signatures its process computed per
	// committed reading (1 for an embedded node, whose chaincode reuses the
	// gateway's verification). Zero when the gateway does not export it.
	ECDSAPerReading float64 `json:"ecdsa_per_reading"`
	// QueueDepthAtLoadEnd is the backlog the drain had to commit.
	QueueDepthAtLoadEnd int64 `json:"queue_depth_at_load_end"`

	// Ack latency is per request (it applies to every reading of the
	// request), over the requests without ?wait=commit that were answered 2xx.
	P50AckMs float64 `json:"p50_ack_ms"`
	P95AckMs float64 `json:"p95_ack_ms"`
	P99AckMs float64 `json:"p99_ack_ms"`
	MaxAckMs float64 `json:"max_ack_ms"`
	// Commit latency is per ?wait=commit request answered 2xx.
	CommitSamples int     `json:"commit_samples"`
	P50CommitMs   float64 `json:"p50_commit_ms"`
	P95CommitMs   float64 `json:"p95_commit_ms"`
	P99CommitMs   float64 `json:"p99_commit_ms"`

	// Errors counts refused readings and failed requests by kind, e.g.
	// "item 409 conflict", "http 400 invalid", "transport connection refused".
	Errors map[string]int64 `json:"errors"`
	// Pushback counts 429 and 503 answers (retried after Retry-After).
	Pushback map[string]int64 `json:"pushback"`

	// VerifyPerSec is this machine's ECDSA P-256 VerifyASN1 rate on all
	// cores, measured after the drain; CommittedPerVerify is
	// CommittedPerSec over it (every reading is verified twice: by the
	// gateway and by the chaincode).
	VerifyPerSec       float64 `json:"verify_per_sec"`
	CommittedPerVerify float64 `json:"committed_per_verify"`
}

var (
	// ErrNotLoopback reports a bench target that is not on this machine.
	ErrNotLoopback = errors.New("bench drives loopback gateways only")
	// ErrConfig reports a Config that cannot run.
	ErrConfig = errors.New("invalid load configuration")
)

// Bench is a prepared load run: its actors and devices are registered and
// its readings signed. Run it once.
type Bench struct {
	cfg      Config
	hc       *http.Client
	base     string
	bodies   [][]byte
	signTime time.Duration
	ran      atomic.Bool
	mqtt     *mqttLoad // nil over HTTP
}

// withDefaults fills zero fields of cfg.
func (cfg Config) withDefaults() Config {
	if cfg.Devices <= 0 {
		cfg.Devices = 50
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 32
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 100
	}
	if cfg.Duration <= 0 {
		cfg.Duration = 30 * time.Second
	}
	if cfg.PresignRate <= 0 {
		cfg.PresignRate = 15000
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = 2 * time.Minute
	}
	if cfg.VerifyFor == 0 {
		cfg.VerifyFor = 2 * time.Second
	}
	if cfg.Readings <= 0 {
		rate := cfg.Rate
		if rate <= 0 {
			rate = cfg.PresignRate
		}
		cfg.Readings = int(math.Ceil(rate * cfg.Duration.Seconds() * 1.05))
	}
	// Whole requests only.
	cfg.Readings = max(1, (cfg.Readings+cfg.Batch-1)/cfg.Batch) * cfg.Batch
	return cfg
}

// checkLoopback returns ErrNotLoopback unless u names this machine.
func checkLoopback(u *url.URL) error {
	h := u.Hostname()
	if h == "localhost" {
		return nil
	}
	if ip := net.ParseIP(h); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("%w: %q", ErrNotLoopback, h)
}

// New registers an operator, a patient and cfg.Devices devices with
// fresh keys on the gateway, and signs cfg.Readings readings on all cores.
// Nothing it does is timed as load.
func New(ctx context.Context, cfg Config) (*Bench, error) {
	cfg = cfg.withDefaults()
	u, err := url.Parse(strings.TrimRight(cfg.Gateway, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%w: gateway %q: want http(s)://host:port", ErrConfig, cfg.Gateway)
	}
	if err := checkLoopback(u); err != nil {
		return nil, err
	}
	if cfg.AdminToken == "" {
		return nil, fmt.Errorf("%w: the admin token is required", ErrConfig)
	}
	if cfg.Batch > wire.MaxBatch {
		return nil, fmt.Errorf("%w: batch is at most %d (the gateway's batch limit)", ErrConfig, wire.MaxBatch)
	}
	if cfg.CommitSample < 0 || cfg.CommitSample > 1 || cfg.Rate < 0 {
		return nil, fmt.Errorf("%w: commit sample must be in [0,1] and rate not negative", ErrConfig)
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{
			Proxy: nil, MaxIdleConns: cfg.Concurrency + 8, MaxIdleConnsPerHost: cfg.Concurrency + 8,
			IdleConnTimeout: 90 * time.Second, DisableCompression: true,
		}}
	}
	b := &Bench{cfg: cfg, hc: hc, base: u.String()}
	devs, err := b.register(ctx)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	if b.bodies, err = presign(ctx, devs, cfg.Readings, cfg.Batch, cfg.MQTT != ""); err != nil {
		return nil, err
	}
	b.signTime = time.Since(start)
	b.progress("pre-signed %d readings in %d requests in %.1fs", cfg.Readings, len(b.bodies), b.signTime.Seconds())
	if cfg.MQTT != "" {
		if b.mqtt, err = dialMQTT(ctx, cfg, devs); err != nil {
			return nil, err
		}
		b.progress("connected %d devices to the MQTT listener %s", len(devs), cfg.MQTT)
	}
	return b, nil
}

func (b *Bench) progress(format string, args ...any) {
	if b.cfg.Progress != nil {
		fmt.Fprintf(b.cfg.Progress, "bench: "+format+"\n", args...)
	}
}

// register makes the run's actors and devices, all with fresh keys and a
// random id prefix so runs never collide.
func (b *Bench) register(ctx context.Context) ([]device, error) {
	var rb [3]byte
	if _, err := rand.Read(rb[:]); err != nil {
		return nil, fmt.Errorf("bench id: %w", err)
	}
	prefix := "bench-" + hex.EncodeToString(rb[:])
	admin, err := client.New(b.base, client.WithHTTPClient(b.hc), client.WithAdminToken(b.cfg.AdminToken))
	if err != nil {
		return nil, err
	}
	opKey, err := envelope.GenerateKey()
	if err != nil {
		return nil, err
	}
	patKey, err := envelope.GenerateKey()
	if err != nil {
		return nil, err
	}
	opID, patID := prefix+"-operator", prefix+"-patient"
	for _, a := range []struct {
		id, role string
		key      *ecdsa.PrivateKey
	}{{opID, wire.RoleOperator, opKey}, {patID, wire.RolePatient, patKey}} {
		pem, err := envelope.MarshalPublicKey(&a.key.PublicKey)
		if err != nil {
			return nil, err
		}
		if _, err := admin.RegisterActor(ctx, wire.ActorInput{ID: a.id, Role: a.role, PublicKey: string(pem)}); err != nil {
			return nil, fmt.Errorf("register %s %s: %w", a.role, a.id, err)
		}
	}
	op, err := client.New(b.base, client.WithHTTPClient(b.hc), client.WithActor(opID, opKey))
	if err != nil {
		return nil, err
	}
	devs := make([]device, b.cfg.Devices)
	errs := make([]error, b.cfg.Devices)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(8, b.cfg.Devices) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < len(devs); i = int(next.Add(1) - 1) {
				devs[i], errs[i] = registerDevice(ctx, op, fmt.Sprintf("%s-d%d", prefix, i+1), patID)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	b.progress("registered operator, patient and %d devices %s-d1..%d", len(devs), prefix, len(devs))
	return devs, nil
}

// registerDevice registers one device, retrying pushback (each attempt
// is a new signed action with its own nonce).
func registerDevice(ctx context.Context, op *client.Client, id, patient string) (device, error) {
	k, err := envelope.GenerateKey()
	if err != nil {
		return device{}, err
	}
	pem, err := envelope.MarshalPublicKey(&k.PublicKey)
	if err != nil {
		return device{}, err
	}
	for attempt := 1; ; attempt++ {
		_, err = op.RegisterDevice(ctx, client.DeviceRegistration{DeviceID: id, PatientID: patient, DeviceType: "bench", PublicKey: string(pem)})
		d := client.RetryAfter(err)
		if err == nil || d == 0 || attempt == 10 {
			break
		}
		select {
		case <-ctx.Done():
			return device{}, ctx.Err()
		case <-time.After(d):
		}
	}
	if err != nil {
		return device{}, fmt.Errorf("register device %s: %w", id, err)
	}
	return device{id: id, key: k}, nil
}

// presign signs n readings (n a multiple of batch) spread round-robin over
// devs, on all cores, and returns the request bodies, batch readings each.
// Reading j goes to device j mod len(devs) with seq j div len(devs) + 1;
// with perDevice (MQTT: a device publishes its own readings only), body i
// holds readings of device i mod len(devs) alone, with seqs following on
// from its previous body's.
func presign(ctx context.Context, devs []device, n, batch int, perDevice bool) ([][]byte, error) {
	bodies := make([][]byte, n/batch)
	measured := time.Now().Add(-time.Second)
	var next atomic.Int64
	var wg sync.WaitGroup
	errc := make(chan error, runtime.GOMAXPROCS(0))
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			envs := make([]envelope.Envelope, batch)
			for i := int(next.Add(1) - 1); i < len(bodies); i = int(next.Add(1) - 1) {
				if err := ctx.Err(); err != nil {
					errc <- err
					return
				}
				for k := range batch {
					j := i*batch + k
					d, seq := devs[j%len(devs)], uint64(j/len(devs))+1
					if perDevice {
						d, seq = devs[i%len(devs)], uint64((i/len(devs))*batch+k)+1
					}
					p, err := client.NewReading(d.id, seq, "heart_rate", "bpm", 60+j%40, measured)
					if err != nil {
						errc <- err
						return
					}
					if envs[k], err = client.SignReading(d.key, p); err != nil {
						errc <- err
						return
					}
				}
				var body any = envs[0]
				if batch > 1 {
					body = struct {
						Readings []envelope.Envelope `json:"readings"`
					}{envs}
				}
				bb, err := json.Marshal(body)
				if err != nil {
					errc <- fmt.Errorf("encode request: %w", err)
					return
				}
				bodies[i] = bb
			}
		})
	}
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		return nil, fmt.Errorf("pre-sign readings: %w", err)
	}
	return bodies, nil
}

// gatewayCounters are the /metrics series a run reads.
type gatewayCounters struct {
	recorded, rejected, ingested, depth int64
	cpuSeconds                          float64 // process_cpu_seconds_total; 0 if not exported
	ecdsa                               float64 // medprov_ecdsa_verifications_total; 0 if not exported
}

// scrape reads the gateway's counters from /metrics.
func (b *Bench) scrape(ctx context.Context) (gatewayCounters, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.base+"/metrics", nil)
	if err != nil {
		return gatewayCounters{}, fmt.Errorf("metrics: %w", err)
	}
	resp, err := b.hc.Do(req)
	if err != nil {
		return gatewayCounters{}, fmt.Errorf("metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return gatewayCounters{}, fmt.Errorf("metrics: HTTP %d", resp.StatusCode)
	}
	return parseCounters(resp.Body)
}

// parseCounters reads the series bench needs from Prometheus text format.
// A missing counter reads as 0 (no reading finished yet); a missing queue
// depth is an error, since the drain could not be observed.
func parseCounters(r io.Reader) (gatewayCounters, error) {
	m, err := client.ParseMetrics(r)
	if err != nil {
		return gatewayCounters{}, err
	}
	depth, ok := m["medprov_ingest_queue_depth"]
	if !ok {
		return gatewayCounters{}, errors.New("metrics: no medprov_ingest_queue_depth series (is this a medprov gateway?)")
	}
	return gatewayCounters{
		recorded:   int64(m[`medprov_readings_committed_total{outcome="recorded"}`]),
		rejected:   int64(m[`medprov_readings_committed_total{outcome="rejected"}`]),
		ingested:   int64(m["medprov_readings_ingested_total"]),
		depth:      int64(depth),
		cpuSeconds: m["process_cpu_seconds_total"],
		ecdsa:      m["medprov_ecdsa_verifications_total"],
	}, nil
}

// loadStats is what the workers share during the load phase.
type loadStats struct {
	requests, sent, acked atomic.Int64
	mu                    sync.Mutex
	errors, pushback      map[string]int64
}

func (s *loadStats) count(m map[string]int64, kind string, n int64) {
	s.mu.Lock()
	m[kind] += n
	s.mu.Unlock()
}

// sampled reports whether request i is one of the CommitSample fraction
// sent with ?wait=commit; the samples are spread evenly.
func sampled(i int, frac float64) bool {
	if frac <= 0 {
		return false
	}
	return math.Floor(float64(i+1)*frac) > math.Floor(float64(i)*frac)
}

// pacer spaces requests so that the readings sent follow a rate.
type pacer struct {
	mu       sync.Mutex
	next     time.Time
	interval time.Duration
}

// wait blocks until the caller's slot; false if ctx ended first.
func (p *pacer) wait(ctx context.Context) bool {
	if p == nil {
		return ctx.Err() == nil
	}
	p.mu.Lock()
	now := time.Now()
	at := p.next
	if at.Before(now) {
		at = now
	}
	p.next = at.Add(p.interval)
	p.mu.Unlock()
	if d := at.Sub(now); d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
	}
	return ctx.Err() == nil
}

// Run drives the gateway for the configured duration, waits (bounded) for
// its queue to drain, measures the ECDSA reference and returns the report.
// Requests in flight when the duration ends are allowed to finish.
func (b *Bench) Run(ctx context.Context) (*Report, error) {
	if b.ran.Swap(true) {
		return nil, errors.New("bench: Run called twice (its readings are spent)")
	}
	defer b.mqtt.close() //nolint:errcheck // the run is over; the gateway's counters tell what it took
	cfg := b.cfg
	rep := &Report{
		Gateway: b.base, MQTT: cfg.MQTT, Devices: cfg.Devices, Concurrency: cfg.Concurrency, Batch: cfg.Batch, Rate: cfg.Rate,
		CommitSample: cfg.CommitSample, GOMAXPROCS: runtime.GOMAXPROCS(0),
		PresignedReadings: cfg.Readings, PresignSeconds: b.signTime.Seconds(),
	}
	before, err := b.scrape(ctx)
	if err != nil {
		return nil, err
	}
	st := &loadStats{errors: map[string]int64{}, pushback: map[string]int64{}}
	var pc *pacer
	if cfg.Rate > 0 {
		pc = &pacer{interval: time.Duration(float64(time.Second) * float64(cfg.Batch) / cfg.Rate)}
	}
	path := "/v1/readings/batch"
	if cfg.Batch == 1 {
		path = "/v1/readings"
	}
	b.progress("load: %s, %d in flight, %d readings per request, rate %s", cfg.Duration, cfg.Concurrency, cfg.Batch, RateText(cfg.Rate))

	start := time.Now()
	loadCtx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	var next atomic.Int64
	var exhausted atomic.Bool
	ackLat := make([][]time.Duration, cfg.Concurrency)
	commitLat := make([][]time.Duration, cfg.Concurrency)
	stopProgress := b.reportProgress(loadCtx, st, start)
	var wg sync.WaitGroup
	for w := range cfg.Concurrency {
		wg.Go(func() {
			for pc.wait(loadCtx) {
				i := int(next.Add(1) - 1)
				if i >= len(b.bodies) {
					exhausted.Store(true)
					return
				}
				wait := sampled(i, cfg.CommitSample)
				var d time.Duration
				var ok bool
				if b.mqtt != nil {
					d, ok = b.mqtt.send(ctx, loadCtx, st, i, b.bodies[i], wait)
				} else {
					d, ok = b.send(ctx, loadCtx, st, path, b.bodies[i], wait)
				}
				b.bodies[i] = nil // spent; let it go
				if !ok {
					continue
				}
				if wait {
					commitLat[w] = append(commitLat[w], d)
				} else {
					ackLat[w] = append(ackLat[w], d)
				}
			}
		})
	}
	// The load window ends at the deadline, or earlier when every worker
	// stopped (readings exhausted); requests still in flight then finish in
	// the tail, which counts toward the drain, not the window's rates.
	workersDone := make(chan struct{})
	go func() { wg.Wait(); close(workersDone) }()
	select {
	case <-loadCtx.Done():
	case <-workersDone:
	}
	loadEnd := time.Now()
	if b.mqtt != nil {
		b.mqtt.settle(st)
	}
	ackedInWindow := st.acked.Load()
	atLoadEnd, err := b.scrape(ctx)
	<-workersDone
	stopProgress()
	if err != nil {
		return nil, err
	}
	rep.LoadSeconds = loadEnd.Sub(start).Seconds()
	rep.TailSeconds = time.Since(loadEnd).Seconds()
	rep.PresignExhausted = exhausted.Load()
	rep.QueueDepthAtLoadEnd = atLoadEnd.depth
	if b.mqtt != nil {
		b.mqtt.settle(st)
	}
	rep.Requests, rep.ReadingsSent, rep.ReadingsAcked = st.requests.Load(), st.sent.Load(), st.acked.Load()
	rep.AckedPerSec = float64(ackedInWindow) / rep.LoadSeconds
	rep.CommittedDuringLoadPerSec = float64(atLoadEnd.recorded-before.recorded) / rep.LoadSeconds
	rep.Errors, rep.Pushback = st.errors, st.pushback
	acks, commits := slices.Concat(ackLat...), slices.Concat(commitLat...)
	rep.P50AckMs, rep.P95AckMs, rep.P99AckMs = percentileMs(acks, 0.50), percentileMs(acks, 0.95), percentileMs(acks, 0.99)
	rep.MaxAckMs = percentileMs(acks, 1)
	rep.CommitSamples = len(commits)
	rep.P50CommitMs, rep.P95CommitMs, rep.P99CommitMs = percentileMs(commits, 0.50), percentileMs(commits, 0.95), percentileMs(commits, 0.99)
	b.progress("load window %.1fs: %d readings acked in it (%.0f/s), %.0f committed/s in it, queue depth %d at its end; last requests answered %.1fs later; draining",
		rep.LoadSeconds, ackedInWindow, rep.AckedPerSec, rep.CommittedDuringLoadPerSec, atLoadEnd.depth, rep.TailSeconds)

	after, drainEnd, drained, err := b.drain(ctx, atLoadEnd)
	if err != nil {
		return nil, err
	}
	rep.Drained = drained
	rep.DrainSeconds = drainEnd.Sub(loadEnd).Seconds()
	rep.ReadingsCommitted = after.recorded - before.recorded
	rep.ReadingsRejected = after.rejected - before.rejected
	rep.CommittedPerSec = float64(rep.ReadingsCommitted) / drainEnd.Sub(start).Seconds()
	rep.GatewayCPUSeconds = after.cpuSeconds - before.cpuSeconds
	rep.GatewayCores = rep.GatewayCPUSeconds / drainEnd.Sub(start).Seconds()
	if rep.ReadingsCommitted > 0 {
		rep.GatewayCPUPerReadingUs = rep.GatewayCPUSeconds * 1e6 / float64(rep.ReadingsCommitted)
		rep.ECDSAPerReading = (after.ecdsa - before.ecdsa) / float64(rep.ReadingsCommitted)
	}
	b.progress("drained=%v in %.1fs: %d committed (%.0f/s), %d rejected by the ledger", drained, rep.DrainSeconds, rep.ReadingsCommitted, rep.CommittedPerSec, rep.ReadingsRejected)

	if cfg.VerifyFor > 0 {
		rep.VerifyPerSec = measureVerify(ctx, cfg.VerifyFor)
		if rep.VerifyPerSec > 0 {
			rep.CommittedPerVerify = rep.CommittedPerSec / rep.VerifyPerSec
		}
	}
	return rep, ctx.Err()
}

// send posts one pre-encoded body, retrying pushback after Retry-After while
// loadCtx lives; the request itself runs under ctx so it may finish after
// the load phase. It returns the latency of the answered attempt and
// whether the request was answered 2xx.
func (b *Bench) send(ctx, loadCtx context.Context, st *loadStats, path string, body []byte, wait bool) (time.Duration, bool) {
	u := b.base + path
	if wait {
		u += "?wait=commit"
	}
	n := int64(b.cfg.Batch)
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
		if err != nil {
			st.count(st.errors, "request: "+err.Error(), n)
			return 0, false
		}
		req.Header.Set("Content-Type", "application/json")
		st.requests.Add(1)
		t0 := time.Now()
		resp, err := b.hc.Do(req)
		if err != nil {
			st.sent.Add(n)
			st.count(st.errors, transportKind(err), n)
			return 0, false
		}
		rb, err := io.ReadAll(io.LimitReader(resp.Body, client.MaxResponseBytes))
		resp.Body.Close()
		d := time.Since(t0)
		if err != nil {
			st.sent.Add(n)
			st.count(st.errors, transportKind(err), n)
			return 0, false
		}
		switch {
		case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable:
			ae := parseError(resp, rb)
			st.count(st.pushback, fmt.Sprintf("%d %s", ae.Status, ae.Code), 1)
			pause := ae.RetryAfter
			if pause <= 0 {
				pause = time.Second
			}
			t := time.NewTimer(pause)
			select {
			case <-loadCtx.Done():
				t.Stop()
				return 0, false // never sent: the load phase is over
			case <-t.C:
			}
			continue
		case resp.StatusCode < 200 || resp.StatusCode > 299:
			st.sent.Add(n)
			ae := parseError(resp, rb)
			st.count(st.errors, fmt.Sprintf("http %d %s", ae.Status, ae.Code), n)
			return 0, false
		}
		st.sent.Add(n)
		if b.cfg.Batch == 1 {
			st.acked.Add(1)
			return d, true
		}
		b.countBatch(st, rb)
		return d, true
	}
}

// countBatch counts the acknowledged and refused items of a batch answer.
// It decodes the per-item results only when some item was refused.
func (b *Bench) countBatch(st *loadStats, body []byte) {
	var sum struct {
		Accepted int64 `json:"accepted"`
		Rejected int64 `json:"rejected"`
	}
	if err := json.Unmarshal(body, &sum); err != nil {
		st.count(st.errors, "undecodable batch answer", int64(b.cfg.Batch))
		return
	}
	st.acked.Add(sum.Accepted)
	if sum.Rejected == 0 {
		return
	}
	var full wire.BatchReceipt
	if err := json.Unmarshal(body, &full); err != nil {
		st.count(st.errors, "undecodable batch answer", sum.Rejected)
		return
	}
	for _, r := range full.Failed() {
		code := "rejected"
		if r.Error != nil {
			code = string(r.Error.Code)
		}
		st.count(st.errors, "item "+code, 1)
	}
}

// parseError reads an error answer's code and Retry-After.
func parseError(resp *http.Response, body []byte) *client.APIError {
	ae := &client.APIError{Status: resp.StatusCode}
	var v struct {
		Error *wire.ErrorBody `json:"error"`
	}
	if err := json.Unmarshal(body, &v); err == nil && v.Error != nil {
		ae.Code = v.Error.Code
	}
	if s, err := strconv.Atoi(strings.TrimSpace(resp.Header.Get("Retry-After"))); err == nil && s >= 0 {
		ae.RetryAfter = time.Duration(s) * time.Second
	}
	return ae
}

// transportKind names a transport failure without addresses or ports, so
// equal failures count together.
func transportKind(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.Canceled):
		return "transport canceled"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "transport timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "transport connection refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "transport connection reset"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "transport connection closed"
	default:
		return "transport error"
	}
}

// reportProgress prints acked counts every 5s until the returned stop is
// called.
func (b *Bench) reportProgress(ctx context.Context, st *loadStats, start time.Time) (stop func()) {
	if b.cfg.Progress == nil {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		var last int64
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				a := st.acked.Load()
				b.progress("  %4.0fs  acked %d  (%.0f/s over the last 5s)", time.Since(start).Seconds(), a, float64(a-last)/5)
				last = a
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

// drain polls /metrics until the queue depth is 0 on two polls in a row (so
// the committed counter has caught up) or DrainTimeout passes. It returns the
// last counters, when the depth was first seen at 0, and whether it was.
func (b *Bench) drain(ctx context.Context, c gatewayCounters) (gatewayCounters, time.Time, bool, error) {
	deadline := time.Now().Add(b.cfg.DrainTimeout)
	var zeroAt time.Time
	for {
		if c.depth == 0 {
			if !zeroAt.IsZero() {
				return c, zeroAt, true, nil
			}
			zeroAt = time.Now()
		} else {
			zeroAt = time.Time{}
		}
		if time.Now().After(deadline) {
			return c, time.Now(), false, nil
		}
		select {
		case <-ctx.Done():
			return c, time.Now(), false, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		var err error
		if c, err = b.scrape(ctx); err != nil {
			return c, time.Now(), false, err
		}
	}
}

// measureVerify returns ECDSA P-256 VerifyASN1 calls per second over d, on
// GOMAXPROCS goroutines.
func measureVerify(ctx context.Context, d time.Duration) float64 {
	k, err := envelope.GenerateKey()
	if err != nil {
		return 0
	}
	digest := sha256.Sum256([]byte("medprov bench reference"))
	sig, err := ecdsa.SignASN1(rand.Reader, k, digest[:])
	if err != nil {
		return 0
	}
	var total atomic.Int64
	var failed atomic.Bool
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			n := int64(0)
			for ctx.Err() == nil && time.Now().Before(deadline) {
				for range 16 {
					if !ecdsa.VerifyASN1(&k.PublicKey, digest[:], sig) {
						failed.Store(true)
					}
				}
				n += 16
			}
			total.Add(n)
		})
	}
	wg.Wait()
	if failed.Load() {
		return 0
	}
	return float64(total.Load()) / time.Since(start).Seconds()
}

// percentileMs returns the q-quantile of ds (nearest rank) in
// milliseconds, or 0 for no samples. It sorts ds.
func percentileMs(ds []time.Duration, q float64) float64 {
	if len(ds) == 0 {
		return 0
	}
	if !slices.IsSorted(ds) {
		slices.Sort(ds)
	}
	i := int(math.Ceil(q*float64(len(ds)))) - 1
	i = min(max(i, 0), len(ds)-1)
	return float64(ds[i].Microseconds()) / 1000
}

// RateText names a load rate for people: "unpaced" for 0, else readings/s.
func RateText(r float64) string {
	if r <= 0 {
		return "unpaced"
	}
	return strconv.FormatFloat(r, 'f', 0, 64) + "/s"
}
