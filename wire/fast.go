package wire

import (
	"encoding/json"
	"reflect"
	"strconv"
	"sync"
)

// The hot documents (readings, envelopes, batches) are flat objects of
// strings and numbers. Once the strict scan has accepted one, fastType.decode
// fills the struct directly instead of handing the bytes to
// encoding/json, which would check them again and decode by reflection
// field by field: on the ingest path that was 8% of the node's CPU. It
// declines (and encoding/json decodes) anything it does not handle
// exactly as encoding/json would: null, a number its field cannot hold, a
// slice already holding elements, a json.Unmarshaler that refuses its
// value. The result is then encoding/json's, error included.

type fastKind uint8

const (
	fastString fastKind = iota + 1
	fastInt
	fastUint
	fastFloat
	fastBool
	fastUnmarshaler // the field's pointer implements json.Unmarshaler
	fastRawSlice    // []json.RawMessage
)

type fastField struct {
	index int // in the struct's fields; promoted fields are not handled
	kind  fastKind
	bits  int // of integer and float kinds
}

// fastType is the decoding of one struct type's members; nil when the
// type is not handled.
type fastType struct {
	fields map[string]fastField
}

var (
	fastTypes       sync.Map // reflect.Type -> *fastType (nil: not handled)
	rawMessageSlice = reflect.TypeFor[[]json.RawMessage]()
)

// fastOf returns the fast decoding of t, nil if t is not a struct whose
// every member fastType.decode handles.
func fastOf(t reflect.Type) *fastType {
	if ft, ok := fastTypes.Load(t); ok {
		return ft.(*fastType)
	}
	ft := buildFast(t)
	fastTypes.Store(t, ft)
	return ft
}

func buildFast(t reflect.Type) *fastType {
	if t.Kind() != reflect.Struct || implementsDecoder(t) {
		return nil
	}
	sh := shapeOf(t)
	ft := &fastType{fields: make(map[string]fastField, len(sh.fields))}
	for _, f := range structFields(t) {
		if _, ok := sh.fields[f.name]; !ok {
			continue // the scan refuses the member
		}
		if f.depth > 0 || f.quoted {
			return nil // promoted fields and ",string": left to encoding/json
		}
		kind, bits := fastKindOf(f.typ)
		if kind == 0 {
			return nil
		}
		ft.fields[f.name] = fastField{index: f.index, kind: kind, bits: bits}
	}
	if len(ft.fields) != len(sh.fields) {
		return nil
	}
	return ft
}

func implementsDecoder(t reflect.Type) bool {
	p := reflect.PointerTo(t)
	return t.Implements(jsonUnmarshaler) || p.Implements(jsonUnmarshaler) ||
		t.Implements(textUnmarshaler) || p.Implements(textUnmarshaler)
}

func fastKindOf(t reflect.Type) (fastKind, int) {
	switch {
	case t == rawMessageSlice:
		return fastRawSlice, 0
	case reflect.PointerTo(t).Implements(jsonUnmarshaler) && !t.Implements(jsonUnmarshaler):
		return fastUnmarshaler, 0
	case implementsDecoder(t):
		return 0, 0
	}
	switch t.Kind() {
	case reflect.String:
		return fastString, 0
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return fastInt, t.Bits()
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return fastUint, t.Bits()
	case reflect.Float32, reflect.Float64:
		return fastFloat, t.Bits()
	case reflect.Bool:
		return fastBool, 0
	}
	return 0, 0
}

