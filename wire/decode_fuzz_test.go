package wire_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/medprov/medprov/envelope"
	"github.com/medprov/medprov/wire"
)

// FuzzDecodeStrict checks DESIGN.md's promise for signed bytes: whatever
// DecodeStrict accepts into a reading payload or an action payload (and
// whatever envelope.Parse accepts) holds exactly the values an independent,
// case-sensitive, duplicate-refusing parse of the same bytes sees.
func FuzzDecodeStrict(f *testing.F) {
	seeds := []string{
		goodReading,
		goodGrant,
		withMember(goodReading, `"TYPE":"hiv_status"`),
		withMember(goodReading, `"seq":1003`),
		withMember(goodReading, `"\u0074ype":"hiv_status"`),
		strings.Replace(goodReading, `"seq"`, `"ſeq"`, 1),
		strings.Replace(goodReading, `"value":72`, `"value":{"a":[1,{"b":2,"b":3}],"c":-0.5e+3}`, 1),
		strings.Replace(goodReading, "bpm", `bpm\ud800`, 1),
		strings.Replace(goodReading, "bpm", `\ud83d\ude00\u00e9\/`, 1),
		strings.Replace(goodReading, "bpm", "bp\xffm", 1),
		withMember(goodGrant, `"granteeId":"res-evil"`),
		strings.Replace(goodGrant, `"actorId"`, `"ActorId"`, 1),
		strings.Replace(goodGrant, `["heart_rate"]`, `null`, 1),
		`{"payload":"e30=","signature":"AQID"}`,
		`{"payload":"e30=","signature":"AQID","payload":"W10="}`,
		`{"Payload":"W10=","payload":"e30=","signature":"AQID"}`,
		`{"payload":"e31=","signature":"AQID"}`,
		`{"deviceId":"m"} {}`,
		`null`,
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var p wire.ReadingPayload
		if err := wire.DecodeStrict(data, &p); err == nil {
			sameValues(t, data, p)
		}
		if p, _, err := wire.ParseReadingPayload(data); err == nil {
			sameValues(t, data, p)
		}
		var a wire.ConsentGrantAction
		if err := wire.DecodeStrict(data, &a); err == nil {
			sameValues(t, data, a)
		}
		var ar wire.AccessRequestAction
		if err := wire.DecodeStrict(data, &ar); err == nil {
			sameValues(t, data, ar)
		}
		if e, err := envelope.Parse(data); err == nil {
			sameValues(t, data, map[string]string{
				"payload":   base64.StdEncoding.EncodeToString(e.Payload),
				"signature": base64.StdEncoding.EncodeToString(e.Signature),
			})
		}
	})
}

// sameValues fails t unless the independent parse of data is an object
// whose every member equals the member of that name in the JSON encoding
// of decoded, and every member of that encoding missing from data holds a
// zero value (the decoder left the field alone).
func sameValues(t *testing.T, data []byte, decoded any) {
	t.Helper()
	want, err := independentParse(data)
	require.NoError(t, err, "decoder accepted %q, which an independent parse refuses", data)
	in, ok := want.(map[string]any)
	require.True(t, ok, "decoder accepted %q, which is not an object", data)
	enc, err := json.Marshal(decoded)
	require.NoError(t, err, "re-encode")
	back, err := independentParse(enc)
	require.NoError(t, err, "re-encoding %q does not parse", enc)
	out := back.(map[string]any)
	for k, v := range in {
		got, ok := out[k]
		// omitempty drops zero values only
		require.True(t, ok || isZero(v), "input %q: member %q = %v is not in the decoded value %s", data, k, v, enc)
		require.True(t, !ok || sameJSON(v, got), "input %q: member %q is %v, the decoder read %v", data, k, v, got)
	}
	for k, v := range out {
		_, ok := in[k]
		require.True(t, ok || isZero(v), "input %q: the decoder set %q = %v, which the input does not hold", data, k, v)
	}
}

// independentParse reads one JSON value into maps, slices, strings,
// json.Numbers, bools and nils from encoding/json's token stream, refusing
// what a strict reader refuses: invalid UTF-8, duplicate member names
// (compared case-sensitively), strings that decode to U+FFFD the input did
// not spell out (lone surrogates), and trailing data.
func independentParse(data []byte) (any, error) {
	if !utf8.Valid(data) {
		return nil, errors.New("invalid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	spelledFFFD := bytes.Contains(data, []byte("\uFFFD")) || bytes.Contains(bytes.ToLower(data), []byte(`\ufffd`))
	v, err := parseValue(dec, spelledFFFD)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("trailing data")
	}
	return v, nil
}

func parseValue(dec *json.Decoder, spelledFFFD bool) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch tok := tok.(type) {
	case json.Delim:
		switch tok {
		case '{':
			m := map[string]any{}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				k := kt.(string)
				if strings.ContainsRune(k, utf8.RuneError) && !spelledFFFD {
					return nil, errors.New("member name with a lone surrogate")
				}
				if _, dup := m[k]; dup {
					return nil, fmt.Errorf("duplicate member %q", k)
				}
				if m[k], err = parseValue(dec, spelledFFFD); err != nil {
					return nil, err
				}
			}
			_, err := dec.Token() // '}'
			return m, err
		case '[':
			a := []any{}
			for dec.More() {
				v, err := parseValue(dec, spelledFFFD)
				if err != nil {
					return nil, err
				}
				a = append(a, v)
			}
			_, err := dec.Token() // ']'
			return a, err
		}
		return nil, fmt.Errorf("unexpected %v", tok)
	case string:
		if strings.ContainsRune(tok, utf8.RuneError) && !spelledFFFD {
			return nil, errors.New("string with a lone surrogate")
		}
		return tok, nil
	}
	return tok, nil
}

// sameJSON compares two parsed values, numbers by their exact value.
func sameJSON(a, b any) bool {
	switch a := a.(type) {
	case map[string]any:
		b, ok := b.(map[string]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for k, v := range a {
			if w, ok := b[k]; !ok || !sameJSON(v, w) {
				return false
			}
		}
		return true
	case []any:
		b, ok := b.([]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for i := range a {
			if !sameJSON(a[i], b[i]) {
				return false
			}
		}
		return true
	case json.Number:
		b, ok := b.(json.Number)
		if !ok {
			return false
		}
		x, okx := new(big.Rat).SetString(string(a))
		y, oky := new(big.Rat).SetString(string(b))
		return okx && oky && x.Cmp(y) == 0
	}
	return a == b
}

func isZero(v any) bool {
	switch v := v.(type) {
	case nil:
		return true
	case string:
		return v == ""
	case bool:
		return !v
	case json.Number:
		r, ok := new(big.Rat).SetString(string(v))
		return ok && r.Sign() == 0
	case []any:
		return len(v) == 0
	}
	return false
}
