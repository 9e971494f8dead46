package payload_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/medprov/medprov/payload"
	"github.com/medprov/medprov/wire"
)

// FuzzParse: no input makes Parse panic, and whatever it accepts it reads
// the same way twice, in the form the bytes announce, with fields the
// rest of medprov accepts.
func FuzzParse(f *testing.F) {
	medprov := `{"deviceId":"m-7","seq":3,"type":"heart_rate","unit":"bpm","value":72,"measuredAt":"2026-12-01T10:00:00Z","nonce":"AAAAAAAAAAAAAAAAAAAAAA=="}`
	f.Add([]byte(medprov))
	fhir, err := payload.FHIR(wire.ReadingPayload{DeviceID: "m-7", Seq: 3, Type: "heart_rate", Unit: "/min", Value: []byte("72"),
		MeasuredAt: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC).Format(time.RFC3339), Nonce: "AAAAAAAAAAAAAAAAAAAAAA=="})
	require.NoError(f, err)
	f.Add(fhir)
	f.Add([]byte(`{"resourceType":"Observation"}`))
	f.Add([]byte(`{"resourceType":"Observation","resourceType":"Patient"}`))
	f.Add([]byte("\xff"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := payload.Parse(b)
		if err != nil {
			return
		}
		again, err := payload.Parse(b)
		require.NoError(t, err, "parsed once, then refused")
		assert.Equal(t, r, again)
		assert.True(t, wire.ValidID(r.DeviceID), "device id %q", r.DeviceID)
		assert.False(t, r.Measured.IsZero(), "measuredAt parsed")
	})
}
