package client_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/medprov/medprov/client"
	"github.com/medprov/medprov/internal/testkit"
)

// BenchmarkNewSignedReading measures what a device spends per reading:
// building the payload (with a fresh nonce) and signing it.
func BenchmarkNewSignedReading(b *testing.B) {
	key := testkit.MustKey(b)
	var size int
	for i := range b.N {
		p, err := client.NewReading("dev-1", uint64(i), "heart_rate", "bpm", 72, fixedNow)
		require.NoError(b, err)
		env, err := client.SignReading(key, p)
		require.NoError(b, err)
		size = len(env.Payload)
	}
	b.ReportMetric(float64(size), "payload-bytes")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "readings/s")
}
