package wire

import (
	"encoding/base64"
	"strconv"
	"strings"
)

// Passkeys: people sign actions with a WebAuthn credential (a passkey)
// instead of a PEM key. The envelope is package envelope's Signed; this
// file holds the ledger records, the inputs of the org admin's
// transactions, and the grammar of relying-party ids and origins.

// Passkey is a WebAuthn credential registered for an actor: an ES256 key
// (P-256) the actor's authenticator holds, bound to the relying party of
// the actor's org. It authenticates the actions the actor signs with it
// (see envelope.Signed) as long as the actor is active.
type Passkey struct {
	DocType string `json:"docType"`
	// CredentialID is the credential id, base64url without padding
	// ([ValidCredentialID]): what an assertion names.
	CredentialID string `json:"credentialId"`
	ActorID      string `json:"actorId"`
	// PublicKey is the credential key as PEM "PUBLIC KEY" (PKIX, P-256),
	// converted from its COSE form at registration.
	PublicKey string `json:"publicKey"`
	// RPID is the relying party id the credential was created for (the
	// org's RelyingParty.RPID when it was registered).
	RPID string `json:"rpId"`
	// SignCount is the authenticator's signature counter as last accepted:
	// when it or an assertion's counter is non-zero, the assertion's must
	// be greater. Authenticators that keep no counter report 0 throughout.
	SignCount    uint32 `json:"signCount"`
	RegisteredTx string `json:"registeredTx"`
	RegisteredAt string `json:"registeredAt"`
}

// PasskeyCredential is a passkey as the relying party learned it from the
// registration ceremony (navigator.credentials.create): the credential id
// (base64url without padding), its public key converted from COSE to PEM
// "PUBLIC KEY" (envelope.ParseCOSEKey, then envelope.MarshalPublicKey),
// and the signature counter of the attestation's authenticator data.
type PasskeyCredential struct {
	CredentialID string `json:"credentialId"`
	PublicKey    string `json:"publicKey"`
	SignCount    uint32 `json:"signCount"`
}

// PasskeyInput adds a passkey to an existing actor: the argument of
// RegisterPasskey.
type PasskeyInput struct {
	ActorID string `json:"actorId"`
	PasskeyCredential
}

// RelyingParty is an org's WebAuthn relying party as the ledger records
// it: the rpId its members' passkeys are bound to, and the origins (web
// pages) from which their assertions are accepted.
type RelyingParty struct {
	DocType string `json:"docType"`
	// Org is the MSP ID of the org.
	Org     string   `json:"org"`
	RPID    string   `json:"rpId"`
	Origins []string `json:"origins"`
	SetTx   string   `json:"setTx"`
	SetAt   string   `json:"setAt"`
}

// RelyingPartyInput sets the relying party of the caller's org: the
// argument of SetRelyingParty. RPID satisfies [ValidRPID]; Origins holds
// 1..MaxOrigins distinct origins, each satisfying [ValidOrigin] for RPID.
type RelyingPartyInput struct {
	RPID    string   `json:"rpId"`
	Origins []string `json:"origins"`
}

// Limits of passkeys.
const (
	// MaxOrigins bounds the origins of one relying party.
	MaxOrigins = 16
	// MinCredentialIDBytes and MaxCredentialIDBytes bound a registered
	// credential id (WebAuthn: at least 16 bytes of authenticator
	// randomness, at most 1023 bytes).
	MinCredentialIDBytes = 16
	MaxCredentialIDBytes = 1023
)

// Chaincode transactions of passkeys.
const (
	// FnSetRelyingParty takes a RelyingPartyInput from an org admin
	// identity and records it as the relying party of the admin's org.
	FnSetRelyingParty = "SetRelyingParty"
	// FnRegisterPasskey takes a PasskeyInput from an org admin identity.
	FnRegisterPasskey = "RegisterPasskey"
	// FnGetRelyingParty takes an MSP ID (evaluate).
	FnGetRelyingParty = "GetRelyingParty"
	// FnGetPasskey takes a credential id (evaluate).
	FnGetPasskey = "GetPasskey"
	// FnListPasskeys takes an actor id (evaluate).
	FnListPasskeys = "ListPasskeys"
)

// Audit event types and chaincode event names of passkeys.
// RelyingPartySet carries the RelyingParty, PasskeyRegistered the Passkey.
const (
	AuditRelyingPartySet   = "relying-party.set"
	AuditPasskeyRegistered = "passkey.registered"
	EventRelyingPartySet   = "RelyingPartySet"
	EventPasskeyRegistered = "PasskeyRegistered"
)

// ValidCredentialID reports whether s is a credential id as the ledger
// stores it: canonical base64url without padding (the one text of its
// bytes) of MinCredentialIDBytes..MaxCredentialIDBytes bytes.
func ValidCredentialID(s string) bool {
	if len(s) > base64.RawURLEncoding.EncodedLen(MaxCredentialIDBytes) {
		return false
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil || len(b) < MinCredentialIDBytes {
		return false
	}
	return base64.RawURLEncoding.EncodeToString(b) == s
}

// ValidRPID reports whether s is a relying party id medprov accepts: a
// lower-case DNS name of at most 253 bytes whose labels are 1..63 of
// a-z, 0-9 and '-', not starting or ending with '-' ("localhost" and
// "portal.hospital.example" are; IP addresses, upper case and a trailing
// dot are not).
func ValidRPID(s string) bool {
	if len(s) == 0 || len(s) > 253 {
		return false
	}
	labels := strings.Split(s, ".")
	for _, l := range labels {
		if len(l) == 0 || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for i := 0; i < len(l); i++ {
			if c := l[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	// A last label of digits only would make an IPv4 address a name.
	last := labels[len(labels)-1]
	return strings.Trim(last, "0123456789") != ""
}

// ValidOrigin reports whether origin is a serialized web origin from which
// a passkey bound to rpID may sign: "https://" + host, or "http://" + host
// for localhost (a secure context without TLS), with an optional
// ":port" (1..65535, no leading zero, not the scheme's default port), and
// nothing else (no path, not even "/"). host is rpID or a subdomain of it,
// and itself a [ValidRPID] name, which is what WebAuthn requires of an
// origin using that rpId. Browsers write origins this way in
// clientDataJSON, so an allowlist of valid origins is compared byte for
// byte.
func ValidOrigin(origin, rpID string) bool {
	if !ValidRPID(rpID) {
		return false
	}
	scheme, rest, ok := strings.Cut(origin, "://")
	if !ok {
		return false
	}
	host, port, hasPort := strings.Cut(rest, ":")
	if !ValidRPID(host) || host != rpID && !strings.HasSuffix(host, "."+rpID) {
		return false
	}
	defaultPort := ""
	switch scheme {
	case "https":
		defaultPort = "443"
	case "http":
		if host != "localhost" && !strings.HasSuffix(host, ".localhost") {
			return false
		}
		defaultPort = "80"
	default:
		return false
	}
	if !hasPort {
		return true
	}
	n, err := strconv.ParseUint(port, 10, 16)
	return err == nil && n > 0 && port[0] != '0' && port != defaultPort
}
