package web_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/medprov/medprov/web"
	"github.com/medprov/medprov/wire"
)

// regulatorAPI is a canned gateway API for the regulator pages: the
// session cookie's value is the signed-in person's role, and every query
// the pages make is remembered by path.
type regulatorAPI struct {
	mu      sync.Mutex
	queries map[string]url.Values
}

// regulatorReading is the one reading the canned API knows.
const regulatorReading = "pulse-ox-7:42"

func (a *regulatorAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	a.queries[r.URL.Path] = r.URL.Query()
	a.mu.Unlock()
	answer := func(status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		if err := json.NewEncoder(w).Encode(v); err != nil {
			panic(err)
		}
	}
	refuse := func(status int, code wire.Code, msg string) {
		answer(status, wire.ErrorResponse{Error: wire.ErrorBody{Code: code, Message: msg}})
	}
	q := r.URL.Query()
	switch r.URL.Path {
	case "/v1/session":
		ck, err := r.Cookie(wire.SessionCookie)
		if err != nil {
			refuse(http.StatusUnauthorized, wire.CodeUnauthenticated, "sign in first")
			return
		}
		answer(http.StatusOK, wire.Session{ActorID: ck.Value + "-1", Role: ck.Value, Credentials: []string{}})
	case "/v1/audit/events":
		switch q.Get("patientId") {
		case "bad!":
			refuse(http.StatusBadRequest, wire.CodeInvalid, "patientId is malformed")
		case "many":
			items := make([]wire.AuditEvent, 50)
			for i := range items {
				items[i] = wire.AuditEvent{ID: fmt.Sprintf("tx%02d", i), Type: wire.AuditReadingsRecorded, ActorID: "org:Org1MSP",
					PatientIDs: []string{"many"}, TxID: fmt.Sprintf("tx%02d", i), TxTime: "2026-01-02T10:00:00Z"}
			}
			answer(http.StatusOK, wire.AuditEventPage{Items: items, Bookmark: "bm-2", Count: len(items)})
		default:
			answer(http.StatusOK, wire.AuditEventPage{Items: []wire.AuditEvent{
				{ID: "tx-grant", Type: wire.AuditConsentGranted, ActorID: "patient-1", PatientIDs: []string{"patient-1"},
					SubjectID: "consent-1", TxID: "tx-grant-0123456789abcdef", TxTime: "2026-01-02T10:00:00Z"},
				{ID: "tx-deny", Type: wire.AuditAccessDenied, ActorID: "res-1", PatientIDs: []string{"patient-1"},
					SubjectID: "access-1", Decision: wire.DecisionDenied, TxID: "tx-deny-0123456789abcdef", TxTime: "2026-01-02T11:00:00Z"},
			}, Count: 2})
		}
	case "/v1/actors":
		answer(http.StatusOK, wire.ActorPage{Items: []wire.Actor{{ID: "res-1", Role: wire.RoleResearcher, Org: "Org1MSP",
			Status: wire.StatusActive, RegisteredAt: "2026-01-01T09:00:00Z"}}, Bookmark: "actors-2", Count: 1})
	case "/v1/devices":
		answer(http.StatusOK, wire.DevicePage{Items: []wire.Device{{ID: "pulse-ox-7", DeviceType: "pulse_oximeter", OperatorID: "op-1",
			PatientID: "patient-1", Status: wire.StatusActive, RegisteredAt: "2026-01-01T09:30:00Z"}}, Count: 1})
	case "/v1/readings/" + regulatorReading + "/provenance":
		answer(http.StatusOK, wire.ProvenanceReport{
			Provenance: wire.Provenance{
				Reading: wire.Reading{ID: regulatorReading, DeviceID: "pulse-ox-7", PatientID: "patient-1", Seq: 42, Type: "spo2", Unit: "%",
					MeasuredAt: "2026-01-02T08:00:00Z", DataHash: strings.Repeat("ab", 32), CID: "bafkreiexample", TxID: "tx-rec", TxTime: "2026-01-02T08:00:01Z"},
				Device:   wire.Device{ID: "pulse-ox-7", DeviceType: "pulse_oximeter", OperatorID: "op-1", PatientID: "patient-1", Status: wire.StatusActive},
				Consents: []wire.Consent{{ID: "consent-1", GranteeID: "res-1", Purpose: "study.cardio", DataTypes: []string{"spo2"}, Status: wire.StatusActive}},
				Accesses: []wire.AccessEvent{{ID: "access-9", ActorID: "res-1", Purpose: "study.cardio", Decision: wire.DecisionGranted,
					ConsentID: "consent-1", ReadingIDs: []string{regulatorReading}, TxID: "tx-access"}},
			},
			Tx: &wire.TxRef{TxID: "tx-rec", Block: 17, Valid: true},
		})
	case "/v1/audit/verify/" + regulatorReading:
		answer(http.StatusOK, wire.Verification{ReadingID: regulatorReading, OK: false, Checks: []wire.Check{
			{Name: "transaction_committed", OK: true, Detail: "block 17"},
			{Name: "chain_integrity", OK: true, Detail: "every block replayed"},
			{Name: "plaintext_hash", OK: false, Detail: "patient data erased (crypto-shredded)"},
		}})
	default:
		refuse(http.StatusNotFound, wire.CodeNotFound, "reading not found")
	}
}

