package gateway

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/medprov/medprov/envelope"
	"github.com/medprov/medprov/internal/cbor"
	"github.com/medprov/medprov/wire"
)

// The registration ceremony of an enrolment (navigator.credentials.create):
// what the gateway checks before the ledger registers a passkey. The
// ledger registers a key, not a device make, so "none" attestation (what
// browsers send when the relying party asks for none) and packed self
// attestation are accepted and nothing else is needed.

// clientDataCreate is the clientDataJSON type of a registration.
const clientDataCreate = "webauthn.create"

// registration is a registration ceremony's response, decoded.
type registration struct {
	CredentialID      []byte
	ClientDataJSON    []byte
	AttestationObject []byte
}

// decodeRegistration decodes the base64url members of an enrolment body.
func decodeRegistration(in wire.EnrolmentRequest) (registration, error) {
	var r registration
	for _, f := range []struct {
		name string
		text string
		dst  *[]byte
	}{
		{"credentialId", in.CredentialID, &r.CredentialID},
		{"clientDataJSON", in.ClientDataJSON, &r.ClientDataJSON},
		{"attestationObject", in.AttestationObject, &r.AttestationObject},
	} {
		b, err := base64.RawURLEncoding.Strict().DecodeString(f.text)
		if err != nil || len(b) == 0 {
			return registration{}, badRequest("%s must be base64url without padding", f.name)
		}
		*f.dst = b
	}
	return r, nil
}

// ceremonyRefused answers a registration that is well-formed but not what
// this invitation asked for: 401, charged to the client's address.
func ceremonyRefused(format string, args ...any) *apiError {
	return &apiError{Code: wire.CodeUnauthenticated, Message: "registration refused: " + fmt.Sprintf(format, args...), cause: errBadSignature}
}

// verifyRegistration checks a registration ceremony for relying party rp
// and the challenge the invitation issued, in this order: clientDataJSON
// (strict JSON, envelope.ParseClientData) has type webauthn.create, the
// challenge, an allowed origin and no cross-origin frame; the attestation
// object is CBOR {fmt, attStmt, authData}; authData names rp's rpIdHash,
// has UP and UV set and carries attested credential data whose credential
// id is the one sent and whose key is an ES256 P-256 COSE key
// (envelope.ParseCOSEKey); the attestation statement is "none" (empty) or
// packed self attestation (ES256, no certificate) whose signature verifies
// under that key. A malformed response is invalid (400); one that fails a
// check is ceremonyRefused (401). It returns the credential as the ledger
// registers it.
func verifyRegistration(rp envelope.RelyingParty, challenge []byte, r registration) (wire.PasskeyCredential, error) {
	cd, err := envelope.ParseClientData(r.ClientDataJSON)
	if err != nil {
		return wire.PasskeyCredential{}, badRequest("malformed registration: %v", err)
	}
	if cd.Type != clientDataCreate {
		return wire.PasskeyCredential{}, ceremonyRefused("clientDataJSON type is not %s", clientDataCreate)
	}
	want := base64.RawURLEncoding.EncodeToString(challenge)
	if len(challenge) == 0 || subtle.ConstantTimeCompare([]byte(cd.Challenge), []byte(want)) != 1 {
		return wire.PasskeyCredential{}, ceremonyRefused("challenge is not the one issued for this invitation")
	}
	if !slices.Contains(rp.Origins, cd.Origin) {
		return wire.PasskeyCredential{}, ceremonyRefused("origin is not allowed")
	}
	if cd.CrossOrigin {
		return wire.PasskeyCredential{}, ceremonyRefused("the passkey was created in a cross-origin frame")
	}
	att, err := parseAttestationObject(r.AttestationObject)
	if err != nil {
		return wire.PasskeyCredential{}, badRequest("malformed registration: %v", err)
	}
	ad, err := parseAttestedAuthData(att.authData)
	if err != nil {
		return wire.PasskeyCredential{}, badRequest("malformed registration: %v", err)
	}
	if ad.rpIDHash != sha256.Sum256([]byte(rp.ID)) {
		return wire.PasskeyCredential{}, ceremonyRefused("authenticator data is for another relying party")
	}
	if ad.flags&envelope.FlagUserPresent == 0 {
		return wire.PasskeyCredential{}, ceremonyRefused("user presence flag (UP) is not set")
	}
	if ad.flags&envelope.FlagUserVerified == 0 {
		return wire.PasskeyCredential{}, ceremonyRefused("user verification flag (UV) is not set: the authenticator must verify the user")
	}
	if !bytes.Equal(ad.credentialID, r.CredentialID) {
		return wire.PasskeyCredential{}, badRequest("credentialId is not the credential the authenticator attested")
	}
	id := base64.RawURLEncoding.EncodeToString(ad.credentialID)
	if !wire.ValidCredentialID(id) {
		return wire.PasskeyCredential{}, badRequest("the credential id must be %d..%d bytes", wire.MinCredentialIDBytes, wire.MaxCredentialIDBytes)
	}
	pub, err := envelope.ParseCOSEKey(ad.coseKey)
	if err != nil {
		return wire.PasskeyCredential{}, badRequest("the credential key must be ES256 (ECDSA P-256): %v", err)
	}
	if err := checkAttestationStatement(att, r.ClientDataJSON, pub); err != nil {
		return wire.PasskeyCredential{}, err
	}
	pemKey, err := envelope.MarshalPublicKey(pub)
	if err != nil {
		return wire.PasskeyCredential{}, err
	}
	return wire.PasskeyCredential{CredentialID: id, PublicKey: string(pemKey), SignCount: ad.signCount}, nil
}

