package chaincode

import (
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hyperledger/fabric-chaincode-go/v2/shim"
)

// Object types of composite keys. Record keys hold JSON records; index keys
// hold indexValue. See the package documentation for the layout.
const (
	objActor            = "actor"            // [actorId] → Actor
	objDevice           = "device"           // [deviceId] → Device
	objReading          = "reading"          // [deviceId, seq20] → Reading
	objReadingHash      = "readingHash"      // [dataHash] → readingId
	objPublicKey        = "publicKey"        // [sha256(PKIX DER) hex] → "actor:<id>" | "device:<id>"
	objReadingByPatient = "readingByPatient" // [patientId, type, YYYY-MM, measuredAt, readingId]
	objReadingMonth     = "readingMonth"     // [patientId, type, YYYY-MM]
	objConsent          = "consent"          // [consentId] → Consent
	objConsentByPatient = "consentByPatient" // [patientId, granteeId, consentId]
	objNonce            = "nonce"            // [actorId, nonce]
	objAccess           = "access"           // [accessId] → AccessEvent
	objAccessByPatient  = "accessByPatient"  // [patientId, YYYY-MM, txTime, accessId]
	objAccessMonth      = "accessMonth"      // [patientId, YYYY-MM]
	objAccessByReading  = "accessByReading"  // [readingId, accessId]
	objAudit            = "audit"            // [txId] → AuditEvent
	objAuditBy          = "auditBy"          // [dimension, value, YYYY-MM, txTime, txId]
	objAuditMonth       = "auditMonth"       // [dimension, value, YYYY-MM]
)

// Audit index dimensions.
const (
	dimAll     = "all"
	dimPatient = "patient"
	dimActor   = "actor"
	dimType    = "type"
	allValue   = "*"
)

// indexValue is the value of every index key: PutState with an empty value
// is a delete on Fabric.
var indexValue = []byte{0}

// fixedTime is the fixed-width UTC form used in keys and records, so that
// lexical order is time order. It is valid RFC 3339.
const fixedTime = "2006-01-02T15:04:05.000000000Z"

func formatTime(t time.Time) string { return t.UTC().Format(fixedTime) }

func monthOf(t time.Time) string { return t.UTC().Format("2006-01") }

func parseTime(field, s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, invalid("%s is not an RFC 3339 time", field)
	}
	return t, nil
}

func key(stub shim.ChaincodeStubInterface, obj string, attrs ...string) (string, error) {
	return stub.CreateCompositeKey(obj, attrs)
}

func seqString(seq uint64) string {
	s := strconv.FormatUint(seq, 10)
	return strings.Repeat("0", 20-len(s)) + s
}

func readingID(deviceID string, seq uint64) string {
	return deviceID + ":" + strconv.FormatUint(seq, 10)
}

// splitReadingID splits "<deviceId>:<seq>"; device ids never hold ':'.
func splitReadingID(id string) (string, uint64, bool) {
	dev, s, ok := strings.Cut(id, ":")
	if !ok || !validID(dev) || s == "" || (len(s) > 1 && s[0] == '0') {
		return "", 0, false
	}
	seq, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return "", 0, false
	}
	return dev, seq, true
}

// validID reports whether s matches ^[A-Za-z0-9._-]{1,64}$ (actor and device
// ids).
func validID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// validToken reports whether s matches ^[a-z0-9._-]{1,64}$ (purposes, data
// types, reading types, device types, audit types).
func validToken(s string) bool {
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

// validHash reports whether s is a lower-case hex SHA-256 digest; one
// spelling per digest keeps the dataHash uniqueness check sound.
func validHash(s string) bool {
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

// validNonce reports whether s is 16..128 characters of base64, base64url or
// hex alphabets (plus '-' for UUIDs).
func validNonce(s string) bool {
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

// validCID reports whether s looks like an IPFS CID (base58 or base32 text).
func validCID(s string) bool {
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

// validUnit reports whether s is 1..32 bytes of UTF-8 without control
// characters (units such as "°C" or "mg/dL").
func validUnit(s string) bool {
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
