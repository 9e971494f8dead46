package cbor_test

import (
	"encoding/hex"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/medprov/medprov/internal/cbor"
)

func TestItem(t *testing.T) {
	tests := []struct {
		name     string
		hex      string
		shortest bool
		want     any
		wantErr  error
	}{
		{"a small unsigned integer", "17", false, int64(23), nil},
		{"a negative integer", "3863", false, int64(-100), nil},
		{"a byte string", "43010203", false, []byte{1, 2, 3}, nil},
		{"a text string", "63666d74", false, "fmt", nil},
		{"a map with integer and text keys", "a201026161f5", false, map[any]any{int64(1): int64(2), "a": true}, nil},
		{"an array", "820102", false, []any{int64(1), int64(2)}, nil},
		{"null", "f6", false, nil, nil},
		{"a float reads as zero", "fa3fc00000", false, float64(0), nil},
		{"a non-shortest integer is read by default", "1801", false, int64(1), nil},
		{"a non-shortest integer is refused when shortest", "1801", true, nil, cbor.ErrNotShortest},
		{"a float is not an argument: allowed when shortest", "fa3fc00000", true, float64(0), nil},
		{"an indefinite-length map is refused", "bf0102ff", false, nil, cbor.ErrMalformed},
		{"a tag is refused", "c001", false, nil, cbor.ErrMalformed},
		{"a duplicate map key is refused", "a201020103", false, nil, cbor.ErrMalformed},
		{"a byte-string map key is refused", "a1410102", false, nil, cbor.ErrMalformed},
		{"a truncated string is refused", "4501", false, nil, cbor.ErrMalformed},
		{"an undefined simple value is refused", "f7", false, nil, cbor.ErrMalformed},
		{"an empty input is refused", "", false, nil, cbor.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := hex.DecodeString(tt.hex)
			require.NoError(t, err)
			d := cbor.NewDecoder(b)
			d.Shortest = tt.shortest
			got, err := d.Item()
			if tt.wantErr != nil {
				require.ErrorIs(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
			assert.Equal(t, len(b), d.Offset())
		})
	}
	t.Run("nesting deeper than MaxDepth is refused", func(t *testing.T) {
		b := make([]byte, cbor.MaxDepth+2)
		for i := range b {
			b[i] = 0x81 // an array of one
		}
		_, err := cbor.NewDecoder(b).Item()
		require.ErrorIs(t, err, cbor.ErrMalformed)
	})
}
