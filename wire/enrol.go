package wire

import "time"

// Enrolment by invitation: the org admin invites a person (POST
// /v1/invites), who opens the one-time link and creates a passkey there
// (POST /v1/enrol/{token}/options, then POST /v1/enrol/{token}); the
// gateway checks the registration ceremony and registers the person as an
// actor whose only credential is that passkey. The relying party is the
// org's, as the ledger records it (RelyingPartyInput is the body of PUT
// /v1/admin/relying-party).

// InviteRequest is the body of POST /v1/invites: who the invitation
// enrols and how long it stays valid. TTL is a Go duration ("72h", "30m");
// empty means DefaultInviteTTL; it must lie within MinInviteTTL and
// MaxInviteTTL.
type InviteRequest struct {
	ID   string `json:"id"`
	Role string `json:"role"`
	TTL  string `json:"ttl,omitempty"`
}

// Invite answers POST /v1/invites (201). Token is the invitation's secret
// (base64url of InviteTokenBytes random bytes): it is shown once, the
// gateway keeps only its hash. Path is the enrolment page of the portal,
// "/enrol/<token>"; URL is Path under the gateway's public URL, when the
// gateway knows it. Whoever holds the token may enrol as ActorID until
// ExpiresAt (RFC 3339), once.
type Invite struct {
	ActorID   string `json:"actorId"`
	Role      string `json:"role"`
	Token     string `json:"token"`
	Path      string `json:"path"`
	URL       string `json:"url,omitempty"`
	ExpiresAt string `json:"expiresAt"`
}

// Limits of invitations.
const (
	// InviteTokenBytes is the number of random bytes of an invitation
	// token.
	InviteTokenBytes = 32
	// DefaultInviteTTL, MinInviteTTL and MaxInviteTTL bound how long an
	// invitation stays valid.
	DefaultInviteTTL = 72 * time.Hour
	MinInviteTTL     = 5 * time.Minute
	MaxInviteTTL     = 30 * 24 * time.Hour
	// EnrolmentTimeout is how long a creation challenge stays valid: the
	// timeout of the registration ceremony.
	EnrolmentTimeout = 5 * time.Minute
)

// EnrolPathPrefix is the path of the portal's enrolment pages; an
// invitation's link is EnrolPathPrefix + token.
const EnrolPathPrefix = "/enrol/"

// CreationOptions answers POST /v1/enrol/{token}/options: the WebAuthn
// PublicKeyCredentialCreationOptions of the registration ceremony in their
// JSON form (binary members in base64url without padding), which a page
// passes to PublicKeyCredential.parseCreationOptionsFromJSON and then to
// navigator.credentials.create. Challenge is fresh and valid once, for
// EnrolmentTimeout.
type CreationOptions struct {
	Challenge              string                 `json:"challenge"`
	RP                     RPEntity               `json:"rp"`
	User                   UserEntity             `json:"user"`
	PubKeyCredParams       []CredentialParameter  `json:"pubKeyCredParams"`
	AuthenticatorSelection AuthenticatorSelection `json:"authenticatorSelection"`
	// Timeout is in milliseconds.
	Timeout     int64  `json:"timeout"`
	Attestation string `json:"attestation"`
}

// RPEntity is the relying party of a registration ceremony.
type RPEntity struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// UserEntity is the account a passkey is created for: ID is a random user
// handle (base64url), Name and DisplayName the actor id.
type UserEntity struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	DisplayName string `json:"displayName"`
}

// CredentialParameter is an accepted credential type and COSE algorithm.
type CredentialParameter struct {
	Type string `json:"type"`
	Alg  int    `json:"alg"`
}

// AuthenticatorSelection states what the authenticator must do.
type AuthenticatorSelection struct {
	ResidentKey        string `json:"residentKey"`
	RequireResidentKey bool   `json:"requireResidentKey"`
	UserVerification   string `json:"userVerification"`
}

// COSEAlgES256 is the COSE algorithm of ES256 (ECDSA P-256 with SHA-256),
// the only one medprov accepts.
const COSEAlgES256 = -7

// EnrolmentRequest is the body of POST /v1/enrol/{token}: the response of
// navigator.credentials.create, every member base64url without padding.
type EnrolmentRequest struct {
	CredentialID      string `json:"credentialId"`
	ClientDataJSON    string `json:"clientDataJSON"`
	AttestationObject string `json:"attestationObject"`
}

// EnrolmentReceipt answers POST /v1/enrol/{token} (201): the actor as
// registered with its passkey, and the transaction that registered both.
type EnrolmentReceipt struct {
	ActorID      string `json:"actorId"`
	CredentialID string `json:"credentialId"`
	TxID         string `json:"txId"`
	Block        uint64 `json:"block"`
	Actor        Actor  `json:"actor"`
}

// InvitationStatus answers GET /v1/enrol/{token} for a live invitation:
// whom it enrols, in which role, until when. The enrolment page shows it
// before the person creates a passkey; a used or expired token is 404.
type InvitationStatus struct {
	ActorID   string `json:"actorId"`
	Role      string `json:"role"`
	ExpiresAt string `json:"expiresAt"`
}
