// Package consent holds medprov's access rule: whether a request for a
// patient's readings is granted, and if not, why. The chaincode decides
// every access request with it, and an offline audit re-derives every
// recorded decision with it from the consents that existed at that point,
// so both apply one rule, byte for byte. It is deterministic and does no
// I/O.
package consent

import (
	"cmp"
	"slices"
	"time"

	"github.com/medprov/medprov/wire"
)

// Request is an access request to decide, with what the ledger held when
// it was decided.
type Request struct {
	// Self is a patient asking for its own readings: granted without a
	// consent.
	Self bool
	// Erased is true once the patient erased its data: every request is
	// denied with patient_erased, whatever the consents say.
	Erased bool
	// Consents are the patient's consents for the requester, in any order.
	Consents  []wire.Consent
	Purpose   string
	DataTypes []string
	// From and To are the requested window of measurement times.
	From, To time.Time
	// At is when the request is decided: the transaction's time.
	At time.Time
}

// Decide decides r. A request is granted if one of the consents is active,
// has the same purpose, includes every requested data type, is valid at
// r.At (notBefore <= At <= notAfter) and its window contains [From, To];
// consentID then names it. Otherwise the reason is the most specific among
// the consents, ranked no_consent < purpose_mismatch <
// data_type_not_consented < consent_revoked < consent_not_yet_valid =
// consent_expired < range_outside_consent, and consentID names that
// consent. Consents are examined by grant time, then ID, so the first of
// equally specific ones is named.
func Decide(r Request) (granted bool, reason, consentID string) {
	if r.Erased {
		return false, wire.ReasonPatientErased, ""
	}
	if r.Self {
		return true, "", ""
	}
	cs := slices.Clone(r.Consents)
	Order(cs)
	best, bestRank := wire.ReasonNoConsent, 0
	for _, cn := range cs {
		why, rank := judge(cn, r)
		if why == "" {
			return true, "", cn.ID
		}
		if rank > bestRank {
			best, bestRank, consentID = why, rank, cn.ID
		}
	}
	return false, best, consentID
}

// Order sorts consents as Decide examines them: by grant time, then ID.
func Order(cs []wire.Consent) {
	slices.SortStableFunc(cs, func(a, b wire.Consent) int {
		return cmp.Or(cmp.Compare(a.GrantedAt, b.GrantedAt), cmp.Compare(a.ID, b.ID))
	})
}

// judge returns "" if the consent grants r, else the reason and how
// specific it is (higher: the consent came closer to granting).
func judge(cn wire.Consent, r Request) (string, int) {
	if cn.Purpose != r.Purpose {
		return wire.ReasonPurposeMismatch, 1
	}
	for _, dt := range r.DataTypes {
		if !slices.Contains(cn.DataTypes, dt) {
			return wire.ReasonDataTypeNotConsented, 2
		}
	}
	if cn.Status != wire.StatusActive {
		return wire.ReasonConsentRevoked, 3
	}
	nb, err1 := time.Parse(time.RFC3339, cn.NotBefore)
	na, err2 := time.Parse(time.RFC3339, cn.NotAfter)
	if err1 != nil || err2 != nil {
		return wire.ReasonConsentNotYetValid, 0 // unreachable: validated when granted
	}
	if r.At.Before(nb) {
		return wire.ReasonConsentNotYetValid, 4
	}
	if r.At.After(na) {
		return wire.ReasonConsentExpired, 4
	}
	if r.From.Before(nb) || r.To.After(na) {
		return wire.ReasonRangeOutsideConsent, 5
	}
	return "", 0
}
