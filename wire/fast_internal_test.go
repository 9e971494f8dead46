package wire

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// b64 is a field type with its own UnmarshalJSON, like envelope's
// canonical base64.
type b64 []byte

func (b *b64) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return err
	}
	v, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil {
		return errors.New("not base64")
	}
	*b = v
	return nil
}

// allKinds has a member of every kind the fast path decodes.
type allKinds struct {
	S    string            `json:"s"`
	I8   int8              `json:"i8"`
	I    int64             `json:"i"`
	U16  uint16            `json:"u16"`
	U    uint64            `json:"u"`
	F32  float32           `json:"f32"`
	F    float64           `json:"f"`
	B    bool              `json:"b"`
	Raw  json.RawMessage   `json:"raw"`
	Raws []json.RawMessage `json:"raws"`
	Data b64               `json:"data"`
	Dash string            `json:"-,"`
	Skip string            `json:"-"`
	Name string
}

// fastTargets are the types the differential test decodes into, each
// preset as its callers do.
func fastTargets() []func() any {
	return []func() any{
		func() any { return &allKinds{S: "preset", U: 7} },
		func() any { return &ReadingInput{Seq: seqUnset} },
		func() any { return &ReadingPayload{Seq: seqUnset} },
		func() any { return &BatchRequest{} },
	}
}

// decodeBoth decodes data (accepted by the strict scan for target's type)
// with the fast path and with encoding/json.
func decodeBoth(t *testing.T, data []byte, newTarget func() any) {
	t.Helper()
	fast, slow := newTarget(), newTarget()
	rt := reflect.TypeOf(fast)
	if scan(data, rt.Elem()) != nil {
		return // the strict scan refuses it: the fast path never sees it
	}
	ft := fastOf(rt.Elem())
	require.NotNil(t, ft, "%s is decoded by the fast path", rt.Elem())
	slowErr := json.Unmarshal(data, slow)
	if !ft.decode(data, reflect.ValueOf(fast).Elem()) {
		// Declined: DecodeStrict answers what encoding/json answers,
		// which sets again every member the fast path had set.
		fastErr := json.Unmarshal(data, fast)
		assert.Equal(t, errString(slowErr), errString(fastErr), "after declining, %s", data)
		assert.Equal(t, slow, fast, "after declining, %s", data)
		return
	}
	require.NoError(t, slowErr, "the fast path accepted what encoding/json refuses: %s", data)
	assert.Equal(t, slow, fast, "fast and encoding/json decode %s alike", data)
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestFastDecode(t *testing.T) {
	tests := []struct {
		name     string
		data     string
		declined bool
	}{
		{"every kind", `{"s":"a\"b\\c\/\u00e9\ud83d\ude00\n","i8":-128,"i":-9007199254740993,"u16":65535,"u":18446744073709551615,"f32":1.5e3,"f":-0.25,"b":true,"raw":{"x":[1,"]",{"y":"}"}]},"raws":[1, "two" ,{"3":[]},[],null],"data":"AQID","-":"dash","Name":"n"}`, false},
		{"empty object", `{}`, false},
		{"empty array", ` { "raws" : [ ] } `, false},
		{"false", `{"b":false}`, false},
		{"int8 overflow", `{"i8":128}`, true},
		{"fraction into an int", `{"i":1.5}`, true},
		{"exponent into an int", `{"i":1e3}`, true},
		{"negative into a uint", `{"u":-1}`, true},
		{"float32 overflow", `{"f32":1e39}`, true},
		{"null string", `{"s":null}`, true},
		{"null raw", `{"raw":null}`, true},
		{"string into a number", `{"i":"1"}`, true},
		{"number into a string", `{"s":1}`, true},
		{"bad base64", `{"data":"AQI"}`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := []byte(tt.data)
			var v allKinds
			ft := fastOf(reflect.TypeFor[allKinds]())
			require.NotNil(t, ft)
			assert.Equal(t, !tt.declined, ft.decode(data, reflect.ValueOf(&v).Elem()), "fast path taken")
			decodeBoth(t, data, func() any { return &allKinds{S: "preset", U: 7} })
		})
	}
}

func TestFastOfDeclinesTypes(t *testing.T) {
	type embedded struct{ A string }
	type withEmbedded struct {
		embedded
		B string
	}
	type withStringOpt struct {
		N int `json:"n,string"`
	}
	type withMap struct {
		M map[string]string
	}
	type withPointer struct {
		P *string
	}
	for _, rt := range []reflect.Type{
		reflect.TypeFor[withEmbedded](), reflect.TypeFor[withStringOpt](), reflect.TypeFor[withMap](),
		reflect.TypeFor[withPointer](), reflect.TypeFor[b64](), reflect.TypeFor[[]string](),
	} {
		assert.Nil(t, fastOf(rt), "%s is left to encoding/json", rt)
	}
}

// FuzzFastDecode: whatever the strict scan accepts, the fast path decodes
// exactly as encoding/json does, or declines.
func FuzzFastDecode(f *testing.F) {
	for _, s := range []string{
		`{"s":"x","i8":1,"u":2,"f":3.5,"b":true,"raw":[1,{"a":"]"}],"raws":[{"b":1},"c"],"data":"AQID"}`,
		`{"deviceId":"m-1","seq":3,"type":"heart_rate","unit":"bpm","measuredAt":"2026-12-01T10:00:00Z","dataHash":"` + string(make([]byte, 0)) + `ab","signature":"MEUC","cid":"bafy","cipherHash":"cd","size":12}`,
		`{"deviceId":"monitor-7","seq":1042,"type":"heart_rate","unit":"bpm","value":{"a":[1,2]},"measuredAt":"2026-12-01T10:00:00.123Z","nonce":"q83v"}`,
		`{"readings":[{"payload":"e30=","signature":"AQID"}, {"payload":"W10=","signature":"AQID"}]}`,
		`{"i":-0,"u16":0,"f32":-1E-2,"s":"\u0000\t"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, newTarget := range fastTargets() {
			decodeBoth(t, data, newTarget)
		}
	})
}
