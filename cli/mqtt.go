package cli

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/spf13/pflag"

	"github.com/medprov/medprov/envelope"
	"github.com/medprov/medprov/mqtt/device"
	"github.com/medprov/medprov/wire"
)

// mqttOptions are the flags of the commands that publish readings over a
// gateway's MQTT listener instead of its HTTP API.
type mqttOptions struct {
	addr     string
	ca       string
	insecure bool
}

func (o *mqttOptions) bind(f *pflag.FlagSet) {
	f.StringVar(&o.addr, "mqtt", "", "publish the readings over MQTT to this listener (host:port, serve --mqtt-addr) instead of HTTP")
	f.StringVar(&o.ca, "mqtt-ca", "", "PEM certificate(s) that verify the MQTT listener's certificate (default: the system's roots)")
	f.BoolVar(&o.insecure, "mqtt-insecure", false, "do not verify the MQTT listener's certificate (a self-signed test listener)")
}

// rootCAs returns the pool of --mqtt-ca, nil for the system's.
func (o *mqttOptions) rootCAs() (*x509.CertPool, error) {
	if o.ca == "" {
		return nil, nil
	}
	b, err := os.ReadFile(o.ca)
	if err != nil {
		return nil, fmt.Errorf("--mqtt-ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, usagef("--mqtt-ca %s holds no PEM certificate", o.ca)
	}
	return pool, nil
}

// simulateMQTT is simulate over MQTT: each device connects with a
// self-signed certificate for its key, publishes its readings (one
// envelope, or a batch body with --batch) at QoS 1 to its readings topic
// and subscribes to its results. A PUBACK counts the message's readings
// accepted, except those its results refuse; PUBACK 0x97 (rate limit,
// pushback) counts them pushed back and pauses the device a second.
func simulateMQTT(ctx context.Context, devices []simDevice, cfg simConfig, o *mqttOptions) (*simStats, error) {
	pool, err := o.rootCAs()
	if err != nil {
		return nil, err
	}
	st := &simStats{Errors: map[string]int{}}
	out := &mqttOutcomes{accepted: map[string]bool{}, pubacks: map[string]string{}, refused: map[string][]refusal{}}
	conns := make([]*device.Device, len(devices))
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close() //nolint:errcheck // the simulation is over
			}
		}
	}()
	for i, d := range devices {
		cert, err := device.Certificate(d.id, d.key)
		if err != nil {
			return nil, err
		}
		if conns[i], err = device.Dial(ctx, device.Config{Addr: o.addr, ID: d.id, Certificate: cert, RootCAs: pool,
			Insecure: o.insecure, Results: out.result}); err != nil {
			return nil, fmt.Errorf("device %s over MQTT: %w", d.id, err)
		}
	}
	start := time.Now()
	gen, cancel := context.WithTimeout(ctx, cfg.duration)
	defer cancel()
	interval := time.Duration(float64(time.Second) * float64(cfg.batch) / (cfg.rate / float64(len(devices))))
	var wg sync.WaitGroup
	for i, d := range devices {
		wg.Go(func() { runSimDeviceMQTT(gen, ctx, conns[i], d, cfg, interval, st, out) })
	}
	wg.Wait()
	time.Sleep(time.Second) // the results of the last messages
	out.settle(st)
	st.Elapsed = time.Since(start).Seconds()
	if st.Elapsed > 0 {
		st.Rate = float64(st.Accepted+st.Existing) / st.Elapsed
	}
	return st, nil
}

// runSimDeviceMQTT publishes one device's readings every interval while
// gen is live.
func runSimDeviceMQTT(gen, ctx context.Context, c *device.Device, d simDevice, cfg simConfig, interval time.Duration, st *simStats, out *mqttOutcomes) {
	seq := cfg.seqStart
	t := time.NewTicker(interval)
	defer t.Stop()
	for n := 0; ; n++ {
		envs, next := signBatch(d, cfg, seq, st)
		seq = next
		var body any = envs
		if len(envs) == 1 {
			body = envs[0]
		} else {
			body = struct {
				Readings []envelope.Envelope `json:"readings"`
			}{envs}
		}
		var pause time.Duration
		if b, err := json.Marshal(body); err != nil {
			st.add("", err)
		} else if len(envs) > 0 {
			corr := d.id + "/" + strconv.Itoa(n)
			pause = out.publish(ctx, c, b, corr, len(envs), st)
		}
		if !waitTurn(gen, pause, t) {
			return
		}
	}
}

// mqttOutcomes tells, from PUBACKs and results, what became of the
// simulated readings.
type mqttOutcomes struct {
	mu       sync.Mutex
	accepted map[string]bool      // messages acknowledged, by correlation
	pubacks  map[string]string    // messages refused whole: the error key counted
	refused  map[string][]refusal // refusals in results, by message
}

// refusal is an error result: of one reading, or of a whole message.
type refusal struct {
	code    wire.Code
	reading bool
}

// publish sends one message of n readings and counts it by its PUBACK; it
// returns how long to pause (pushback).
func (o *mqttOutcomes) publish(ctx context.Context, c *device.Device, body []byte, corr string, n int, st *simStats) time.Duration {
	err := c.Publish(ctx, body, []byte(corr))
	st.mu.Lock()
	defer st.mu.Unlock()
	st.Sent += n
	var re *device.RefusedError
	switch {
	case err == nil:
		st.Accepted += n
		o.mu.Lock()
		o.accepted[corr] = true
		o.mu.Unlock()
	case errors.As(err, &re) && re.Code == 0x97:
		st.Pushback += n
		st.Errors[fmt.Sprintf("puback 0x%02x %s", re.Code, re.Reason)] += n
		return time.Second
	case errors.As(err, &re):
		key := fmt.Sprintf("puback 0x%02x %s", re.Code, re.Reason)
		st.Failed += n
		st.Errors[key] += n
		o.mu.Lock()
		o.pubacks[corr] = key
		o.mu.Unlock()
	default:
		st.Failed += n
		st.Errors["transport: "+err.Error()] += n
	}
	return 0
}

func (o *mqttOutcomes) result(r wire.ReadingReceipt, corr []byte) {
	if r.Error == nil {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.refused[string(corr)] = append(o.refused[string(corr)], refusal{r.Error.Code, r.ReadingID != ""})
}

// settle moves the readings refused within acknowledged messages from
// accepted to pushed back (rate limits) or refused, and names the errors
// of messages refused whole by their results' codes rather than their
// PUBACK's.
func (o *mqttOutcomes) settle(st *simStats) {
	o.mu.Lock()
	defer o.mu.Unlock()
	st.mu.Lock()
	defer st.mu.Unlock()
	for corr, rs := range o.refused {
		if key, ok := o.pubacks[corr]; ok {
			for _, r := range rs {
				st.Errors[key]--
				st.Errors["refused: "+string(r.code)]++
			}
			if st.Errors[key] <= 0 {
				delete(st.Errors, key)
			}
			continue
		}
		if !o.accepted[corr] {
			continue
		}
		for _, r := range rs {
			if !r.reading {
				continue
			}
			st.Accepted--
			if r.code == wire.CodeRateLimited || r.code == wire.CodeUnavailable {
				st.Pushback++
			} else {
				st.Failed++
			}
			st.Errors["refused: "+string(r.code)]++
		}
	}
}
