package client_test

import (
	"strings"
	"testing"

	"github.com/medprov/medprov/client"
)

func TestParseMetrics(t *testing.T) {
	text := `# HELP medprov_ingest_queue_depth Readings acknowledged and not yet on the ledger.
# TYPE medprov_ingest_queue_depth gauge
medprov_ingest_queue_depth 12
medprov_readings_committed_total{outcome="recorded"} 3.5e+06
process_cpu_seconds_total 41.25
`
	got, err := client.ParseMetrics(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{
		"medprov_ingest_queue_depth":                           12,
		`medprov_readings_committed_total{outcome="recorded"}`: 3.5e6,
		"process_cpu_seconds_total":                            41.25,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("parsed %d series, want %d: %v", len(got), len(want), got)
	}
	if _, err := client.ParseMetrics(strings.NewReader("x notanumber\n")); err == nil {
		t.Error("a non-numeric value parsed without error")
	}
}
