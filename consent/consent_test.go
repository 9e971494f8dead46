package consent_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/medprov/medprov/consent"
	"github.com/medprov/medprov/wire"
)

func TestDecide(t *testing.T) {
	day := func(d int) time.Time { return time.Date(2026, 5, d, 0, 0, 0, 0, time.UTC) }
	cn := func(id, purpose, status string, nb, na int, types ...string) wire.Consent {
		return wire.Consent{ID: id, Purpose: purpose, Status: status, DataTypes: types,
			NotBefore: day(nb).Format(time.RFC3339), NotAfter: day(na).Format(time.RFC3339), GrantedAt: day(nb).Format(time.RFC3339)}
	}
	active := cn("c1", "study", wire.StatusActive, 1, 20, "heart_rate", "spo2")
	base := consent.Request{Purpose: "study", DataTypes: []string{"heart_rate"}, From: day(2), To: day(5), At: day(10)}
	with := func(f func(*consent.Request)) consent.Request {
		r := base
		r.Consents = []wire.Consent{active}
		f(&r)
		return r
	}
	for _, tc := range []struct {
		name    string
		req     consent.Request
		granted bool
		reason  string
		id      string
	}{
		{"a covering consent grants", with(func(*consent.Request) {}), true, "", "c1"},
		{"no consent", base, false, wire.ReasonNoConsent, ""},
		{"another purpose", with(func(r *consent.Request) { r.Purpose = "other" }), false, wire.ReasonPurposeMismatch, "c1"},
		{"a type not consented", with(func(r *consent.Request) { r.DataTypes = []string{"glucose"} }), false, wire.ReasonDataTypeNotConsented, "c1"},
		{"revoked", with(func(r *consent.Request) { r.Consents[0].Status = wire.StatusRevoked }), false, wire.ReasonConsentRevoked, "c1"},
		{"not yet valid", with(func(r *consent.Request) { r.At = day(0) }), false, wire.ReasonConsentNotYetValid, "c1"},
		{"expired", with(func(r *consent.Request) { r.At = day(25) }), false, wire.ReasonConsentExpired, "c1"},
		{"window outside", with(func(r *consent.Request) { r.To = day(21) }), false, wire.ReasonRangeOutsideConsent, "c1"},
		{"the most specific reason wins", with(func(r *consent.Request) {
			r.Consents = append(r.Consents, cn("c0", "other", wire.StatusActive, 1, 20, "heart_rate"))
			r.Consents[0].Status = wire.StatusRevoked
		}), false, wire.ReasonConsentRevoked, "c1"},
		{"any covering consent grants", with(func(r *consent.Request) {
			r.Consents = []wire.Consent{cn("c2", "study", wire.StatusRevoked, 1, 20, "heart_rate"), active}
		}), true, "", "c1"},
		{"self needs no consent", consent.Request{Self: true, At: day(1)}, true, "", ""},
		{"erasure overrides every consent", with(func(r *consent.Request) { r.Erased = true }), false, wire.ReasonPatientErased, ""},
		{"erasure overrides self", consent.Request{Self: true, Erased: true}, false, wire.ReasonPatientErased, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, reason, id := consent.Decide(tc.req)
			assert.Equal(t, tc.granted, g)
			assert.Equal(t, tc.reason, reason)
			assert.Equal(t, tc.id, id)
		})
	}
}