func TestRegulatorPages(t *testing.T) {
	gin.SetMode(gin.TestMode)
	tests := []struct {
		name     string
		role     string // the signed-in person's role; "" for no session
		path     string
		status   int
		location string
		contains []string
		absent   []string
		// api are query parameters the page must have asked the API for,
		// by API path.
		api map[string]url.Values
		// unasked are API paths the page must not have read.
		unasked []string
	}{
		{
			name: "the audit page sends a visitor without a session to sign in", path: "/regulator",
			status: http.StatusSeeOther, location: "/signin?next=%2Fregulator",
		},
		{
			name: "the audit page is refused to a patient", role: wire.RolePatient, path: "/regulator",
			status: http.StatusForbidden, contains: []string{"This page is not for your role"},
		},
		{
			name: "the audit page shows events, actors and devices", role: wire.RoleRegulator, path: "/regulator",
			status: http.StatusOK,
			contains: []string{`id="audit-table"`, `data-type="consent.granted"`, `data-type="access.denied"`, "Consent granted",
				`id="actors-table"`, `data-actor="res-1"`, `id="actors-next"`, `actors=actors-2`,
				`id="devices-table"`, `data-device="pulse-ox-7"`, `id="lookup-form"`, `<option value="passkey.registered">`},
			absent: []string{`id="audit-next"`, `id="audit-error"`, `id="devices-next"`},
			api: map[string]url.Values{
				"/v1/audit/events": {"pageSize": {"50"}},
				"/v1/actors":       {"pageSize": {"50"}},
				"/v1/devices":      {"pageSize": {"50"}},
			},
		},
		{
			name: "the filters reach the API with days as RFC 3339 bounds in UTC", role: wire.RoleRegulator,
			path:   "/regulator?patientId=patient-1&actorId=org:Org1MSP&type=consent.granted&from=2026-01-02&to=2026-01-03&role=researcher",
			status: http.StatusOK,
			contains: []string{`value="2026-01-02"`, `<option value="consent.granted" selected>`, `<option value="researcher" selected>`,
				`<input type="hidden" name="role" value="researcher">`},
			api: map[string]url.Values{
				"/v1/audit/events": {"patientId": {"patient-1"}, "actorId": {"org:Org1MSP"}, "type": {"consent.granted"},
					"from": {"2026-01-02T00:00:00Z"}, "to": {"2026-01-03T23:59:59.999999999Z"}, "pageSize": {"50"}},
				"/v1/actors": {"role": {"researcher"}, "pageSize": {"50"}},
			},
		},
		{
			name: "a full page of events links to the next with the filters", role: wire.RoleRegulator,
			path: "/regulator?patientId=many&bookmark=bm-1", status: http.StatusOK,
			contains: []string{`id="audit-next"`, "bookmark=bm-2", "patientId=many"},
			api:      map[string]url.Values{"/v1/audit/events": {"patientId": {"many"}, "bookmark": {"bm-1"}}},
		},
		{
			name: "a date that is not a date is explained, not sent", role: wire.RoleRegulator,
			path: "/regulator?from=2026-13-01", status: http.StatusBadRequest,
			contains: []string{`id="audit-error"`, "is not a date", `id="audit-filter"`, `id="actors-table"`},
			absent:   []string{`id="audit-table"`},
			unasked:  []string{"/v1/audit/events"},
		},
		{
			name: "an end before the start is explained", role: wire.RoleRegulator,
			path: "/regulator?from=2026-02-01&to=2026-01-01", status: http.StatusBadRequest,
			contains: []string{`id="audit-error"`, "before the From date"},
		},
		{
			name: "a filter the API refuses is explained on the page", role: wire.RoleRegulator,
			path: "/regulator?patientId=bad!", status: http.StatusBadRequest,
			contains: []string{`id="audit-error"`, "PatientId is malformed."},
		},
		{
			name: "the lookup form goes to the reading's page", role: wire.RoleRegulator,
			path: "/regulator/readings?readingId=+" + url.QueryEscape(regulatorReading) + "+", status: http.StatusSeeOther,
			location: "/regulator/readings/" + regulatorReading,
		},
		{
			name: "a reading's page shows its record, consents and accesses", role: wire.RoleRegulator,
			path: "/regulator/readings/" + regulatorReading, status: http.StatusOK,
			contains: []string{"<h1>Reading " + regulatorReading + "</h1>", `id="record-table"`, strings.Repeat("ab", 32), "bafkreiexample",
				`id="record-block">17`, `data-consent="consent-1"`, `data-access="access-9"`,
				`id="verify-link"`, `href="/regulator/readings/` + regulatorReading + `?verify=1#verification"`},
			absent: []string{`id="verify-table"`},
		},
		{
			name: "verifying a reading shows every check and the verdict", role: wire.RoleRegulator,
			path: "/regulator/readings/" + regulatorReading + "?verify=1", status: http.StatusOK,
			contains: []string{`id="verify-table"`, `data-check="chain_integrity" data-ok="true"`,
				`data-check="plaintext_hash" data-ok="false"`, "Ledger hash chain is intact", "✗</span> Failed",
				`id="verdict" data-ok="false"`, "1 of 3 checks failed", `id="chain-integrity" data-ok="true"`},
			api: map[string]url.Values{"/v1/audit/verify/" + regulatorReading: {}},
		},
		{
			name: "a reading the ledger does not hold answers a not-found page", role: wire.RoleRegulator,
			path: "/regulator/readings/nope:1", status: http.StatusNotFound,
			contains: []string{"Reading not found", `id="not-found"`, "nope:1", `id="lookup-form"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			api := &regulatorAPI{queries: map[string]url.Values{}}
			r := gin.New()
			web.Register(r, web.Config{API: api})
			req := httptest.NewRequestWithContext(t.Context(), http.MethodGet, tt.path, nil)
			if tt.role != "" {
				req.AddCookie(&http.Cookie{Name: wire.SessionCookie, Value: tt.role})
			}
			rec := httptest.NewRecorder()
			r.ServeHTTP(rec, req)

			body := rec.Body.String()
			require.Equal(t, tt.status, rec.Code, body)
			if tt.location != "" {
				assert.Equal(t, tt.location, rec.Header().Get("Location"))
			}
			for _, want := range tt.contains {
				assert.Contains(t, body, want)
			}
			for _, unwanted := range tt.absent {
				assert.NotContains(t, body, unwanted)
			}
			for path, want := range tt.api {
				got, asked := api.queries[path]
				require.True(t, asked, "the page did not read %s", path)
				for k := range want {
					assert.Equal(t, want.Get(k), got.Get(k), "%s %s", path, k)
				}
			}
			for _, path := range tt.unasked {
				assert.NotContains(t, api.queries, path)
			}
		})
	}
}
