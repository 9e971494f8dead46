package cli

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/medprov/medprov/wire"

	"github.com/spf13/cobra"

	"github.com/medprov/medprov/client"
	"github.com/medprov/medprov/envelope"
)

// simConfig is what device simulate runs.
type simConfig struct {
	devices  int
	rate     float64
	duration time.Duration
	batch    int
	typ      string
	unit     string
	seqStart uint64
	wait     bool
}

// simDevice is one simulated device.
type simDevice struct {
	id  string
	key *ecdsa.PrivateKey
}

// simStats counts outcomes; safe for concurrent use.
type simStats struct {
	mu       sync.Mutex
	Sent     int            `json:"sent"`
	Accepted int            `json:"accepted"`
	Existing int            `json:"exists"`
	Pushback int            `json:"pushback"`
	Failed   int            `json:"failed"`
	Errors   map[string]int `json:"errors"`
	Elapsed  float64        `json:"elapsedSeconds"`
	Rate     float64        `json:"acceptedPerSecond"`
}

func (s *simStats) add(status string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.Sent++
	var ae *client.APIError
	switch {
	case err == nil && status == wire.StatusExists:
		s.Existing++
	case err == nil:
		s.Accepted++
	case errors.Is(err, client.ErrRateLimited) || errors.Is(err, client.ErrUnavailable):
		s.Pushback++
		s.Errors[errKey(err)]++
	case errors.As(err, &ae):
		s.Failed++
		s.Errors[errKey(err)]++
	default:
		s.Failed++
		s.Errors["transport: "+err.Error()]++
	}
}

func errKey(err error) string {
	var ae *client.APIError
	if errors.As(err, &ae) {
		return fmt.Sprintf("%d %s: %s", ae.Status, ae.Code, ae.Message)
	}
	return err.Error()
}

