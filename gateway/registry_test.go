package gateway_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/medprov/medprov/client"
	"github.com/medprov/medprov/internal/apispec"
	"github.com/medprov/medprov/wire"
)

// TestRegistryRoutes checks who may read the device and actor registries:
// every exchange is also checked against openapi.yaml.
func TestRegistryRoutes(t *testing.T) {
	s := newServer(t)
	h := apispec.NewHandler(t, s.Handler(), apispec.AllowRefused())
	reg := newActor(t, s, "reg", wire.RoleRegulator)
	op1, op2 := newActor(t, s, "op-1", wire.RoleOperator), newActor(t, s, "op-2", wire.RoleOperator)
	pat1, pat2 := newActor(t, s, "pat-1", wire.RolePatient), newActor(t, s, "pat-2", wire.RolePatient)
	res := newActor(t, s, "res", wire.RoleResearcher)
	dk := lcDevice(t, s, op1, "dev-a", pat1.id)
	lcDevice(t, s, op1, "dev-b", pat2.id)
	lcDevice(t, s, op2, "dev-c", pat2.id)
	var readings []string
	for seq := uint64(1); seq <= 3; seq++ {
		readings = append(readings, lcReading(t, s, dk, "dev-a", seq, "heart_rate"))
	}

	get := func(t *testing.T, p *actorParty, path string) *httptest.ResponseRecorder {
		t.Helper()
		hdr, err := client.SignedGetHeader(p.key, p.id, path, time.Now())
		require.NoError(t, err)
		req := httptest.NewRequestWithContext(t.Context(), http.MethodGet, path, nil)
		req.Header.Set(wire.SignatureHeader, hdr)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}

	t.Run("listing devices", func(t *testing.T) {
		tests := []struct {
			name  string
			by    *actorParty
			query url.Values
			want  int
			ids   []string
		}{
			{"a regulator lists every device", reg, nil, http.StatusOK, []string{"dev-a", "dev-b", "dev-c"}},
			{"a regulator filters by operator", reg, url.Values{"operator": {op2.id}}, http.StatusOK, []string{"dev-c"}},
			{"a regulator filters by patient", reg, url.Values{"patient": {pat2.id}}, http.StatusOK, []string{"dev-b", "dev-c"}},
			{"an operator lists its own devices by default", op1, nil, http.StatusOK, []string{"dev-a", "dev-b"}},
			{"an operator narrows its own devices to a patient", op1, url.Values{"operator": {op1.id}, "patient": {pat2.id}}, http.StatusOK, []string{"dev-b"}},
			{"an operator cannot list another operator's devices", op1, url.Values{"operator": {op2.id}}, http.StatusForbidden, nil},
			{"a patient lists its own devices by default", pat2, nil, http.StatusOK, []string{"dev-b", "dev-c"}},
			{"a patient narrows its own devices to an operator", pat2, url.Values{"operator": {op2.id}}, http.StatusOK, []string{"dev-c"}},
			{"a patient cannot list another patient's devices", pat2, url.Values{"patient": {pat1.id}}, http.StatusForbidden, nil},
			{"a researcher cannot list devices", res, nil, http.StatusForbidden, nil},
			{"a researcher cannot list devices with a filter", res, url.Values{"patient": {pat1.id}}, http.StatusForbidden, nil},
			{"a malformed operator id is a bad request", reg, url.Values{"operator": {"no such/operator"}}, http.StatusBadRequest, nil},
			{"a page size of 0 is a bad request", reg, url.Values{"pageSize": {"0"}}, http.StatusBadRequest, nil},
			{"a forged bookmark is a bad request", reg, url.Values{"bookmark": {"AGFjdG9yAHBhdC0xAA"}}, http.StatusBadRequest, nil},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				path := "/v1/devices"
				if len(tt.query) > 0 {
					path += "?" + tt.query.Encode()
				}
				var page wire.DevicePage
				mustStatus(t, get(t, tt.by, path), tt.want, &page)
				if tt.want != http.StatusOK {
					return
				}
				var got []string
				for _, d := range page.Items {
					got = append(got, d.ID)
				}
				assert.Equal(t, tt.ids, got, "devices")
				assert.Equal(t, len(tt.ids), page.Count, "count")
				assert.Empty(t, page.Bookmark, "one page holds them all")
			})
		}
	})

	t.Run("listing devices page by page", func(t *testing.T) {
		var got []string
		bookmark := ""
		for range 5 {
			q := url.Values{"pageSize": {"1"}}
			if bookmark != "" {
				q.Set("bookmark", bookmark)
			}
			var page wire.DevicePage
			mustStatus(t, get(t, reg, "/v1/devices?"+q.Encode()), http.StatusOK, &page)
			for _, d := range page.Items {
				got = append(got, d.ID)
			}
			if bookmark = page.Bookmark; bookmark == "" {
				break
			}
		}
		assert.Equal(t, []string{"dev-a", "dev-b", "dev-c"}, got, "devices over every page")
	})

	t.Run("reading one device", func(t *testing.T) {
		var missing wire.ErrorResponse
		mustStatus(t, get(t, reg, "/v1/devices/no-such-device"), http.StatusNotFound, &missing)
		tests := []struct {
			name string
			by   *actorParty
			id   string
			want int
		}{
			{"a regulator reads any device", reg, "dev-a", http.StatusOK},
			{"the device's operator reads it", op1, "dev-a", http.StatusOK},
			{"the device's patient reads it", pat1, "dev-a", http.StatusOK},
			{"another operator gets not found", op2, "dev-a", http.StatusNotFound},
			{"another patient gets not found", pat2, "dev-a", http.StatusNotFound},
			{"a researcher gets not found", res, "dev-a", http.StatusNotFound},
			{"a missing device is not found", op1, "no-such-device", http.StatusNotFound},
			{"a malformed device id is a bad request", reg, "bad%20id", http.StatusBadRequest},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				rec := get(t, tt.by, "/v1/devices/"+tt.id)
				if tt.want == http.StatusNotFound {
					var body wire.ErrorResponse
					mustStatus(t, rec, tt.want, &body)
					assert.Equal(t, missing, body, "not yours answers exactly as does not exist")
					return
				}
				var got wire.DeviceDetail
				mustStatus(t, rec, tt.want, &got)
				if tt.want != http.StatusOK {
					return
				}
				assert.Equal(t, [3]string{"dev-a", op1.id, pat1.id}, [3]string{got.Device.ID, got.Device.OperatorID, got.Device.PatientID}, "device")
				assert.Equal(t, [2]any{3, false}, [2]any{got.Stats.Readings, got.Stats.ReadingsCapped}, "readings and capped")
				if assert.NotNil(t, got.Stats.LastReading, "last reading") {
					assert.Equal(t, readings[2], got.Stats.LastReading.ReadingID, "last reading id")
					assert.Equal(t, uint64(3), got.Stats.LastReading.Seq, "last seq")
					assert.NotEmpty(t, got.Stats.LastReading.TxID, "last reading's transaction")
				}
			})
		}
		t.Run("a device without readings has no last reading", func(t *testing.T) {
			var got wire.DeviceDetail
			mustStatus(t, get(t, op1, "/v1/devices/dev-b"), http.StatusOK, &got)
			assert.Equal(t, wire.DeviceStats{DeviceID: "dev-b"}, got.Stats)
		})
	})

	t.Run("listing actors", func(t *testing.T) {
		tests := []struct {
			name string
			by   *actorParty
			role string
			want int
			ids  []string
		}{
			{"a regulator lists every actor", reg, "", http.StatusOK, []string{"op-1", "op-2", "pat-1", "pat-2", "reg", "res"}},
			{"a regulator lists the patients", reg, wire.RolePatient, http.StatusOK, []string{"pat-1", "pat-2"}},
			{"an unknown role is a bad request", reg, "surgeon", http.StatusBadRequest, nil},
			{"an operator cannot list actors", op1, "", http.StatusForbidden, nil},
			{"a patient cannot list actors", pat1, "", http.StatusForbidden, nil},
			{"a researcher cannot list actors", res, wire.RoleResearcher, http.StatusForbidden, nil},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				path := "/v1/actors"
				if tt.role != "" {
					path += "?role=" + tt.role
				}
				var page wire.ActorPage
				mustStatus(t, get(t, tt.by, path), tt.want, &page)
				if tt.want != http.StatusOK {
					return
				}
				var got []string
				for _, a := range page.Items {
					got = append(got, a.ID)
				}
				assert.Equal(t, tt.ids, got, "actors")
			})
		}
	})

	t.Run("unsigned registry reads are unauthenticated", func(t *testing.T) {
		for _, path := range []string{"/v1/devices", "/v1/devices/dev-a", "/v1/actors"} {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequestWithContext(t.Context(), http.MethodGet, path, nil))
			mustStatus(t, rec, http.StatusUnauthorized, nil)
		}
	})
}

