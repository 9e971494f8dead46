package wire_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/medprov/medprov/wire"
)

func TestAccessEventSelfAccess(t *testing.T) {
	tests := []struct {
		name string
		ev   wire.AccessEvent
		want bool
	}{
		{"a patient's granted request for its own data", wire.AccessEvent{ActorID: "pat-1", PatientID: "pat-1", Decision: wire.DecisionGranted}, true},
		{"an erased patient's denied request for its own data", wire.AccessEvent{ActorID: "pat-1", PatientID: "pat-1", Decision: wire.DecisionDenied, Reason: wire.ReasonPatientErased}, true},
		{"a researcher's grant", wire.AccessEvent{ActorID: "res-1", PatientID: "pat-1", Decision: wire.DecisionGranted, ConsentID: "cns-1"}, false},
		{"an old researcher's request naming itself", wire.AccessEvent{ActorID: "res-1", PatientID: "res-1", Decision: wire.DecisionDenied, Reason: wire.ReasonNoConsent}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.ev.SelfAccess())
		})
	}
}
