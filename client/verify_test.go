package client_test

import (
	"bytes"
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
	"github.com/medprov/medprov/payload"
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

// releasedFHIR builds what a gateway would release for a reading dev
// signed as a FHIR Observation (doc, or the heart rate of released when
// doc is nil).
func releasedFHIR(t *testing.T, dev *ecdsa.PrivateKey, doc []byte) (wire.ReleasedReading, wire.Reading) {
	t.Helper()
	if doc == nil {
		p, err := client.NewReading("dev-1", 6, "heart_rate", "bpm", 72, fixedNow)
		require.NoError(t, err)
		doc, err = payload.FHIR(p)
		require.NoError(t, err)
	}
	env, err := envelope.Sign(dev, doc)
	require.NoError(t, err)
	sum := sha256.Sum256(env.Payload)
	r := wire.ReleasedReading{ReadingID: "dev-1:6", Payload: env.Payload, Signature: env.Signature, DataHash: hex.EncodeToString(sum[:]), CID: "bafy"}
	rec := wire.Reading{ID: "dev-1:6", DeviceID: "dev-1", Seq: 6, Type: "heart_rate", Unit: "/min", MeasuredAt: "2026-03-01T12:00:00Z",
		DataHash: r.DataHash, Signature: base64.StdEncoding.EncodeToString(env.Signature), CID: "bafy"}
	return r, rec
}

func TestVerifyReleasedFHIRReading(t *testing.T) {
	dev := testkit.MustKey(t)
	good, _ := releasedFHIR(t, dev, nil)
	tests := []struct {
		name      string
		doc       []byte
		mutate    func(rec *wire.Reading)
		want      error
		failCheck string
	}{
		{name: "a FHIR-signed reading passes every check"},
		{name: "a record in another unit fails the record check", mutate: func(rec *wire.Reading) { rec.Unit = "bpm" },
			want: client.ErrPayloadMismatch, failCheck: client.CheckRecord},
		{name: "an Observation with an element medprov does not take fails the payload check",
			doc:  bytes.Replace(good.Payload, []byte(`"status":"final"`), []byte(`"status":"final","note":[{"text":"x"}]`), 1),
			want: client.ErrPayloadMismatch, failCheck: client.CheckPayload},
		{name: "an Observation whose unit does not fit its code fails the payload check",
			doc:  bytes.Replace(good.Payload, []byte(`"code":"/min"`), []byte(`"code":"kg"`), 1),
			want: client.ErrPayloadMismatch, failCheck: client.CheckPayload},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, rec := releasedFHIR(t, dev, tt.doc)
			if tt.mutate != nil {
				tt.mutate(&rec)
			}
			v, err := client.VerifyReleasedReading(r, &dev.PublicKey, &rec)
			if tt.want == nil {
				require.NoError(t, err, "checks %+v", v.Checks)
				assert.True(t, v.OK)
				return
			}
			assert.ErrorIs(t, err, tt.want)
			for _, c := range v.Checks {
				if c.Name == tt.failCheck {
					assert.False(t, c.OK, "check %s passed", c.Name)
				}
			}
		})
	}
}
