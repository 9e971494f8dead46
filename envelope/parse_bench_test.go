package envelope_test

import (
	"encoding/json"
	"testing"

	"github.com/medprov/medprov/envelope"
	"github.com/medprov/medprov/internal/testkit"
)

func BenchmarkParse(b *testing.B) {
	payload := []byte(`{"deviceId":"monitor-7","seq":1042,"type":"heart_rate","unit":"bpm","value":72,"measuredAt":"2026-12-01T10:00:00.123Z","nonce":"q83vEjRWeJq83vEjRWeJqw=="}`)
	data, err := json.Marshal(testkit.MustSign(b, testkit.MustKey(b), payload))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := envelope.Parse(data); err != nil {
			b.Fatal(err)
		}
	}
}
