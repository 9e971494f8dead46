package chaincode

import (
	"strconv"
	"strings"
	"time"

	"github.com/hyperledger/fabric-chaincode-go/v2/shim"
)

// Object types of composite keys. Record keys hold JSON records; index keys
// hold indexValue. See the package documentation for the layout.
const (
	objActor            = "actor"            // [actorId] → Actor
	objDevice           = "device"           // [deviceId] → Device
	objReading          = "reading"          // [deviceId, seq20] → Reading
	objReadingHash      = "readingHash"      // [dataHash] → readingId
	objPublicKey        = "publicKey"        // [sha256(PKIX DER) hex] → "actor:<id>" | "device:<id>" | "passkey:<actorId>"
	objPasskey          = "passkey"          // [credentialId] → Passkey
	objPasskeyByActor   = "passkeyByActor"   // [actorId, credentialId]
	objRelyingParty     = "relyingParty"     // [mspId] → RelyingParty
	objReadingByPatient = "readingByPatient" // [patientId, type, YYYY-MM, measuredAt, readingId]
	objReadingMonth     = "readingMonth"     // [patientId, type, YYYY-MM]
	objConsent          = "consent"          // [consentId] → Consent
	objConsentByPatient = "consentByPatient" // [patientId, granteeId, consentId]
	objNonce            = "nonce"            // [actorId, nonce]
	objAccess           = "access"           // [accessId] → AccessEvent
	objErasure          = "erasure"          // [patientId] → Erasure
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
