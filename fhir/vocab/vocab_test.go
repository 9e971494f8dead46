package vocab_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/medprov/medprov/fhir/vocab"
)

func TestResourceID(t *testing.T) {
	hashedLike := "sha256-" + strings.Repeat("a", 57)
	tests := []struct {
		name, id string
		kept     bool
	}{
		{"a FHIR id is kept", "dev-1.a", true},
		{"a 64-character id is kept", strings.Repeat("x", 64), true},
		{"an id with '_' is hashed", "dev_1", false},
		{"an id longer than 64 is hashed", strings.Repeat("x", 65), false},
		{"an id that looks hashed is hashed", hashedLike, false},
	}
	seen := map[string]string{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := vocab.ResourceID(tt.id)
			assert.True(t, vocab.ValidResourceID(got), "%q is a FHIR id", got)
			assert.Equal(t, tt.kept, got == tt.id, "kept")
			if prev, dup := seen[got]; dup {
				assert.Fail(t, "two ledger ids share a resource id", "%q and %q", prev, tt.id)
			}
			seen[got] = tt.id
			assert.Equal(t, got, vocab.ResourceID(tt.id), "deterministic")
		})
	}
	assert.NotEqual(t, hashedLike, vocab.ResourceID(hashedLike), "no ledger id maps onto a hashed id it is not")
}

func TestReadingTypes(t *testing.T) {
	loinc := map[string]bool{}
	for _, rt := range vocab.ReadingTypes() {
		assert.False(t, loinc[rt.LOINC], "LOINC %s names one type", rt.LOINC)
		loinc[rt.LOINC] = true
		got, ok := vocab.TypeOfLOINC(rt.LOINC)
		assert.True(t, ok)
		assert.Equal(t, rt.Type, got.Type)
		_, ok = vocab.UCUM(rt.UCUM)
		assert.True(t, ok, "%s's unit %s is a UCUM code medprov knows", rt.Type, rt.UCUM)
	}
	for typ, want := range map[string]string{"heart_rate": "8867-4", "spo2": "59408-5", "temperature": "8310-5", "glucose": "2339-0"} {
		rt, ok := vocab.TypeOf(typ)
		if assert.True(t, ok, typ) {
			assert.Equal(t, want, rt.LOINC, typ)
		}
	}
	for unit, want := range map[string]string{"bpm": "/min", "°C": "Cel", "mmHg": "mm[Hg]", "%": "%"} {
		got, ok := vocab.UCUM(unit)
		assert.True(t, ok, unit)
		assert.Equal(t, want, got, unit)
	}
	_, ok := vocab.UCUM("furlongs")
	assert.False(t, ok, "an unknown unit has no UCUM code")
}
