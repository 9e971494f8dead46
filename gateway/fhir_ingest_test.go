package gateway_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/medprov/medprov/client"
	"github.com/medprov/medprov/envelope"
	"github.com/medprov/medprov/fhir"
	"github.com/medprov/medprov/internal/testkit"
	readingpayload "github.com/medprov/medprov/payload"
	"github.com/medprov/medprov/wire"
)

// fhirSigned returns a heart rate reading of w's device signed as a FHIR
// Observation: the exact signed bytes and the envelope JSON to post.
func (w *fhirWorld) fhirSigned(t *testing.T, dk *ecdsa.PrivateKey, seq uint64, value string) ([]byte, []byte) {
	t.Helper()
	nonce, err := client.NewNonce()
	require.NoError(t, err)
	b, err := readingpayload.FHIR(wire.ReadingPayload{DeviceID: w.device, Seq: seq, Type: "heart_rate", Unit: "bpm",
		Value: json.RawMessage(value), MeasuredAt: time.Now().Add(-30 * time.Second).UTC().Format(time.RFC3339), Nonce: nonce})
	require.NoError(t, err)
	env, err := envelope.Sign(dk, b)
	require.NoError(t, err)
	return b, testkit.MustJSON(t, env)
}

// postFHIR posts body to the FHIR Observation route and checks that the
// answer is FHIR, kept for validation.
func (w *fhirWorld) postFHIR(t *testing.T, path string, body []byte, want int) (*httptest.ResponseRecorder, outcome) {
	t.Helper()
	rec := post(t, w.s, path, body, nil)
	require.Equal(t, want, rec.Code, "POST %s: %s", path, rec.Body)
	assert.Equal(t, fhir.MediaType, rec.Header().Get("Content-Type"), "POST %s: media type", path)
	w.v.Add(t, "POST "+path, rec.Body.Bytes())
	var oo outcome
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &oo), "POST %s: body", path)
	assert.Equal(t, "OperationOutcome", oo.ResourceType)
	return rec, oo
}

