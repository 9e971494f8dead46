package loadgen

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseCounters(t *testing.T) {
	tests := []struct {
		name    string
		text    string
		want    gatewayCounters
		wantErr bool
	}{
		{
			name: "counters and queue depth are read from Prometheus text",
			text: `# HELP medprov_readings_committed_total Queued readings finished by the ledger, by outcome.
# TYPE medprov_readings_committed_total counter
medprov_readings_committed_total{outcome="recorded"} 1.2345e+06
medprov_readings_committed_total{outcome="rejected"} 7
medprov_readings_ingested_total 1234600
medprov_ingest_queue_depth 93
medprov_batch_size_bucket{le="100"} 4
process_cpu_seconds_total 12.5
`,
			want: gatewayCounters{recorded: 1234500, rejected: 7, ingested: 1234600, depth: 93, cpuSeconds: 12.5},
		},
		{
			name: "a gateway that finished no reading yet reads as zero",
			text: "medprov_ingest_queue_depth 0\n",
			want: gatewayCounters{},
		},
		{
			name:    "an endpoint without the queue depth is refused",
			text:    "go_goroutines 12\n",
			wantErr: true,
		},
		{
			name:    "a malformed value is refused",
			text:    "medprov_ingest_queue_depth twelve\n",
			wantErr: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseCounters(strings.NewReader(tt.text))
			if tt.wantErr {
				require.Error(t, err)
			} else {
				require.NoError(t, err)
			}
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestPercentileMs(t *testing.T) {
	ms := func(n ...int) []time.Duration {
		var out []time.Duration
		for _, v := range n {
			out = append(out, time.Duration(v)*time.Millisecond)
		}
		return out
	}
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(100-i) * time.Millisecond // descending: must be sorted first
	}
	tests := []struct {
		name string
		ds   []time.Duration
		q    float64
		want float64
	}{
		{"no samples give zero", nil, 0.99, 0},
		{"one sample is every percentile", ms(7), 0.5, 7},
		{"p50 of 1..100 is 50 (nearest rank)", hundred, 0.50, 50},
		{"p99 of 1..100 is 99", hundred, 0.99, 99},
		{"p100 is the maximum", hundred, 1, 100},
		{"p95 of four samples is the largest", ms(1, 2, 3, 4), 0.95, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, percentileMs(tt.ds, tt.q))
		})
	}
}

func TestSampled(t *testing.T) {
	tests := []struct {
		name string
		frac float64
		n    int
		want int
	}{
		{"zero samples nothing", 0, 1000, 0},
		{"2% of 1000 requests is 20", 0.02, 1000, 20},
		{"a third of 300 is 100", 1.0 / 3, 300, 100},
		{"one samples everything", 1, 50, 50},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := 0
			for i := range tt.n {
				if sampled(i, tt.frac) {
					got++
				}
			}
			assert.Equal(t, tt.want, got, "requests sampled")
		})
	}
}

func TestCheckLoopback(t *testing.T) {
	tests := []struct {
		name string
		url  string
		ok   bool
	}{
		{"the IPv4 loopback address is accepted", "http://127.0.0.1:8080", true},
		{"any address in 127.0.0.0/8 is accepted", "http://127.3.2.1:8080", true},
		{"the IPv6 loopback address is accepted", "http://[::1]:8080", true},
		{"localhost is accepted", "http://localhost:8080", true},
		{"a private network address is refused", "http://10.0.0.5:8080", false},
		{"a public host name is refused", "https://gateway.example.org", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := url.Parse(tt.url)
			require.NoError(t, err)
			err = checkLoopback(u)
			if tt.ok {
				require.NoError(t, err, "checkLoopback(%s)", tt.url)
			} else {
				require.ErrorIs(t, err, ErrNotLoopback, "checkLoopback(%s)", tt.url)
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want int
	}{
		{"an unpaced run signs duration x presign rate + 5%", Config{Duration: 10 * time.Second, PresignRate: 1000, Batch: 100}, 10500},
		{"a paced run signs duration x rate + 5%, in whole requests", Config{Duration: 3 * time.Second, Rate: 333, Batch: 100}, 1100},
		{"an explicit count is kept, rounded up to whole requests", Config{Readings: 250, Batch: 100}, 300},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.cfg.withDefaults().Readings, "Readings")
		})
	}
}
