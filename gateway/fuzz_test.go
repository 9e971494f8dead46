package gateway_test

import (
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/medprov/medprov/wire"
)

// FuzzPostReading throws arbitrary bodies at device ingest, seeded with a
// valid signed reading of a registered device: whatever arrives, the
// answer is a JSON error or an acknowledgement, never a 500 or a panic.
func FuzzPostReading(f *testing.F) {
	s := newServer(f)
	dk := withDevice(f, s)
	f.Add([]byte(signedReading(f, dk, "dev", 1)), false)
	f.Add([]byte(signedReading(f, dk, "dev", 2)), true)
	f.Add([]byte(`{"payload":"e30=","signature":"MEUCIQ=="}`), false)
	f.Add([]byte(`{"readings":[{"payload":"e30=","signature":"AA=="}]}`), true)
	f.Add([]byte(`null`), false)
	f.Fuzz(func(t *testing.T, body []byte, batch bool) {
		path := "/v1/readings"
		if batch {
			path = "/v1/readings/batch"
		}
		checkResponse(t, post(t, s, path, body, nil))
	})
}

// FuzzSignedActions fuzzes every signed-envelope route.
func FuzzSignedActions(f *testing.F) {
	s := newServer(f)
	withDevice(f, s)
	routes := []string{"/v1/devices", "/v1/devices/dev/revoke", "/v1/consents", "/v1/consents/c1/revoke", "/v1/access", "/v1/actors"}
	for i := range routes {
		f.Add(uint8(i), []byte(`{"payload":"eyJhY3Rpb24iOiJjb25zZW50LmdyYW50In0=","signature":"AA=="}`))
		f.Add(uint8(i), []byte(`{"id":"x","role":"patient","publicKey":"-----BEGIN PUBLIC KEY-----\n"}`))
	}
	f.Fuzz(func(t *testing.T, route uint8, body []byte) {
		hdr := map[string]string{"Authorization": "Bearer " + adminToken}
		checkResponse(t, post(t, s, routes[int(route)%len(routes)], body, hdr))
	})
}

// FuzzSignedGET fuzzes the signature header and query of signed GETs.
func FuzzSignedGET(f *testing.F) {
	s := newServer(f)
	withDevice(f, s)
	f.Add("/v1/audit/events?type=x&from=2026-01-01T00:00:00Z", base64.StdEncoding.EncodeToString([]byte(`{"payload":"e30=","signature":"AA=="}`)))
	f.Add("/v1/patients/pat/access-log?pageSize=0", "")
	f.Add("/v1/readings/dev:1/provenance", "%%%")
	f.Fuzz(func(t *testing.T, path, sig string) {
		// The API's signed GETs: the portal's pages answer HTML and the
		// FHIR routes OperationOutcomes (FuzzFHIR covers those).
		if !strings.HasPrefix(path, "/v1/") || strings.ContainsAny(path, " \r\n\t#") {
			return
		}
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://gw"+path, nil)
		if err != nil {
			return
		}
		if sig != "" && !strings.ContainsAny(sig, "\r\n\x00") {
			req.Header.Set(wire.SignatureHeader, sig)
		}
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, req)
		checkResponse(t, rec)
	})
}
