package wire_test

import (
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/medprov/medprov/wire"
)

// goodReading is a reading payload that every rule accepts.
const goodReading = `{"deviceId":"m-7","seq":3,"type":"heart_rate","unit":"bpm","value":72,"measuredAt":"2026-12-01T10:00:00Z","nonce":"AAAAAAAAAAAAAAAAAAAAAA=="}`

// goodGrant is a consent.grant payload that every rule accepts.
const goodGrant = `{"action":"consent.grant","actorId":"pat-1","issuedAt":"2026-12-01T10:00:00Z","nonce":"3f2b8c1e6a4d4e8f9b0a1c2d3e4f5a6b","granteeId":"res-1","purpose":"study.cardio","dataTypes":["heart_rate"],"notBefore":"2026-12-01T00:00:00Z","notAfter":"2027-12-01T00:00:00Z"}`

// withMember returns the object doc with members (text such as
// `"seq":4`) added before its closing brace.
func withMember(doc, members string) string {
	return strings.TrimSuffix(doc, "}") + "," + members + "}"
}

func TestDecodeStrictRefusesAmbiguousReadings(t *testing.T) {
	tests := []struct {
		name   string
		target func() any
		in     string
		want   error
		member string // the field name the error reports, if any
	}{
		{"a second type in upper case is refused (it would win in encoding/json)", newReading, withMember(goodReading, `"TYPE":"hiv_status"`), wire.ErrFoldedMember, "type"},
		{"a second seq is refused (the last would win in encoding/json)", newReading, withMember(goodReading, `"seq":1003`), wire.ErrDuplicateMember, "seq"},
		{"a duplicate spelled with an escape is refused", newReading, withMember(goodReading, `"\u0074ype":"hiv_status"`), wire.ErrDuplicateMember, "type"},
		{"a name folded with the long s is refused", newReading, strings.Replace(goodReading, `"seq"`, `"ſeq"`, 1), wire.ErrFoldedMember, "seq"},
		{"a name folded with the Kelvin sign is refused", newRegister, `{"action":"device.register","publicKey":"k"}`, wire.ErrFoldedMember, "publicKey"},
		{"a name matching no field in any case is unknown", newGrant, strings.Replace(goodGrant, `"action"`, `"actions"`, 1), wire.ErrUnknownMember, ""},
		{"a capitalised header field of an action is refused", newGrant, strings.Replace(goodGrant, `"actorId"`, `"ActorId"`, 1), wire.ErrFoldedMember, "actorId"},
		{"a second granteeId in a consent grant is refused", newGrant, withMember(goodGrant, `"granteeId":"res-evil"`), wire.ErrDuplicateMember, "granteeId"},
		{"a second actorId in an action header is refused", newGrant, withMember(goodGrant, `"actorId":"pat-2"`), wire.ErrDuplicateMember, "actorId"},
		{"a duplicate inside the value object is refused", newReading, strings.Replace(goodReading, `"value":72`, `"value":{"sys":120,"sys":80}`, 1), wire.ErrDuplicateMember, ""},
		{"a duplicate deep inside the value is refused", newReading, strings.Replace(goodReading, `"value":72`, `"value":[{"a":[{"b":1,"c":{"d":1,"d":2}}]}]`, 1), wire.ErrDuplicateMember, ""},
		{"a duplicate in a large value object is refused", newReading, strings.Replace(goodReading, `"value":72`, `"value":`+largeObject(40, "k7"), 1), wire.ErrDuplicateMember, ""},
		{"an unknown member is refused", newReading, withMember(goodReading, `"patientId":"p"`), wire.ErrUnknownMember, ""},
		{"trailing data is refused", newReading, goodReading + `{}`, wire.ErrTrailingData, ""},
		{"a second document is refused", newReading, goodReading + goodReading, wire.ErrTrailingData, ""},
		{"invalid UTF-8 in a string is refused", newReading, strings.Replace(goodReading, "bpm", "bp\xffm", 1), wire.ErrInvalidUTF8, ""},
		{"invalid UTF-8 in a member name is refused", newReading, withMember(goodReading, "\"ty\xc0pe\":1"), wire.ErrInvalidUTF8, ""},
		{"a UTF-8 encoded surrogate is refused", newReading, strings.Replace(goodReading, "bpm", "bp\xed\xa0\x80m", 1), wire.ErrInvalidUTF8, ""},
		{"an overlong UTF-8 encoding is refused", newReading, strings.Replace(goodReading, "bpm", "bp\xc1\xbfm", 1), wire.ErrInvalidUTF8, ""},
		{"invalid UTF-8 between members is refused", newReading, strings.Replace(goodReading, `,"unit"`, ",\xff\"unit\"", 1), wire.ErrInvalidUTF8, ""},
		{"a lone high surrogate escape is refused", newReading, strings.Replace(goodReading, "bpm", `bpm\ud800`, 1), wire.ErrInvalidUTF8, ""},
		{"a lone low surrogate escape is refused", newReading, strings.Replace(goodReading, "bpm", `bpm\udc00`, 1), wire.ErrInvalidUTF8, ""},
		{"a high surrogate before a non-surrogate escape is refused", newReading, strings.Replace(goodReading, "bpm", `\ud800\u0041`, 1), wire.ErrInvalidUTF8, ""},
		{"two high surrogates are refused", newReading, strings.Replace(goodReading, "bpm", `\ud800\ud800`, 1), wire.ErrInvalidUTF8, ""},
		{"a lone surrogate in a member name is refused", newReading, withMember(goodReading, `"\ud800":1`), wire.ErrInvalidUTF8, ""},
		{"null for a string field is refused (it would keep the old value)", newReading, strings.Replace(goodReading, `"unit":"bpm"`, `"unit":null`, 1), wire.ErrNull, "unit"},
		{"null for seq is refused", newReading, strings.Replace(goodReading, `"seq":3`, `"seq":null`, 1), wire.ErrNull, "seq"},
		{"null for the whole payload is refused", newReading, `null`, wire.ErrNotObject, ""},
		{"an array for the whole payload is refused", newReading, `[` + goodReading + `]`, wire.ErrNotObject, ""},
		{"empty input is refused", newReading, ``, wire.ErrNotObject, ""},
		{"a byte order mark is refused", newReading, "\xef\xbb\xbf" + goodReading, wire.ErrSyntax, ""},
		{"a value nested 65 deep is refused", newReading, strings.Replace(goodReading, `"value":72`, `"value":`+strings.Repeat("[", 64)+strings.Repeat("]", 64), 1), wire.ErrTooDeep, ""},
		{"a leading zero is refused", newReading, strings.Replace(goodReading, `"value":72`, `"value":072`, 1), wire.ErrSyntax, ""},
		{"a trailing comma is refused", newReading, strings.Replace(goodReading, `"value":72`, `"value":[1,]`, 1), wire.ErrSyntax, ""},
		{"a raw control character in a string is refused", newReading, strings.Replace(goodReading, "bpm", "b\tpm", 1), wire.ErrSyntax, ""},
		{"an unknown escape is refused", newReading, strings.Replace(goodReading, "bpm", `b\xpm`, 1), wire.ErrSyntax, ""},
		{"an unterminated object is refused", newReading, strings.TrimSuffix(goodReading, "}"), wire.ErrSyntax, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := wire.DecodeStrict([]byte(tt.in), tt.target())
			require.ErrorIs(t, err, tt.want)
			var de *wire.DecodeError
			require.ErrorAs(t, err, &de)
			assert.Equal(t, tt.member, de.Member)
			assert.Contains(t, wire.JSONProblem(err), tt.want.Error())
		})
	}
}

