package wire

import (
	"bytes"
	"encoding"
	"encoding/json"
	"reflect"
	"strings"
	"sync"
	"unicode"
)

// shapeKind is what a target type expects of a JSON value.
type shapeKind uint8

const (
	// shapeAny: any JSON value (interfaces, json.RawMessage and other
	// json.Unmarshalers, []byte); only the generic rules apply.
	shapeAny shapeKind = iota
	// shapeScalar: a string, number or bool; null refused.
	shapeScalar
	// shapeStruct: an object whose member names are exactly the fields'.
	shapeStruct
	// shapeMap: an object with any member names; values have shape elem.
	shapeMap
	// shapeArray: an array whose elements have shape elem.
	shapeArray
	// shapePointer: null, or a value of shape elem.
	shapePointer
)

// shape is what DecodeStrict expects of the JSON for one Go type.
type shape struct {
	kind     shapeKind
	nullable bool
	elem     *shape // shapeMap, shapeArray, shapePointer
	// fields maps each json member name of a struct to its field.
	fields map[string]field
	names  []string
}

type field struct {
	name  string
	index int // bit in the set of members seen, when < 64
	shape *shape
}

var (
	anyShape = &shape{kind: shapeAny, nullable: true}

	shapes   sync.Map // reflect.Type -> *shape
	shapesMu sync.Mutex

	jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// shapeOf returns the cached shape of t, deriving it on first use.
func shapeOf(t reflect.Type) *shape {
	if sh, ok := shapes.Load(t); ok {
		return sh.(*shape)
	}
	shapesMu.Lock()
	defer shapesMu.Unlock()
	building := map[reflect.Type]*shape{}
	sh := buildShape(t, building)
	for bt, bs := range building {
		shapes.LoadOrStore(bt, bs)
	}
	return sh
}

// buildShape derives the shape of t. building holds the shapes under
// construction, so recursive types terminate.
func buildShape(t reflect.Type, building map[reflect.Type]*shape) *shape {
	if sh, ok := shapes.Load(t); ok {
		return sh.(*shape)
	}
	if sh, ok := building[t]; ok {
		return sh
	}
	sh := &shape{}
	building[t] = sh
	switch {
	case t.Kind() == reflect.Pointer:
		sh.kind, sh.nullable, sh.elem = shapePointer, true, buildShape(t.Elem(), building)
		return sh
	case t.Implements(jsonUnmarshaler) || reflect.PointerTo(t).Implements(jsonUnmarshaler):
		*sh = *anyShape
		return sh
	case t.Implements(textUnmarshaler) || reflect.PointerTo(t).Implements(textUnmarshaler):
		sh.kind = shapeScalar
		return sh
	}
	switch t.Kind() {
	case reflect.Interface:
		*sh = *anyShape
	case reflect.Struct:
		sh.kind = shapeStruct
		sh.fields = map[string]field{}
		for _, f := range structFields(t) {
			if !decodes(t, f.name) {
				continue
			}
			sh.fields[f.name] = field{name: f.name, index: len(sh.names), shape: buildShape(f.typ, building)}
			sh.names = append(sh.names, f.name)
		}
	case reflect.Map:
		sh.kind, sh.nullable, sh.elem = shapeMap, true, buildShape(t.Elem(), building)
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 && !reflect.PointerTo(t.Elem()).Implements(jsonUnmarshaler) && !reflect.PointerTo(t.Elem()).Implements(textUnmarshaler) {
			*sh = *anyShape // []byte is a base64 string
			break
		}
		sh.kind, sh.nullable, sh.elem = shapeArray, true, buildShape(t.Elem(), building)
	case reflect.Array:
		sh.kind, sh.elem = shapeArray, buildShape(t.Elem(), building)
	case reflect.String, reflect.Bool,
		reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64:
		sh.kind = shapeScalar
	default: // channels, functions, complex numbers: encoding/json refuses them
		*sh = *anyShape
	}
	return sh
}

type structField struct {
	name   string
	typ    reflect.Type
	depth  int
	tagged bool
	// index is the field's index in the struct that declares it (t itself
	// at depth 0); quoted reports the ",string" option.
	index  int
	quoted bool
}

// structFields returns the fields encoding/json decodes into for struct
// type t, by its rules: exported fields by their json tag name or Go name,
// the fields of untagged embedded structs promoted, "-" skipped, and among
// fields of one name the shallowest wins (a tagged one over untagged ones
// at the same depth; otherwise the name is dropped). Where this could
// differ from encoding/json it keeps fewer names, never more.
func structFields(t reflect.Type) []structField {
	type level struct {
		t     reflect.Type
		depth int
	}
	var all []structField
	visited := map[reflect.Type]int{} // depth at which a type was explored
	next := []level{{t, 0}}
	for len(next) > 0 {
		cur := next
		next = nil
		for _, lv := range cur {
			// A type explored at a shallower depth adds nothing; one met
			// twice at the same depth adds its fields twice, so they cancel.
			if d, ok := visited[lv.t]; ok && d < lv.depth {
				continue
			}
			visited[lv.t] = lv.depth
			for i := range lv.t.NumField() {
				sf := lv.t.Field(i)
				ft := sf.Type
				if sf.Anonymous {
					if ft.Kind() == reflect.Pointer {
						ft = ft.Elem()
					}
					if !sf.IsExported() && ft.Kind() != reflect.Struct {
						continue
					}
				} else if !sf.IsExported() {
					continue
				}
				tag := sf.Tag.Get("json")
				if tag == "-" {
					continue
				}
				name, opts, _ := strings.Cut(tag, ",")
				if !validTagName(name) {
					name = ""
				}
				if name == "" && sf.Anonymous && ft.Kind() == reflect.Struct {
					next = append(next, level{ft, lv.depth + 1})
					continue
				}
				if !sf.IsExported() {
					continue
				}
				tagged := name != ""
				if !tagged {
					name = sf.Name
				}
				all = append(all, structField{name: name, typ: sf.Type, depth: lv.depth, tagged: tagged,
					index: i, quoted: strings.Contains(","+opts+",", ",string,")})
			}
		}
	}
	var out []structField
	for i := range all {
		if dominant(all, i) {
			out = append(out, all[i])
		}
	}
	return out
}

// dominant reports whether all[i] is the field encoding/json decodes its
// name into: no other field of that name is shallower, and none at its
// depth is tagged when it is not, or equally tagged.
func dominant(all []structField, i int) bool {
	f := all[i]
	for j, g := range all {
		if j == i || g.name != f.name {
			continue
		}
		if g.depth < f.depth || g.depth == f.depth && (g.tagged || !f.tagged) {
			return false
		}
	}
	return true
}

// decodes reports whether encoding/json, with unknown fields disallowed,
// decodes a member called name into a field of struct type t: the check
// that the scan never admits a member that json.Unmarshal would drop.
func decodes(t reflect.Type, name string) bool {
	key, err := json.Marshal(name)
	if err != nil {
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(append(append([]byte{'{'}, key...), ":null}"...)))
	dec.DisallowUnknownFields()
	err = dec.Decode(reflect.New(t).Interface())
	return err == nil || !strings.HasPrefix(err.Error(), "json: unknown field")
}

// validTagName mirrors encoding/json's test of a tag name.
func validTagName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		switch {
		case strings.ContainsRune("!#$%&()*+-./:;<=>?@[]^_{|}~ ", c):
		case !unicode.IsLetter(c) && !unicode.IsDigit(c):
			return false
		}
	}
	return true
}

// foldedName returns the field name that name matches only
// case-insensitively, or "".
func (sh *shape) foldedName(name []byte) string {
	for _, n := range sh.names {
		if bytes.EqualFold([]byte(n), name) {
			return n
		}
	}
	return ""
}
