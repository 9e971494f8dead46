package client_test

import (
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/medprov/medprov/client"
	"github.com/medprov/medprov/envelope"
	"github.com/medprov/medprov/internal/testkit"
	"github.com/medprov/medprov/wire"
)

// released builds what a gateway would release for a reading signed by dev.
func released(t *testing.T, dev *ecdsa.PrivateKey, seq uint64) (wire.ReleasedReading, wire.Reading) {
	t.Helper()
	p, err := client.NewReading("dev-1", seq, "heart_rate", "bpm", 72, fixedNow)
	require.NoError(t, err)
	env, err := client.SignReading(dev, p)
	require.NoError(t, err)
	sum := sha256.Sum256(env.Payload)
	r := wire.ReleasedReading{ReadingID: p.ReadingID(), Payload: env.Payload, Signature: env.Signature, DataHash: hex.EncodeToString(sum[:]), CID: "bafy"}
	rec := wire.Reading{ID: p.ReadingID(), DeviceID: "dev-1", Seq: seq, Type: "heart_rate", Unit: "bpm", MeasuredAt: "2026-03-01T12:00:00.000Z", DataHash: r.DataHash, Signature: base64.StdEncoding.EncodeToString(env.Signature), CID: "bafy"}
	return r, rec
}

func TestVerifyReleasedReading(t *testing.T) {
	dev := testkit.MustKey(t)
	other := testkit.MustKey(t)
	tests := []struct {
		name      string
		mutate    func(r *wire.ReleasedReading, rec *wire.Reading)
		key       *ecdsa.PublicKey
		withRec   bool
		want      error
		failCheck string
	}{
		{name: "an untouched reading passes every check", key: &dev.PublicKey, withRec: true},
		{name: "an untouched reading passes without a record", key: &dev.PublicKey},
		{
			name: "a changed payload fails the hash",
			mutate: func(r *wire.ReleasedReading, _ *wire.Reading) {
				r.Payload = append([]byte(nil), r.Payload...)
				r.Payload[len(r.Payload)-3] ^= 1
			},
			key: &dev.PublicKey, want: client.ErrHashMismatch, failCheck: client.CheckHash,
		},
		{
			name: "another device's key fails the signature",
			key:  &other.PublicKey, want: envelope.ErrBadSignature, failCheck: client.CheckSignature,
		},
		{
			name: "no device key fails the signature",
			want: envelope.ErrBadSignature, failCheck: client.CheckSignature,
		},
		{
			name:   "a reading released under another id fails the payload",
			mutate: func(r *wire.ReleasedReading, _ *wire.Reading) { r.ReadingID = "dev-1:99" },
			key:    &dev.PublicKey, want: client.ErrPayloadMismatch, failCheck: client.CheckPayload,
		},
		{
			name:   "a record of another type fails the record check",
			mutate: func(_ *wire.ReleasedReading, rec *wire.Reading) { rec.Type = "spo2" },
			key:    &dev.PublicKey, withRec: true, want: client.ErrPayloadMismatch, failCheck: client.CheckRecord,
		},
		{
			name:   "a record with another signature fails the record check",
			mutate: func(_ *wire.ReleasedReading, rec *wire.Reading) { rec.Signature = "AAAA" },
			key:    &dev.PublicKey, withRec: true, want: client.ErrPayloadMismatch, failCheck: client.CheckRecord,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, rec := released(t, dev, 5)
			if tt.mutate != nil {
				tt.mutate(&r, &rec)
			}
			var recp *wire.Reading
			if tt.withRec {
				recp = &rec
			}
			v, err := client.VerifyReleasedReading(r, tt.key, recp)
			if tt.want == nil {
				require.NoError(t, err, "checks %+v", v.Checks)
				require.True(t, v.OK, "checks %+v", v.Checks)
				return
			}
			assert.ErrorIs(t, err, tt.want)
			assert.False(t, v.OK, "verification OK despite a failed check")
			for _, c := range v.Checks {
				if c.Name == tt.failCheck {
					assert.False(t, c.OK, "check %s passed", c.Name)
				}
			}
		})
	}
}