// TestEncodingJSONReadsAttacksDifferently documents why DecodeStrict
// exists: encoding/json alone takes the attacker's value.
func TestEncodingJSONReadsAttacksDifferently(t *testing.T) {
	var p wire.ReadingPayload
	require.NoError(t, json.Unmarshal([]byte(withMember(goodReading, `"TYPE":"hiv_status"`)), &p))
	assert.Equal(t, "hiv_status", p.Type, "the case-folded member wins")
	require.NoError(t, json.Unmarshal([]byte(withMember(goodReading, `"seq":1003`)), &p))
	assert.Equal(t, uint64(1003), p.Seq, "the last duplicate wins")
	var d wire.DeviceRegisterAction
	require.NoError(t, json.Unmarshal([]byte(`{"public\u212aey":"k"}`), &d))
	assert.Equal(t, "k", d.PublicKey, "the Kelvin sign folds to k")
	require.NoError(t, json.Unmarshal([]byte(strings.Replace(goodReading, "bpm", `bpm\ud800`, 1)), &p))
	assert.Equal(t, "bpm\ufffd", p.Unit, "a lone surrogate becomes U+FFFD")
}

func TestDecodeStrictAccepts(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want func(*testing.T, wire.ReadingPayload)
	}{
		{"the wire example decodes", goodReading, func(t *testing.T, p wire.ReadingPayload) {
			assert.Equal(t, "heart_rate", p.Type)
			assert.Equal(t, uint64(3), p.Seq)
		}},
		{"white space around the value is allowed", " \n\t" + goodReading + "\r\n ", func(t *testing.T, p wire.ReadingPayload) {
			assert.Equal(t, "m-7", p.DeviceID)
		}},
		{"an escaped member name counts as its value", strings.Replace(goodReading, `"type"`, `"\u0074ype"`, 1), func(t *testing.T, p wire.ReadingPayload) {
			assert.Equal(t, "heart_rate", p.Type)
		}},
		{"a surrogate pair is one character", strings.Replace(goodReading, "bpm", `\ud83d\ude00`, 1), func(t *testing.T, p wire.ReadingPayload) {
			assert.Equal(t, "😀", p.Unit)
		}},
		{"U+FFFD spelled out is a character like any other", strings.Replace(goodReading, "bpm", `\ufffd`, 1), func(t *testing.T, p wire.ReadingPayload) {
			assert.Equal(t, "\ufffd", p.Unit)
		}},
		{"the same name in sibling and nested objects is not a duplicate", strings.Replace(goodReading, `"value":72`, `"value":[{"a":1},{"a":2,"b":{"a":3}}]`, 1), func(t *testing.T, p wire.ReadingPayload) {
			assert.JSONEq(t, `[{"a":1},{"a":2,"b":{"a":3}}]`, string(p.Value))
		}},
		{"a large value object without duplicates decodes", strings.Replace(goodReading, `"value":72`, `"value":`+largeObject(40, ""), 1), func(t *testing.T, p wire.ReadingPayload) {
			var m map[string]int
			require.NoError(t, json.Unmarshal(p.Value, &m))
			assert.Len(t, m, 40)
		}},
		{"null inside the value is allowed", strings.Replace(goodReading, `"value":72`, `"value":{"a":null}`, 1), func(t *testing.T, p wire.ReadingPayload) {
			assert.JSONEq(t, `{"a":null}`, string(p.Value))
		}},
		{"a value nested 63 deep decodes", strings.Replace(goodReading, `"value":72`, `"value":`+strings.Repeat("[", 63)+strings.Repeat("]", 63), 1), func(t *testing.T, p wire.ReadingPayload) {
			assert.Len(t, p.Value, 126)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p wire.ReadingPayload
			require.NoError(t, wire.DecodeStrict([]byte(tt.in), &p))
			tt.want(t, p)
		})
	}
	t.Run("an action's embedded header fields decode", func(t *testing.T) {
		var a wire.ConsentGrantAction
		require.NoError(t, wire.DecodeStrict([]byte(goodGrant), &a))
		assert.Equal(t, "pat-1", a.ActorID)
		assert.Equal(t, "res-1", a.GranteeID)
	})
	t.Run("null for a list is allowed (it reads as no list)", func(t *testing.T) {
		var a wire.ConsentGrantAction
		require.NoError(t, wire.DecodeStrict([]byte(strings.Replace(goodGrant, `["heart_rate"]`, `null`, 1)), &a))
		assert.Nil(t, a.DataTypes)
	})
}

