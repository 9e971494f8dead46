package client_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/medprov/medprov/client"
)

func TestParseMetrics(t *testing.T) {
	t.Run("every sample line is a series, labels included", func(t *testing.T) {
		text := `# HELP medprov_ingest_queue_depth Readings acknowledged and not yet on the ledger.
# TYPE medprov_ingest_queue_depth gauge
medprov_ingest_queue_depth 12
medprov_readings_committed_total{outcome="recorded"} 3.5e+06
process_cpu_seconds_total 41.25
`
		got, err := client.ParseMetrics(strings.NewReader(text))
		require.NoError(t, err)
		want := map[string]float64{
			"medprov_ingest_queue_depth":                           12,
			`medprov_readings_committed_total{outcome="recorded"}`: 3.5e6,
			"process_cpu_seconds_total":                            41.25,
		}
		for k, v := range want {
			assert.Equal(t, v, got[k], k)
		}
		assert.Len(t, got, len(want), "parsed series")
	})
	t.Run("a non-numeric value is refused", func(t *testing.T) {
		_, err := client.ParseMetrics(strings.NewReader("x notanumber\n"))
		assert.Error(t, err, "a non-numeric value parsed without error")
	})
}
