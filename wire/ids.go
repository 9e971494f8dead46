package wire

import (
	"encoding/base64"
	"strconv"
	"strings"
	"unicode/utf8"
)

// IDPattern is the grammar of actor, device, consent and access ids, as
// ValidID checks it; messages quote it.
const IDPattern = `^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`

// ValidID reports whether s is an actor or device id (and the grammar of
// every other ledger id): 1 to 64 ASCII letters, digits, '.', '_' and '-',
// starting with a letter or a digit ([IDPattern]). So no id is "." or ".."
// or any other run of punctuation, none reads as a path segment or a
// command-line flag, and ids never hold ':', which separates a reading id's
// device from its seq.
func ValidID(s string) bool {
	if len(s) == 0 || len(s) > 64 || !alnum(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !alnum(c) && c != '.' && c != '_' && c != '-' {
			return false
		}
	}
	return true
}

func alnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// ValidToken reports whether s is a lower-case token: ^[a-z0-9._-]{1,64}$
// (reading types, device types, purposes, data types, audit types).
func ValidToken(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// ValidUnit reports whether s is a unit: 1..32 bytes of UTF-8 without
// control characters ("bpm", "mg/dL", "°C").
func ValidUnit(s string) bool {
	if len(s) == 0 || len(s) > 32 || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == utf8.RuneError {
			return false
		}
	}
	return true
}

// ValidHash reports whether s is a lower-case hex SHA-256 digest; one
// spelling per digest keeps uniqueness checks on hashes sound.
func ValidHash(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// ValidNonce reports whether s is an action nonce: 16..128 characters of
// the base64, base64url or hex alphabets (which includes UUIDs).
func ValidNonce(s string) bool {
	if len(s) < 16 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '+' || c == '/' || c == '=' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// ValidReadingNonce reports whether s is a reading's nonce: standard base64
// of at least NonceBytes bytes.
func ValidReadingNonce(s string) bool {
	b, err := base64.StdEncoding.DecodeString(s)
	return err == nil && len(b) >= NonceBytes
}

// ValidCID reports whether s looks like an IPFS CID (base58 or base32 text).
func ValidCID(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// ReadingID returns the ledger id of a device's reading: "<deviceId>:<seq>".
func ReadingID(deviceID string, seq uint64) string {
	return deviceID + ":" + strconv.FormatUint(seq, 10)
}

// SplitReadingID splits a reading id into its device id and seq. It reports
// false unless id is exactly what ReadingID returns for a valid device id.
func SplitReadingID(id string) (deviceID string, seq uint64, ok bool) {
	dev, s, ok := strings.Cut(id, ":")
	if !ok || !ValidID(dev) || s == "" || (len(s) > 1 && s[0] == '0') {
		return "", 0, false
	}
	seq, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return "", 0, false
	}
	return dev, seq, true
}