func newDeviceSimulateCmd(a *app) *cobra.Command {
	var cfg simConfig
	var register bool
	var op, opKey, patient, prefix, keyDir string
	var devs []string
	var mq mqttOptions
	cmd := &cobra.Command{
		Use:   "simulate --devices N --rate R --duration D (--register ... | --device ID=KEY ...)",
		Short: "Drive N simulated devices sending signed readings",
		Long: `simulate runs devices that sign and send readings through the gateway at a
total of --rate readings per second (spread evenly over the devices) for
--duration, then prints how many were sent, accepted, pushed back (429/503,
honouring Retry-After) and refused, with the errors seen.

With --register it makes --devices fresh device keys and registers them as
<prefix>-<n> to --patient, signed by --operator/--key (and with --key-dir
writes their keys there). Otherwise it uses the devices given as
--device ID=KEYFILE. Sequence numbers start at --seq-start (default: the
current time in microseconds, so reruns do not collide). --batch N sends N
readings per request through the batch route. --wait waits for each block.

With --mqtt HOST:PORT the devices publish over the gateway's MQTT listener
instead (serve --mqtt-addr): each connects with a self-signed certificate
for its key (CN its id), publishes to medprov/v1/devices/<id>/readings at
QoS 1 and reads medprov/v1/devices/<id>/results; --mqtt-ca verifies the
listener's certificate. Registration still goes through the HTTP API.

The command exits non-zero if any reading was refused for a reason other
than pushback.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if cfg.rate <= 0 || cfg.duration <= 0 || cfg.batch < 1 {
				return usagef("--rate and --duration must be positive and --batch at least 1")
			}
			if mq.addr != "" && cfg.wait {
				return usagef("--wait is for HTTP: over --mqtt the outcomes arrive on the results topic")
			}
			if cfg.seqStart == 0 {
				cfg.seqStart = uint64(time.Now().UnixMicro())
			}
			c, err := a.newClient()
			if err != nil {
				return err
			}
			var devices []simDevice
			if register {
				if op == "" || opKey == "" || patient == "" {
					return usagef("--register needs --operator, --key and --patient")
				}
				oc, err := a.actorClient(op, opKey)
				if err != nil {
					return err
				}
				if prefix == "" {
					prefix = fmt.Sprintf("sim-%06x", rand.Uint32()&0xffffff)
				}
				devices, err = registerSimDevices(ctx, oc, cfg.devices, prefix, patient, cfg.typ, keyDir)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "registered %d devices %s-1..%d\n", len(devices), prefix, len(devices))
			} else {
				if devices, err = loadSimDevices(devs); err != nil {
					return err
				}
			}
			var st *simStats
			if mq.addr != "" {
				if st, err = simulateMQTT(ctx, devices, cfg, &mq); err != nil {
					return err
				}
			} else {
				st = simulate(ctx, c, devices, cfg)
			}
			if err := a.emit(st, func(w io.Writer) { printSimStats(w, st) }); err != nil {
				return err
			}
			if st.Failed > 0 {
				return fmt.Errorf("%d readings were refused", st.Failed)
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&cfg.devices, "devices", 3, "number of devices to register (with --register)")
	f.Float64Var(&cfg.rate, "rate", 10, "readings per second, all devices together")
	f.DurationVar(&cfg.duration, "duration", 10*time.Second, "how long to send")
	f.IntVar(&cfg.batch, "batch", 1, "readings per request (>1 uses the batch route)")
	f.StringVar(&cfg.typ, "type", "heart_rate", "reading type (also the device type when registering)")
	f.StringVar(&cfg.unit, "unit", "bpm", "reading unit")
	f.Uint64Var(&cfg.seqStart, "seq-start", 0, "first sequence number (default: now in microseconds)")
	f.BoolVar(&cfg.wait, "wait", false, "wait for each request's readings to be in a block")
	f.BoolVar(&register, "register", false, "make and register fresh devices")
	f.StringVar(&op, "operator", "", "operator actor id (with --register)")
	f.StringVar(&opKey, "key", "", "operator private key file (with --register)")
	f.StringVar(&patient, "patient", "", "patient the devices are registered to (with --register)")
	f.StringVar(&prefix, "prefix", "", "device id prefix (with --register; default random)")
	f.StringVar(&keyDir, "key-dir", "", "directory to write registered devices' keys to")
	f.StringArrayVar(&devs, "device", nil, "ID=KEYFILE of an existing device (repeatable)")
	mq.bind(f)
	return cmd
}

func registerSimDevices(ctx context.Context, oc *client.Client, n int, prefix, patient, typ, keyDir string) ([]simDevice, error) {
	if n < 1 {
		return nil, usagef("--devices must be at least 1")
	}
	out := make([]simDevice, 0, n)
	for i := 1; i <= n; i++ {
		id := prefix + "-" + strconv.Itoa(i)
		k, err := envelope.GenerateKey()
		if err != nil {
			return nil, err
		}
		pem, err := envelope.MarshalPublicKey(&k.PublicKey)
		if err != nil {
			return nil, err
		}
		if keyDir != "" {
			if err := writeKeyPair(k, filepath.Join(keyDir, id+".pem"), filepath.Join(keyDir, id+".pub.pem"), false); err != nil {
				return nil, err
			}
		}
		if _, err := oc.RegisterDevice(ctx, client.DeviceRegistration{DeviceID: id, PatientID: patient, DeviceType: typ, PublicKey: string(pem)}); err != nil {
			return nil, fmt.Errorf("register device %s: %w", id, err)
		}
		out = append(out, simDevice{id: id, key: k})
	}
	return out, nil
}

func loadSimDevices(pairs []string) ([]simDevice, error) {
	if len(pairs) == 0 {
		return nil, usagef("give --register or at least one --device ID=KEYFILE")
	}
	var out []simDevice
	for _, p := range pairs {
		id, file, ok := strings.Cut(p, "=")
		if !ok || id == "" || file == "" {
			return nil, usagef("--device %q: want ID=KEYFILE", p)
		}
		k, err := readPrivateKey(file)
		if err != nil {
			return nil, err
		}
		out = append(out, simDevice{id: id, key: k})
	}
	return out, nil
}

// simulate sends readings from every device until cfg.duration has passed
// or ctx is done, and returns the counts. Requests in flight at the end are
// allowed to finish.
func simulate(ctx context.Context, c *client.Client, devices []simDevice, cfg simConfig) *simStats {
	st := &simStats{Errors: map[string]int{}}
	start := time.Now()
	gen, cancel := context.WithTimeout(ctx, cfg.duration)
	defer cancel()
	perDevice := cfg.rate / float64(len(devices))
	interval := time.Duration(float64(time.Second) * float64(cfg.batch) / perDevice)
	var wg sync.WaitGroup
	for _, d := range devices {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runSimDevice(gen, ctx, c, d, cfg, interval, st)
		}()
	}
	wg.Wait()
	st.Elapsed = time.Since(start).Seconds()
	if st.Elapsed > 0 {
		st.Rate = float64(st.Accepted+st.Existing) / st.Elapsed
	}
	return st
}

// runSimDevice sends one device's readings every interval while gen is
// live; each request runs under ctx so it can finish after gen ends.
func runSimDevice(gen, ctx context.Context, c *client.Client, d simDevice, cfg simConfig, interval time.Duration, st *simStats) {
	var opts []client.SubmitOption
	if cfg.wait {
		opts = append(opts, client.WaitForCommit())
	}
	seq := cfg.seqStart
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		envs, next := signBatch(d, cfg, seq, st)
		seq = next
		var pause time.Duration
		if cfg.batch == 1 && len(envs) == 1 {
			r, err := c.SubmitReading(ctx, envs[0], opts...)
			if err != nil {
				st.add("", err)
				pause = client.RetryAfter(err)
			} else {
				st.add(r.Status, nil)
			}
		} else if len(envs) > 0 {
			b, err := c.SubmitReadings(ctx, envs, opts...)
			if err != nil {
				for range envs {
					st.add("", err)
				}
				pause = client.RetryAfter(err)
			} else {
				for _, r := range b.Results {
					if r.Error != nil {
						st.add("", &client.APIError{Status: 0, Code: r.Error.Code, Message: r.Error.Message})
					} else {
						st.add(r.Status, nil)
					}
				}
			}
		}
		if !waitTurn(gen, pause, t) {
			return
		}
	}
}

// waitTurn waits out pause (the gateway's pushback, if any), then the
// device's next tick; false once gen ends.
func waitTurn(gen context.Context, pause time.Duration, t *time.Ticker) bool {
	if pause > 0 {
		select {
		case <-gen.Done():
			return false
		case <-time.After(pause):
		}
	}
	select {
	case <-gen.Done():
		return false
	case <-t.C:
		return true
	}
}

func printSimStats(w io.Writer, st *simStats) {
	fmt.Fprintf(w, "sent %d  accepted %d  exists %d  pushback %d  refused %d  in %.1fs (%.1f accepted/s)\n",
		st.Sent, st.Accepted, st.Existing, st.Pushback, st.Failed, st.Elapsed, st.Rate)
	keys := make([]string, 0, len(st.Errors))
	for k := range st.Errors {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "  %6d  %s\n", st.Errors[k], k)
	}
}

// signBatch signs cfg.batch readings of d from seq on (a plausible value
// each), counting the readings it could not sign in st, and returns them
// with the next seq.
func signBatch(d simDevice, cfg simConfig, seq uint64, st *simStats) ([]envelope.Envelope, uint64) {
	envs := make([]envelope.Envelope, 0, cfg.batch)
	for range cfg.batch {
		p, err := client.NewReading(d.id, seq, cfg.typ, cfg.unit, 60+rand.IntN(40), time.Now())
		if err == nil {
			var env envelope.Envelope
			if env, err = client.SignReading(d.key, p); err == nil {
				envs = append(envs, env)
			}
		}
		if err != nil {
			st.add("", err)
		}
		seq++
	}
	return envs, seq
}