func TestDecodeStrictNeverEchoesInput(t *testing.T) {
	const secret = "hiv_status"
	for _, in := range []string{
		withMember(goodReading, `"TYPE":"`+secret+`"`),
		withMember(goodReading, `"`+secret+`":1`),
		strings.Replace(goodReading, `"value":72`, `"value":{"`+secret+`":1,"`+secret+`":2}`, 1),
		strings.Replace(goodReading, `"seq":3`, `"seq":"`+secret+`"`, 1),
		strings.Replace(goodReading, `"measuredAt":"2026-12-01T10:00:00Z"`, `"measuredAt":`+secret, 1),
	} {
		err := wire.DecodeStrict([]byte(in), new(wire.ReadingPayload))
		require.Error(t, err, in)
		assert.NotContains(t, wire.JSONProblem(err), secret, in)
	}
}

// TestDecodeStrictFieldNames checks the member names the decoder accepts
// against encoding/json's own reading of struct tags and embedding.
func TestDecodeStrictFieldNames(t *testing.T) {
	type inner struct {
		A string `json:"a"`
		B string `json:"b"`
		C string
	}
	type Other struct {
		C string
		D string `json:"d"`
	}
	type outer struct {
		inner
		*Other
		B      string `json:"b"` // shadows inner.B
		Hidden string `json:"-"`
		Dash   string `json:"-,"` // named "-"
		E      string `json:",omitempty"`
		f      string //nolint:unused // unexported: not a member
	}
	tests := []struct {
		name   string
		member string
		ok     bool
	}{
		{"a field promoted from an embedded struct is a member", "a", true},
		{"a field of an embedded pointer struct is a member", "d", true},
		{"an outer field shadows the embedded one", "b", true},
		{"a name two embedded structs share at one depth is not a member", "C", false},
		{"a field tagged - is not a member", "Hidden", false},
		{"a field tagged -, is the member -", "-", true},
		{"a field without a tag name is its Go name", "E", true},
		{"an unexported field is not a member", "f", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := `{"` + tt.member + `":"x"}`
			err := wire.DecodeStrict([]byte(in), new(outer))
			dec := json.NewDecoder(strings.NewReader(in))
			dec.DisallowUnknownFields()
			goErr := dec.Decode(new(outer))
			if tt.ok {
				assert.NoError(t, err)
				assert.NoError(t, goErr, "encoding/json must agree")
				return
			}
			assert.ErrorIs(t, err, wire.ErrUnknownMember)
			assert.Error(t, goErr, "encoding/json must agree")
		})
	}
}