// decode fills rv (a struct of type ft's) from data, which the strict
// scan accepted for that type. false: it declined; rv may hold some of the
// members, which encoding/json then sets again.
func (ft *fastType) decode(data []byte, rv reflect.Value) bool {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return false
	}
	i = skipSpace(data, i+1)
	if i < len(data) && data[i] == '}' {
		return true
	}
	for i < len(data) {
		name, next, ok := stringAt(data, i)
		if !ok {
			return false
		}
		f, ok := ft.fields[string(name)]
		if !ok {
			return false
		}
		i = skipSpace(data, next)
		if i >= len(data) || data[i] != ':' {
			return false
		}
		i = skipSpace(data, i+1)
		end := skipValue(data, i)
		if end <= i || !f.set(rv.Field(f.index), data[i:end]) {
			return false
		}
		i = skipSpace(data, end)
		if i >= len(data) {
			return false
		}
		switch data[i] {
		case ',':
			i = skipSpace(data, i+1)
		case '}':
			return true
		default:
			return false
		}
	}
	return false
}

// set stores the JSON value v in the field fv, as encoding/json would.
func (f fastField) set(fv reflect.Value, v []byte) bool {
	if v[0] == 'n' {
		return false // null: encoding/json's rules differ by kind
	}
	switch f.kind {
	case fastString:
		s, next, ok := stringAt(v, 0)
		if !ok || next != len(v) {
			return false
		}
		fv.SetString(string(s))
	case fastInt:
		if !isNumber(v) {
			return false
		}
		n, err := strconv.ParseInt(string(v), 10, f.bits)
		if err != nil {
			return false
		}
		fv.SetInt(n)
	case fastUint:
		if !isNumber(v) {
			return false
		}
		n, err := strconv.ParseUint(string(v), 10, f.bits)
		if err != nil {
			return false
		}
		fv.SetUint(n)
	case fastFloat:
		if !isNumber(v) {
			return false
		}
		x, err := strconv.ParseFloat(string(v), f.bits)
		if err != nil {
			return false
		}
		fv.SetFloat(x)
	case fastBool:
		switch v[0] {
		case 't':
			fv.SetBool(true)
		case 'f':
			fv.SetBool(false)
		default:
			return false
		}
	case fastUnmarshaler:
		u, ok := fv.Addr().Interface().(json.Unmarshaler)
		if !ok || u.UnmarshalJSON(v) != nil {
			return false
		}
	case fastRawSlice:
		if v[0] != '[' || fv.Len() > 0 {
			return false
		}
		var out []json.RawMessage
		i := skipSpace(v, 1)
		if v[i] != ']' {
			for {
				end := skipValue(v, i)
				if end <= i {
					return false
				}
				out = append(out, json.RawMessage(append([]byte(nil), v[i:end]...)))
				i = skipSpace(v, end)
				if v[i] == ']' {
					break
				}
				i = skipSpace(v, i+1) // ','
			}
		}
		if out == nil {
			out = []json.RawMessage{}
		}
		fv.Set(reflect.ValueOf(out))
	default:
		return false
	}
	return true
}

func isNumber(v []byte) bool { return v[0] == '-' || v[0] >= '0' && v[0] <= '9' }

func skipSpace(data []byte, i int) int {
	for i < len(data) {
		switch data[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// stringAt returns the value of the (scanned) JSON string at data[i] and
// the index after it.
func stringAt(data []byte, i int) ([]byte, int, bool) {
	if i >= len(data) || data[i] != '"' {
		return nil, 0, false
	}
	start, escaped := i+1, false
	for j := start; j < len(data); j++ {
		switch data[j] {
		case '\\':
			escaped = true
			j++
		case '"':
			if escaped {
				return unescape(data[start:j]), j + 1, true
			}
			return data[start:j], j + 1, true
		}
	}
	return nil, 0, false
}

// skipValue returns the index just after the (scanned) JSON value starting
// at data[i].
func skipValue(data []byte, i int) int {
	if i >= len(data) {
		return i
	}
	switch data[i] {
	case '"':
		_, next, ok := stringAt(data, i)
		if !ok {
			return i
		}
		return next
	case '{', '[':
		depth := 0
		for j := i; j < len(data); j++ {
			switch data[j] {
			case '"':
				_, next, ok := stringAt(data, j)
				if !ok {
					return i
				}
				j = next - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return i
	}
	j := i
	for j < len(data) {
		switch data[j] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return j
		}
		j++
	}
	return j
}
