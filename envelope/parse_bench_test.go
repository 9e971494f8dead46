package envelope_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/medprov/medprov/envelope"
	"github.com/medprov/medprov/internal/testkit"
)

func BenchmarkParse(b *testing.B) {
	payload := []byte(`{"deviceId":"monitor-7","seq":1042,"type":"heart_rate","unit":"bpm","value":72,"measuredAt":"2026-12-01T10:00:00.123Z","nonce":"q83vEjRWeJq83vEjRWeJqw=="}`)
	data, err := json.Marshal(testkit.MustSign(b, testkit.MustKey(b), payload))
	require.NoError(b, err)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		_, err := envelope.Parse(data)
		require.NoError(b, err)
	}
}