func TestDecodeStrictNeedsAPointer(t *testing.T) {
	var p wire.ReadingPayload
	assert.Error(t, wire.DecodeStrict([]byte(goodReading), p))
	assert.Error(t, wire.DecodeStrict([]byte(goodReading), (*wire.ReadingPayload)(nil)))
	assert.Error(t, wire.DecodeStrict([]byte(goodReading), nil))
}

func newReading() any { return new(wire.ReadingPayload) }
func newGrant() any   { return new(wire.ConsentGrantAction) }

func newRegister() any { return new(wire.DeviceRegisterAction) }

// largeObject returns an object of n members "k0".."k<n-1>", with dup (if
// not "") repeated as the last member.
func largeObject(n int, dup string) string {
	var b strings.Builder
	b.WriteString("{")
	for i := range n {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(`"k` + strconv.Itoa(i) + `":1`)
	}
	if dup != "" {
		b.WriteString(`,"` + dup + `":2`)
	}
	b.WriteString("}")
	return b.String()
}

func TestDecodeStrictRecursiveTypes(t *testing.T) {
	type node struct {
		Name string  `json:"name"`
		Kids []*node `json:"kids"`
	}
	var n node
	require.NoError(t, wire.DecodeStrict([]byte(`{"name":"a","kids":[{"name":"b","kids":null},null]}`), &n))
	require.Len(t, n.Kids, 2)
	assert.Equal(t, "b", n.Kids[0].Name)
	err := wire.DecodeStrict([]byte(`{"name":"a","kids":[{"name":"b","Name":"c"}]}`), &n)
	require.ErrorIs(t, err, wire.ErrFoldedMember, "the rules hold at every level of a recursive type")
}

func TestDecodeStrictConcurrentFirstUse(t *testing.T) {
	type fresh struct {
		A string `json:"a"`
		B []struct {
			C int `json:"c"`
		} `json:"b"`
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			var v fresh
			if assert.NoError(t, wire.DecodeStrict([]byte(`{"a":"x","b":[{"c":1}]}`), &v)) {
				assert.Equal(t, 1, v.B[0].C)
			}
			assert.ErrorIs(t, wire.DecodeStrict([]byte(`{"a":"x","b":[{"c":1,"c":2}]}`), &v), wire.ErrDuplicateMember)
		})
	}
	wg.Wait()
}