// checkAttestationStatement accepts "none" with an empty statement, and
// packed self attestation: {alg: -7, sig} without x5c, sig an ES256
// signature of authData || SHA-256(clientDataJSON) by the credential key.
func checkAttestationStatement(att attestationObject, clientDataJSON []byte, pub *ecdsa.PublicKey) error {
	switch att.format {
	case "none":
		if len(att.statement) != 0 {
			return badRequest(`malformed registration: a "none" attestation carries an empty statement`)
		}
		return nil
	case "packed":
		alg, okAlg := att.statement["alg"].(int64)
		sig, okSig := att.statement["sig"].([]byte)
		if _, x5c := att.statement["x5c"]; x5c || !okAlg || !okSig || len(att.statement) != 2 {
			return badRequest(`attestation must be "none" or packed self attestation (ask for attestation "none")`)
		}
		if alg != wire.COSEAlgES256 {
			return badRequest("packed self attestation must use ES256")
		}
		if envelope.VerifyDigest(pub, envelope.AssertionDigest(att.authData, clientDataJSON), sig) != nil {
			return ceremonyRefused("the self attestation signature does not verify")
		}
		return nil
	}
	return badRequest(`attestation must be "none" or packed self attestation (ask for attestation "none")`)
}

// attestationObject is a registration's CBOR attestation object.
type attestationObject struct {
	format    string
	statement map[any]any
	authData  []byte
}

// parseAttestationObject reads the CBOR map {"fmt": text, "attStmt": map,
// "authData": bytes}, those three members exactly, and nothing after it.
func parseAttestationObject(b []byte) (attestationObject, error) {
	d := cbor.NewDecoder(b)
	v, err := d.Item()
	if err != nil {
		return attestationObject{}, fmt.Errorf("attestationObject: %w", err)
	}
	if d.Offset() != len(b) {
		return attestationObject{}, errors.New("attestationObject: data after the CBOR map")
	}
	m, ok := v.(map[any]any)
	if !ok || len(m) != 3 {
		return attestationObject{}, errors.New("attestationObject must be a CBOR map of fmt, attStmt and authData")
	}
	var att attestationObject
	var okFmt, okStmt, okData bool
	att.format, okFmt = m["fmt"].(string)
	att.statement, okStmt = m["attStmt"].(map[any]any)
	att.authData, okData = m["authData"].([]byte)
	if !okFmt || !okStmt || !okData {
		return attestationObject{}, errors.New("attestationObject must be a CBOR map of fmt (text), attStmt (map) and authData (bytes)")
	}
	return att, nil
}

// attestedAuthData is a registration's authenticator data.
type attestedAuthData struct {
	rpIDHash     [sha256.Size]byte
	flags        byte
	signCount    uint32
	credentialID []byte
	coseKey      []byte
}

// parseAttestedAuthData reads rpIdHash (32 bytes), flags, signCount (4),
// and the attested credential data the AT flag announces: AAGUID (16),
// credential id length (2), credential id, COSE key (one CBOR item); then,
// if the ED flag is set, one CBOR map of extension outputs; nothing after.
func parseAttestedAuthData(b []byte) (attestedAuthData, error) {
	const head = sha256.Size + 1 + 4
	if len(b) < head+16+2 {
		return attestedAuthData{}, errors.New("authData is too short for attested credential data")
	}
	var ad attestedAuthData
	copy(ad.rpIDHash[:], b)
	ad.flags = b[sha256.Size]
	ad.signCount = binary.BigEndian.Uint32(b[sha256.Size+1:])
	if ad.flags&envelope.FlagAttestedData == 0 {
		return attestedAuthData{}, errors.New("authData carries no attested credential data (AT flag)")
	}
	i := head + 16 // after the AAGUID
	n := int(binary.BigEndian.Uint16(b[i:]))
	i += 2
	if n > len(b)-i {
		return attestedAuthData{}, errors.New("authData credential id is truncated")
	}
	ad.credentialID = b[i : i+n]
	i += n
	d := cbor.NewDecoder(b[i:])
	if _, err := d.Item(); err != nil {
		return attestedAuthData{}, fmt.Errorf("authData credential key: %w", err)
	}
	ad.coseKey = b[i : i+d.Offset()]
	if ad.flags&envelope.FlagExtensionData != 0 {
		ext, err := d.Item()
		if err != nil {
			return attestedAuthData{}, fmt.Errorf("authData extensions: %w", err)
		}
		if _, ok := ext.(map[any]any); !ok {
			return attestedAuthData{}, errors.New("authData extensions must be a CBOR map")
		}
	}
	if i+d.Offset() != len(b) {
		return attestedAuthData{}, errors.New("authData has trailing bytes")
	}
	return ad, nil
}
