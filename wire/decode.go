package wire

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
)

// maxDepth bounds the nesting of arrays and objects DecodeStrict accepts.
// No medprov document comes near it; it keeps a hostile input from costing
// stack.
const maxDepth = 64

// The rules DecodeStrict enforces; a refusal is a *DecodeError wrapping one
// of them.
var (
	// ErrSyntax: the input is not JSON.
	ErrSyntax = errors.New("not valid JSON")
	// ErrInvalidUTF8: the input holds bytes that are not UTF-8, or a \u
	// escape of a lone surrogate (which decoders turn into U+FFFD or
	// refuse, so two parsers would read different strings).
	ErrInvalidUTF8 = errors.New("invalid UTF-8")
	// ErrDuplicateMember: a member name occurs twice in one object (after
	// unescaping), at any depth.
	ErrDuplicateMember = errors.New("duplicate member name")
	// ErrFoldedMember: a member name matches a field of the target only
	// case-insensitively ("TYPE" for "type"), which encoding/json would
	// accept.
	ErrFoldedMember = errors.New("member name differs from a field name in case")
	// ErrUnknownMember: a member name is not a field of the target.
	ErrUnknownMember = errors.New("unknown member")
	// ErrNull: null where the target is a string, number, bool or object
	// (encoding/json would keep the field's previous value).
	ErrNull = errors.New("null is not allowed here")
	// ErrNotObject: the target is an object type and the input is another
	// JSON value.
	ErrNotObject = errors.New("value must be a JSON object")
	// ErrTooDeep: arrays and objects are nested deeper than 64 levels.
	ErrTooDeep = errors.New("nested too deeply")
	// ErrTrailingData: something other than white space follows the value.
	ErrTrailingData = errors.New("data after the JSON value")
)

// DecodeError is a refusal of DecodeStrict: the rule the input broke and
// where. It never holds input values: Member is set only to a field name of
// the target type.
type DecodeError struct {
	// Offset is the byte offset in the input where the problem starts.
	Offset int64
	// Member is the target's field name involved, or "".
	Member string
	// Err is one of the rules above (ErrSyntax, ErrDuplicateMember, ...).
	Err error
}

// Error implements error.
func (e *DecodeError) Error() string { return "json: " + e.problem() }

// Unwrap returns the rule, for errors.Is.
func (e *DecodeError) Unwrap() error { return e.Err }

func (e *DecodeError) problem() string {
	if e.Member != "" {
		return fmt.Sprintf("%v (%q) at offset %d", e.Err, e.Member, e.Offset)
	}
	return fmt.Sprintf("%v at offset %d", e.Err, e.Offset)
}

// DecodeStrict decodes exactly one JSON value from data into v, a non-nil
// pointer, under medprov's one strict reading of signed bytes: any party
// that parses data with any conforming JSON library, case-sensitively, sees
// the values v receives. It refuses (with a *DecodeError) input that
//   - is not JSON, or has anything but white space after the value;
//   - holds invalid UTF-8 anywhere, or a \u escape of a lone surrogate;
//   - repeats a member name within one object, at any depth (json.RawMessage,
//     map and interface values included), names compared after unescaping;
//   - has a member whose name is not byte for byte the json name of a field
//     of the target struct: unknown members and names that match a field only
//     case-insensitively are refused (embedded structs such as ActionHeader
//     contribute their fields);
//   - has null where the target is a string, number, bool or struct, or is
//     not an object where the target is a struct;
//   - nests arrays and objects deeper than 64 levels.
//
// Input that passes is decoded by encoding/json, whose errors (wrong
// types, base64) are returned as they are. Use JSONProblem to describe any
// of these errors without echoing input. The target's field names are
// derived once per type, checked against encoding/json's own (a name it
// would not decode into a field is refused) and cached.
func DecodeStrict(data []byte, v any) error {
	rt := reflect.TypeOf(v)
	if rt == nil || rt.Kind() != reflect.Pointer || reflect.ValueOf(v).IsNil() {
		return &json.InvalidUnmarshalError{Type: rt}
	}
	if err := scan(data, rt.Elem()); err != nil {
		return err
	}
	// The flat documents of the hot path are filled directly (see
	// fastType.decode); whatever it declines goes to encoding/json.
	if ft := fastOf(rt.Elem()); ft != nil && ft.decode(data, reflect.ValueOf(v).Elem()) {
		return nil
	}
	// The scan admitted only names encoding/json maps to a field (see
	// decodes), so Unmarshal, cheaper than a Decoder, drops nothing.
	return json.Unmarshal(data, v)
}

// scan checks data strictly against the shape of type t.
func scan(data []byte, t reflect.Type) error {
	s := scanners.Get().(*scanner)
	s.data = data
	err := s.document(shapeOf(t))
	s.reset()
	scanners.Put(s)
	return err
}

// JSONProblem describes an error of DecodeStrict (or of encoding/json)
// without echoing input values, so it is safe to return to a client or
// write to a log.
func JSONProblem(err error) string {
	var de *DecodeError
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	var b64 base64.CorruptInputError
	var inv *json.InvalidUnmarshalError
	switch {
	case errors.As(err, &de):
		return de.problem()
	case errors.As(err, &syn):
		return fmt.Sprintf("syntax error at offset %d", syn.Offset)
	case errors.As(err, &typ):
		if typ.Field == "" {
			return "the value has the wrong type"
		}
		return fmt.Sprintf("field %s has the wrong type", typ.Field)
	case errors.As(err, &b64):
		return "a base64 member is malformed"
	case errors.As(err, &inv):
		return inv.Error()
	case strings.HasPrefix(err.Error(), "json: unknown field"):
		return ErrUnknownMember.Error()
	}
	// Other errors (a custom UnmarshalJSON, say) may quote the input.
	return "a value is malformed"
}
