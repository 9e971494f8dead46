// Package cbor reads the small, bounded subset of CBOR (RFC 8949) that
// WebAuthn puts in front of medprov: attestation objects and COSE keys.
// Definite lengths only; integers, byte and text strings, arrays, maps with
// integer or text keys (each key once), false, true, null and floats (whose
// values nothing here needs, so they read as 0). Tags, indefinite lengths
// and other simple values are refused, nesting is bounded, and no length
// may exceed the input. It uses the standard library only.
package cbor

import (
	"encoding/binary"
	"errors"
	"math"
)

// MaxDepth bounds how deeply arrays and maps may nest.
const MaxDepth = 16

// Errors of Item. Each failure wraps ErrMalformed; ErrNotShortest also
// reports an argument that a Shortest decoder refuses.
var (
	ErrMalformed   = errors.New("malformed CBOR")
	ErrNotShortest = errors.New("CBOR argument not in its shortest form")
)

func malformed(msg string) error { return errors.Join(ErrMalformed, errors.New(msg)) }

// Decoder reads items from b in order.
type Decoder struct {
	b []byte
	i int
	// Shortest refuses integer, length and count arguments not written in
	// their shortest form (CTAP2 canonical CBOR, which COSE keys follow).
	Shortest bool
}

// NewDecoder returns a decoder of b from its start.
func NewDecoder(b []byte) *Decoder { return &Decoder{b: b} }

// Offset returns how many bytes of the input the items read so far took.
func (d *Decoder) Offset() int { return d.i }

// Item decodes the next item: int64 for integers, []byte, string, []any,
// map[any]any (keys int64 or string), bool, nil or float64.
func (d *Decoder) Item() (any, error) { return d.item(0) }

func (d *Decoder) head() (major, info byte, arg uint64, err error) {
	if d.i >= len(d.b) {
		return 0, 0, 0, malformed("CBOR is truncated")
	}
	ib := d.b[d.i]
	d.i++
	major, info = ib>>5, ib&0x1f
	var size int
	switch {
	case info < 24:
		return major, info, uint64(info), nil
	case info == 24:
		size = 1
	case info == 25:
		size = 2
	case info == 26:
		size = 4
	case info == 27:
		size = 8
	default:
		return 0, 0, 0, malformed("CBOR indefinite or reserved lengths are not accepted")
	}
	if len(d.b)-d.i < size {
		return 0, 0, 0, malformed("CBOR is truncated")
	}
	var buf [8]byte
	copy(buf[8-size:], d.b[d.i:d.i+size])
	d.i += size
	arg = binary.BigEndian.Uint64(buf[:])
	if d.Shortest && major != 7 {
		if least := [...]uint64{1: 24, 2: 1 << 8, 4: 1 << 16, 8: 1 << 32}[size]; arg < least {
			return 0, 0, 0, errors.Join(ErrMalformed, ErrNotShortest)
		}
	}
	return major, info, arg, nil
}

func (d *Decoder) item(depth int) (any, error) {
	if depth > MaxDepth {
		return nil, malformed("CBOR nests too deeply")
	}
	major, info, arg, err := d.head()
	if err != nil {
		return nil, err
	}
	switch major {
	case 0, 1:
		if arg > math.MaxInt64 {
			return nil, malformed("CBOR integer out of range")
		}
		if major == 1 {
			return -1 - int64(arg), nil
		}
		return int64(arg), nil
	case 2, 3:
		if arg > uint64(len(d.b)-d.i) {
			return nil, malformed("CBOR string is truncated")
		}
		v := d.b[d.i : d.i+int(arg)]
		d.i += int(arg)
		if major == 3 {
			return string(v), nil
		}
		return v, nil
	case 4:
		if arg > uint64(len(d.b)-d.i) { // each element takes a byte at least
			return nil, malformed("CBOR array is truncated")
		}
		out := make([]any, 0, arg)
		for range arg {
			v, err := d.item(depth + 1)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	case 5:
		if arg > uint64(len(d.b)-d.i)/2 {
			return nil, malformed("CBOR map is truncated")
		}
		out := make(map[any]any, arg)
		for range arg {
			k, err := d.item(depth + 1)
			if err != nil {
				return nil, err
			}
			switch k.(type) {
			case int64, string:
			default:
				return nil, malformed("CBOR map keys must be integers or text")
			}
			if _, dup := out[k]; dup {
				return nil, malformed("CBOR map key appears twice")
			}
			v, err := d.item(depth + 1)
			if err != nil {
				return nil, err
			}
			out[k] = v
		}
		return out, nil
	case 7:
		switch {
		case info == 20:
			return false, nil
		case info == 21:
			return true, nil
		case info == 22:
			return nil, nil
		case info == 25, info == 26, info == 27:
			return float64(0), nil // a float, skipped: nothing here reads one
		}
		return nil, malformed("CBOR simple value is not accepted")
	}
	return nil, malformed("CBOR tags are not accepted")
}
