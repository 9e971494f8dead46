package wire_test

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/medprov/medprov/wire"
)

// benchReading is a reading payload as a device sends it.
const benchReading = `{"deviceId":"monitor-7","seq":1042,"type":"heart_rate","unit":"bpm","value":72,"measuredAt":"2026-12-01T10:00:00.123Z","nonce":"q83vEjRWeJq83vEjRWeJqw=="}`

// benchGrant is a consent.grant payload as a patient signs it.
const benchGrant = `{"action":"consent.grant","actorId":"pat-1","issuedAt":"2026-12-01T10:00:00Z","nonce":"3f2b8c1e6a4d4e8f9b0a1c2d3e4f5a6b","granteeId":"res-1","purpose":"study.cardio","dataTypes":["heart_rate","spo2"],"notBefore":"2026-12-01T00:00:00Z","notAfter":"2027-12-01T00:00:00Z"}`

func BenchmarkDecodeStrictReading(b *testing.B) {
	data := []byte(benchReading)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		var p wire.ReadingPayload
		err := wire.DecodeStrict(data, &p)
		require.NoError(b, err)
	}
}

func BenchmarkDecodeStrictAction(b *testing.B) {
	data := []byte(benchGrant)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		var p wire.ConsentGrantAction
		err := wire.DecodeStrict(data, &p)
		require.NoError(b, err)
	}
}

// BenchmarkDecodeStrictBatch decodes a batch request body of 100 signed
// reading envelopes, as the gateway does per POST /v1/readings/batch.
func BenchmarkDecodeStrictBatch(b *testing.B) {
	env := `{"payload":"` + base64.StdEncoding.EncodeToString([]byte(benchReading)) + `","signature":"MEUCIQDx6b3Jq1b2n7nE4m7m2b1l3wQ4Ykq0n3y8o9vV8r4sQwIgH3Zr1uW2pQ9c8n0X5y7m6l4k3j2h1g0f9e8d7c6b5a4="}`
	data := []byte(`{"readings":[` + strings.Repeat(env+",", 99) + env + `]}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		var req wire.BatchRequest
		err := wire.DecodeStrict(data, &req)
		require.NoError(b, err)
	}
}

// BenchmarkUnmarshalReading is the reference: encoding/json alone, which
// reads duplicates and case-folded names (see
// TestEncodingJSONReadsAttacksDifferently).
func BenchmarkUnmarshalReading(b *testing.B) {
	data := []byte(benchReading)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		var p wire.ReadingPayload
		err := json.Unmarshal(data, &p)
		require.NoError(b, err)
	}
}
