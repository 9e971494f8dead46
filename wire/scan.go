package wire

import (
	"bytes"
	"sync"
	"unicode/utf8"
)

// scanner checks one document in one pass; it is pooled so that a check
// allocates nothing for documents without escaped member names.
type scanner struct {
	data []byte
	pos  int
	// names are the member names of the objects being scanned, innermost
	// last; they alias data unless unescaped. used is the most names held.
	names [][]byte
	used  int
}

var scanners = sync.Pool{New: func() any { return &scanner{names: make([][]byte, 0, 32)} }}

// reset drops the references to the document before the scanner is pooled.
func (s *scanner) reset() {
	if cap(s.names) > 1024 {
		s.names = make([][]byte, 0, 32)
	} else {
		clear(s.names[:s.used])
	}
	s.names, s.used = s.names[:0], 0
	s.data, s.pos = nil, 0
}

func (s *scanner) fail(at int, err error, member string) error {
	return &DecodeError{Offset: int64(at), Member: member, Err: err}
}

// document checks the whole input against sh.
func (s *scanner) document(sh *shape) error {
	s.space()
	for sh.kind == shapePointer {
		sh = sh.elem
	}
	if sh.kind == shapeStruct && (s.pos >= len(s.data) || s.data[s.pos] != '{') {
		if s.pos < len(s.data) && s.data[s.pos] >= utf8.RuneSelf {
			return s.syntaxOrUTF8()
		}
		return s.fail(s.pos, ErrNotObject, "")
	}
	if err := s.value(sh, "", 0); err != nil {
		return err
	}
	s.space()
	if s.pos < len(s.data) {
		return s.fail(s.pos, ErrTrailingData, "")
	}
	return nil
}

func (s *scanner) space() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// value checks one value of shape sh; member names the field it fills.
func (s *scanner) value(sh *shape, member string, depth int) error {
	nullable := sh.nullable
	for sh.kind == shapePointer {
		sh = sh.elem
	}
	s.space()
	if s.pos >= len(s.data) {
		return s.fail(s.pos, ErrSyntax, "")
	}
	switch c := s.data[s.pos]; {
	case c == '{':
		if depth >= maxDepth {
			return s.fail(s.pos, ErrTooDeep, "")
		}
		return s.object(sh, depth+1)
	case c == '[':
		if depth >= maxDepth {
			return s.fail(s.pos, ErrTooDeep, "")
		}
		return s.array(sh, depth+1)
	case c == '"':
		_, err := s.str(false)
		return err
	case c == 'n':
		if !nullable {
			return s.fail(s.pos, ErrNull, member)
		}
		return s.literal("null")
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == '-' || c >= '0' && c <= '9':
		return s.number()
	}
	return s.syntaxOrUTF8()
}

// smallObject is the member count up to which duplicates are found by
// comparing names pairwise rather than with a map.
const smallObject = 16

func (s *scanner) object(sh *shape, depth int) error {
	s.pos++ // '{'
	base := len(s.names)
	var seen uint64             // struct fields seen, by index
	var set map[string]struct{} // names of a large object
	s.space()
	if s.pos < len(s.data) && s.data[s.pos] == '}' {
		s.pos++
		return nil
	}
	for {
		s.space()
		if s.pos >= len(s.data) || s.data[s.pos] != '"' {
			return s.syntaxOrUTF8()
		}
		at := s.pos
		name, err := s.str(true)
		if err != nil {
			return err
		}
		child, member := anyShape, ""
		switch sh.kind {
		case shapeStruct:
			f, ok := sh.fields[string(name)]
			if !ok {
				if n := sh.foldedName(name); n != "" {
					return s.fail(at, ErrFoldedMember, n)
				}
				return s.fail(at, ErrUnknownMember, "")
			}
			child, member = f.shape, f.name
			if f.index < 64 {
				if seen&(1<<f.index) != 0 {
					return s.fail(at, ErrDuplicateMember, f.name)
				}
				seen |= 1 << f.index
				break
			}
			if s.duplicate(base, name, &set) {
				return s.fail(at, ErrDuplicateMember, f.name)
			}
		case shapeMap:
			child = sh.elem
			fallthrough
		default:
			if s.duplicate(base, name, &set) {
				return s.fail(at, ErrDuplicateMember, "")
			}
		}
		s.space()
		if s.pos >= len(s.data) || s.data[s.pos] != ':' {
			return s.syntaxOrUTF8()
		}
		s.pos++
		if err := s.value(child, member, depth); err != nil {
			return err
		}
		s.space()
		if s.pos < len(s.data) {
			switch s.data[s.pos] {
			case ',':
				s.pos++
				continue
			case '}':
				s.pos++
				s.names = s.names[:base]
				return nil
			}
		}
		return s.syntaxOrUTF8()
	}
}

// duplicate reports whether name was already seen in the object whose
// names start at s.names[base], and records it. Past smallObject names the
// object's names move into *set.
func (s *scanner) duplicate(base int, name []byte, set *map[string]struct{}) bool {
	if *set != nil {
		if _, ok := (*set)[string(name)]; ok {
			return true
		}
		(*set)[string(name)] = struct{}{}
		return false
	}
	for _, n := range s.names[base:] {
		if bytes.Equal(n, name) {
			return true
		}
	}
	s.names = append(s.names, name)
	s.used = max(s.used, len(s.names))
	if len(s.names)-base > smallObject {
		*set = make(map[string]struct{}, 2*smallObject)
		for _, n := range s.names[base:] {
			(*set)[string(n)] = struct{}{}
		}
		clear(s.names[base:])
		s.names = s.names[:base]
	}
	return false
}

