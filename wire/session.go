package wire

import "time"

// Portal sessions. A person signs in to the portal with a passkey: the
// gateway issues a session.start payload (SessionOptions), the browser
// signs it with navigator.credentials.get (challenge = SHA-256(payload),
// like every passkey-signed action), and POST /v1/session exchanges the
// passkey envelope {payload, webauthn} for a session cookie. The cookie authenticates reads (the
// routes a signed GET authenticates, with the same authorisation); every
// action is still signed by the passkey, one user gesture each.

// ActionSessionStart is the action of a sign-in payload. The ledger never
// sees it: no chaincode function accepts it, so a sign-in assertion cannot
// be replayed as an action.
const ActionSessionStart = "session.start"

// SessionCookie is the name of the portal's session cookie (HttpOnly,
// Secure, SameSite=Strict, Path=/).
const SessionCookie = "medprov_session"

// Session lifetimes: a session ends after SessionIdle without use, and
// SessionMaxAge after sign-in in any case. Sign-in options expire after
// SessionChallengeTTL.
const (
	SessionIdle         = 30 * time.Minute
	SessionMaxAge       = 12 * time.Hour
	SessionChallengeTTL = 2 * time.Minute
)

// SessionStartAction is the payload a passkey signs to sign in: it names
// no actor (the credential does) and is issued by the gateway, once.
type SessionStartAction struct {
	Action   string `json:"action"`
	IssuedAt string `json:"issuedAt"`
	Nonce    string `json:"nonce"`
}

// SessionOptions answers POST /v1/session/options: the payload to sign
// (base64 of its exact bytes) and what navigator.credentials.get takes
// (challenge = base64url(SHA-256(payload)), without padding). AllowCredentials
// is empty: the authenticator offers the passkeys it holds for RPID.
type SessionOptions struct {
	Payload          []byte `json:"payload"`
	Challenge        string `json:"challenge"`
	RPID             string `json:"rpId"`
	Timeout          int64  `json:"timeout"`
	UserVerification string `json:"userVerification"`
}

// Session answers POST /v1/session (201) and GET /v1/session (200): who
// is signed in, when the session ends at the latest, and the credential
// ids of the actor's passkeys, the allowCredentials of the assertions
// that sign its actions.
type Session struct {
	ActorID     string   `json:"actorId"`
	Role        string   `json:"role"`
	Org         string   `json:"org"`
	ExpiresAt   string   `json:"expiresAt"`
	Credentials []string `json:"credentials"`
}