// TestPatientSelfAccess checks that POST /v1/access releases a patient's
// own readings as it releases a researcher's, with no consent, and logs it.
func TestPatientSelfAccess(t *testing.T) {
	s := newServer(t)
	h := apispec.NewHandler(t, s.Handler(), apispec.AllowRefused())
	w := newErasureWorld(t, s, "self")
	other := newActor(t, s, "pat-other", wire.RolePatient)
	postAccess := func(t *testing.T, body []byte) *httptest.ResponseRecorder {
		t.Helper()
		req := httptest.NewRequestWithContext(t.Context(), http.MethodPost, "/v1/access", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}

	var grant wire.AccessGrant
	mustStatus(t, postAccess(t, w.pat.access(t, w.pat.id, "heart_rate")), http.StatusOK, &grant)
	assert.Equal(t, wire.DecisionGranted, grant.Decision, "decision")
	assert.Empty(t, grant.ConsentID, "a patient's own readings need no consent")
	var released []string
	for _, r := range grant.Readings {
		released = append(released, r.ReadingID)
		_, err := client.VerifyReleasedReading(r, &w.dk.PublicKey, nil)
		assert.NoError(t, err, "released reading %s verifies", r.ReadingID)
	}
	assert.Equal(t, w.readings, released, "the patient's readings are released")

	var log wire.AccessEventPage
	mustStatus(t, w.pat.get(t, s, "/v1/patients/"+w.pat.id+"/access-log"), http.StatusOK, &log)
	i := slices.IndexFunc(log.Items, func(e wire.AccessEvent) bool { return e.ID == grant.AccessID })
	if assert.GreaterOrEqual(t, i, 0, "the self-access is in the patient's access log") {
		assert.True(t, log.Items[i].SelfAccess(), "the logged access is a self-access")
	}

	t.Run("a patient asking for another patient's readings is forbidden", func(t *testing.T) {
		mustStatus(t, postAccess(t, other.access(t, w.pat.id, "heart_rate")), http.StatusForbidden, nil)
		var after wire.AccessEventPage
		mustStatus(t, w.pat.get(t, s, "/v1/patients/"+w.pat.id+"/access-log"), http.StatusOK, &after)
		assert.Equal(t, log.Count, after.Count, "nothing was logged")
	})
}