func (s *scanner) array(sh *shape, depth int) error {
	s.pos++ // '['
	elem := anyShape
	if sh.kind == shapeArray {
		elem = sh.elem
	}
	s.space()
	if s.pos < len(s.data) && s.data[s.pos] == ']' {
		s.pos++
		return nil
	}
	for {
		if err := s.value(elem, "", depth); err != nil {
			return err
		}
		s.space()
		if s.pos < len(s.data) {
			switch s.data[s.pos] {
			case ',':
				s.pos++
				continue
			case ']':
				s.pos++
				return nil
			}
		}
		return s.syntaxOrUTF8()
	}
}

// syntaxOrUTF8 refuses the byte at s.pos, saying invalid UTF-8 if it
// starts a byte sequence that is not UTF-8.
func (s *scanner) syntaxOrUTF8() error {
	if s.pos < len(s.data) && s.data[s.pos] >= utf8.RuneSelf {
		if r, n := utf8.DecodeRune(s.data[s.pos:]); r == utf8.RuneError && n <= 1 {
			return s.fail(s.pos, ErrInvalidUTF8, "")
		}
	}
	return s.fail(s.pos, ErrSyntax, "")
}

func (s *scanner) literal(lit string) error {
	if !bytes.HasPrefix(s.data[s.pos:], []byte(lit)) {
		return s.fail(s.pos, ErrSyntax, "")
	}
	s.pos += len(lit)
	return nil
}

// number checks a JSON number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *scanner) number() error {
	d, i := s.data, s.pos
	if d[i] == '-' {
		i++
	}
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case i < len(d) && d[i] >= '1' && d[i] <= '9':
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	default:
		return s.fail(i, ErrSyntax, "")
	}
	if i < len(d) && d[i] == '.' {
		i++
		if i >= len(d) || d[i] < '0' || d[i] > '9' {
			return s.fail(i, ErrSyntax, "")
		}
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		if i >= len(d) || d[i] < '0' || d[i] > '9' {
			return s.fail(i, ErrSyntax, "")
		}
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	}
	s.pos = i
	return nil
}

// str checks the string at s.pos (its opening quote) and moves past it.
// With name set it returns the string's value: a slice of the input, or a
// fresh unescaped copy if the string holds escapes.
func (s *scanner) str(name bool) ([]byte, error) {
	d := s.data
	start := s.pos + 1
	escaped := false
	for i := start; i < len(d); {
		c := d[i]
		switch {
		case c == '"':
			s.pos = i + 1
			if !name {
				return nil, nil
			}
			if escaped {
				return unescape(d[start:i]), nil
			}
			return d[start:i], nil
		case c == '\\':
			n, err := escapeLen(d[i:])
			if err != nil {
				return nil, s.fail(i, err, "")
			}
			escaped = true
			i += n
		case c < 0x20:
			return nil, s.fail(i, ErrSyntax, "")
		case c < utf8.RuneSelf:
			i++
		default:
			r, n := utf8.DecodeRune(d[i:])
			if r == utf8.RuneError && n == 1 {
				return nil, s.fail(i, ErrInvalidUTF8, "")
			}
			i += n
		}
	}
	return nil, s.fail(len(d), ErrSyntax, "")
}

// escapeLen returns the length of the escape sequence at the start of b
// (a backslash): 2, 6, or 12 for a surrogate pair.
func escapeLen(b []byte) (int, error) {
	if len(b) < 2 {
		return 0, ErrSyntax
	}
	switch b[1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		return 2, nil
	case 'u':
	default:
		return 0, ErrSyntax
	}
	r, ok := hex4(b[2:])
	switch {
	case !ok:
		return 0, ErrSyntax
	case r >= 0xdc00 && r < 0xe000:
		return 0, ErrInvalidUTF8
	case r < 0xd800 || r >= 0xe000:
		return 6, nil
	}
	if len(b) < 12 || b[6] != '\\' || b[7] != 'u' {
		return 0, ErrInvalidUTF8
	}
	if lo, ok := hex4(b[8:]); !ok || lo < 0xdc00 || lo >= 0xe000 {
		return 0, ErrInvalidUTF8
	}
	return 12, nil
}

func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// unescape returns the value of string contents b, already checked by str.
func unescape(b []byte) []byte {
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); {
		if b[i] != '\\' {
			out = append(out, b[i])
			i++
			continue
		}
		switch b[i+1] {
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, _ := hex4(b[i+2:])
			if r >= 0xd800 && r < 0xdc00 {
				lo, _ := hex4(b[i+8:])
				out = utf8.AppendRune(out, 0x10000+((r-0xd800)<<10|(lo-0xdc00)))
				i += 12
				continue
			}
			out = utf8.AppendRune(out, r)
			i += 6
			continue
		default: // '"', '\\', '/'
			out = append(out, b[i+1])
		}
		i += 2
	}
	return out
}