func TestFHIRIngest(t *testing.T) {
	w := newFHIRWorld(t)
	signed, body := w.fhirSigned(t, w.dk, 10, "64")
	sum := sha256.Sum256(signed)
	hash := hex.EncodeToString(sum[:])
	id := w.device + ":10"

	t.Run("a FHIR-signed reading is queued, then recorded over the hash of the signed bytes", func(t *testing.T) {
		_, oo := w.postFHIR(t, "/fhir/R4/Observation", body, http.StatusAccepted)
		assert.Equal(t, [2]string{wire.StatusQueued, id}, [2]string{oo.coded("urn:medprov:reading-status"), oo.coded("urn:medprov:reading")})
		var prov wire.ProvenanceReport
		eventually(t, "the reading recorded", func() bool {
			rec := w.pat.get(t, w.s, "/v1/readings/"+id+"/provenance")
			return rec.Code == http.StatusOK && json.Unmarshal(rec.Body.Bytes(), &prov) == nil
		})
		got := prov.Reading
		assert.Equal(t, [5]string{hash, "heart_rate", "/min", w.device, "fpat"},
			[5]string{got.DataHash, got.Type, got.Unit, got.DeviceID, got.PatientID}, "the ledger's dataHash is SHA-256 of the signed FHIR bytes")
	})

	t.Run("a replay is the same reading, as in v1", func(t *testing.T) {
		_, oo := w.postFHIR(t, "/fhir/R4/Observation", body, http.StatusOK)
		assert.Equal(t, id, oo.coded("urn:medprov:reading"))
		assert.Contains(t, []string{wire.StatusQueued, wire.StatusExists, wire.StatusRecorded}, oo.coded("urn:medprov:reading-status"),
			"the reading's state as the ingest queue knows it")
	})

	t.Run("v1 and MQTT take the medprov reading JSON only: their contract's payload", func(t *testing.T) {
		rec := post(t, w.s, "/v1/readings", body, nil)
		assert.Equal(t, http.StatusBadRequest, rec.Code, "%s", rec.Body)
		assert.Contains(t, rec.Body.String(), "medprov form")
	})

	t.Run("?wait=commit answers 201 Created with the Observation's Location", func(t *testing.T) {
		signed11, body11 := w.fhirSigned(t, w.dk, 11, "65.5")
		rec, oo := w.postFHIR(t, "/fhir/R4/Observation?wait=commit", body11, http.StatusCreated)
		sum := sha256.Sum256(signed11)
		assert.Equal(t, "http://example.com/fhir/R4/Observation/"+hex.EncodeToString(sum[:]), rec.Header().Get("Location"))
		assert.Equal(t, wire.StatusRecorded, oo.coded("urn:medprov:reading-status"))
		assert.NotEmpty(t, oo.coded("urn:medprov:tx"), "the recording transaction")
	})

	t.Run("a granted researcher receives the exact FHIR bytes, which verify", func(t *testing.T) {
		var g wire.AccessGrant
		mustStatus(t, post(t, w.s, "/v1/access", w.researcher.access(t, "fpat", "heart_rate"), nil), http.StatusOK, &g)
		var rr *wire.ReleasedReading
		for i := range g.Readings {
			if g.Readings[i].ReadingID == id {
				rr = &g.Readings[i]
			}
		}
		require.NotNil(t, rr, "the FHIR-signed reading is released")
		assert.Equal(t, signed, rr.Payload, "the exact signed bytes")
		var prov wire.ProvenanceReport
		mustStatus(t, w.pat.get(t, w.s, "/v1/readings/"+id+"/provenance"), http.StatusOK, &prov)
		v, err := client.VerifyReleasedReading(*rr, &w.dk.PublicKey, &prov.Reading)
		require.NoError(t, err)
		assert.True(t, v.OK)

		var audit wire.Verification
		mustStatus(t, w.regul.get(t, w.s, "/v1/audit/verify/"+id), http.StatusOK, &audit)
		for _, c := range audit.Checks {
			if c.Name != "chain_integrity" { // not this test's
				assert.True(t, c.OK, "audit check %s: %s", c.Name, c.Detail)
			}
		}
	})

	t.Run("the Observation reads back as it was signed", func(t *testing.T) {
		var o struct {
			ID            string `json:"id"`
			ValueQuantity struct {
				Value      json.Number `json:"value"`
				Unit, Code string
				System     string
			} `json:"valueQuantity"`
			Code struct {
				Coding []struct{ System, Code string }
			} `json:"code"`
		}
		w.get(t, w.researcher, "/fhir/R4/Observation/"+hash+"?purpose=study", http.StatusOK, &o)
		assert.Equal(t, hash, o.ID)
		assert.Equal(t, [4]string{"64", "bpm", "/min", "http://unitsofmeasure.org"},
			[4]string{o.ValueQuantity.Value.String(), o.ValueQuantity.Unit, o.ValueQuantity.Code, o.ValueQuantity.System})
		require.NotEmpty(t, o.Code.Coding)
		assert.Equal(t, "8867-4", o.Code.Coding[0].Code)
	})

	t.Run("refusals answer OperationOutcomes with v1's statuses", func(t *testing.T) {
		tampered := bytes.Replace(signed, []byte(`"value":64`), []byte(`"value":99`), 1)
		require.NotEqual(t, signed, tampered)
		var env envelope.Envelope
		require.NoError(t, json.Unmarshal(body, &env))
		env.Payload = tampered
		v1p, err := client.NewReading(w.device, 12, "heart_rate", "bpm", 70, time.Now().Add(-time.Second))
		require.NoError(t, err)
		v1env, err := client.SignReading(w.dk, v1p)
		require.NoError(t, err)
		_, other := w.fhirSigned(t, testkit.MustKey(t), 13, "70")
		badFHIR, err := envelope.Sign(w.dk, bytes.Replace(signed, []byte(`"status":"final"`), []byte(`"status":"final","subject":{"reference":"Patient/x"}`), 1))
		require.NoError(t, err)
		tests := []struct {
			name   string
			method string
			path   string
			body   []byte
			want   int
		}{
			{"tampered bytes are refused as a bad signature", http.MethodPost, "/fhir/R4/Observation", testkit.MustJSON(t, env), http.StatusUnauthorized},
			{"another key's signature is refused", http.MethodPost, "/fhir/R4/Observation", other, http.StatusUnauthorized},
			{"a medprov reading JSON is refused here", http.MethodPost, "/fhir/R4/Observation", testkit.MustJSON(t, v1env), http.StatusBadRequest},
			{"an Observation with an element medprov does not take is refused", http.MethodPost, "/fhir/R4/Observation", testkit.MustJSON(t, badFHIR), http.StatusBadRequest},
			{"a bare Observation, not an envelope, is refused", http.MethodPost, "/fhir/R4/Observation", signed, http.StatusBadRequest},
			{"a batch is refused", http.MethodPost, "/fhir/R4/Observation", []byte(`{"readings":[` + string(body) + `]}`), http.StatusBadRequest},
			{"a body over the reading limit is refused", http.MethodPost, "/fhir/R4/Observation", bytes.Repeat([]byte(" "), 64<<10+1), http.StatusRequestEntityTooLarge},
			{"other types cannot be created", http.MethodPost, "/fhir/R4/Consent", body, http.StatusMethodNotAllowed},
			{"an Observation cannot be updated", http.MethodPut, "/fhir/R4/Observation/" + hash, body, http.StatusMethodNotAllowed},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				req := httptest.NewRequestWithContext(t.Context(), tt.method, tt.path, bytes.NewReader(tt.body))
				rec := httptest.NewRecorder()
				w.s.Handler().ServeHTTP(rec, req)
				require.Equal(t, tt.want, rec.Code, "%s %s: %s", tt.method, tt.path, rec.Body)
				assert.Equal(t, fhir.MediaType, rec.Header().Get("Content-Type"))
				w.v.Add(t, tt.name, rec.Body.Bytes())
				var oo outcome
				require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &oo))
				assert.Equal(t, "OperationOutcome", oo.ResourceType)
			})
		}
	})

}
