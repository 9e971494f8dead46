package client

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/medprov/medprov/envelope"
	"github.com/medprov/medprov/wire"
)

// Passkeys: people sign with a WebAuthn credential instead of a PEM key.
// The org admin sets the relying party (SetRelyingParty) and invites a
// person (Invite); the person's browser, at the invitation's link, fetches
// creation options (EnrolmentOptions), creates the passkey and posts it
// (Enrol). From then on a client made WithPasskey signs that person's
// actions and GETs with it.

// PasskeySigner signs with a passkey: Assert runs an assertion ceremony
// (navigator.credentials.get) whose challenge is the SHA-256 of payload
// (envelope.Challenge: the authenticator signs over it, so the assertion
// binds the payload) and returns the assertion. In a browser that is the
// portal's job; in Go tests, a software authenticator's.
type PasskeySigner interface {
	Assert(ctx context.Context, payload []byte) (envelope.Assertion, error)
}

// PasskeySignerFunc adapts a function to PasskeySigner.
type PasskeySignerFunc func(ctx context.Context, payload []byte) (envelope.Assertion, error)

// Assert implements PasskeySigner.
func (f PasskeySignerFunc) Assert(ctx context.Context, payload []byte) (envelope.Assertion, error) {
	return f(ctx, payload)
}

// WithPasskey makes the client sign actions and GET requests as actor id
// with a passkey: every signed request is a passkey envelope
// {"payload","webauthn"} (or, for a GET, its base64 in
// X-Medprov-Signature). It replaces WithActor's key.
func WithPasskey(id string, p PasskeySigner) Option {
	return func(c *Client) { c.actorID, c.actorKey, c.passkey = id, nil, p }
}

// canSign reports whether the client has a key or a passkey to sign with.
func (c *Client) canSign() bool { return c.actorKey != nil || c.passkey != nil }

// sign marshals payload to JSON and signs it with the client's passkey or
// key, returning the envelope to send.
func (c *Client) sign(ctx context.Context, payload any) (any, error) {
	if c.passkey == nil {
		return SignPayload(c.actorKey, payload)
	}
	b, err := json.Marshal(payload)
	if err != nil {
		return nil, fmt.Errorf("marshal payload: %w", err)
	}
	a, err := c.passkey.Assert(ctx, b)
	if err != nil {
		return nil, fmt.Errorf("passkey assertion: %w", err)
	}
	return envelope.Signed{Payload: b, WebAuthn: &a}, nil
}

// signGet returns the X-Medprov-Signature value of a GET of pathAndQuery,
// signed with the client's passkey or key.
func (c *Client) signGet(ctx context.Context, pathAndQuery string) (string, error) {
	if c.passkey == nil {
		if c.actorKey == nil {
			return "", ErrNoActor
		}
		return SignedGetHeader(c.actorKey, c.actorID, pathAndQuery, c.now())
	}
	h, err := NewActionHeader(wire.ActionHTTPGet, c.actorID, c.now())
	if err != nil {
		return "", err
	}
	env, err := c.sign(ctx, wire.HTTPGetAction{ActionHeader: h, Method: http.MethodGet, Path: pathAndQuery})
	if err != nil {
		return "", err
	}
	b, err := json.Marshal(env)
	if err != nil {
		return "", fmt.Errorf("marshal envelope: %w", err)
	}
	return base64.StdEncoding.EncodeToString(b), nil
}

// SetRelyingParty records the WebAuthn relying party of the gateway's org
// with the admin token (PUT /v1/admin/relying-party): the rpId its
// members' passkeys are bound to (a lower-case DNS name, e.g. "localhost"
// or "portal.hospital.example") and the origins their ceremonies may run
// on (https://host[:port], http only for localhost). Setting it again
// replaces it; passkeys bound to another rpId stop authenticating.
func (c *Client) SetRelyingParty(ctx context.Context, rpID string, origins []string) (*wire.RelyingParty, error) {
	var out wire.RelyingParty
	body := wire.RelyingPartyInput{RPID: rpID, Origins: origins}
	if _, err := c.do(ctx, request{method: http.MethodPut, path: "/v1/admin/relying-party", body: body, admin: true}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Invite creates a one-time invitation with the admin token (POST
// /v1/invites): whoever opens its link (Invite.URL, or Invite.Path on
// the gateway's public URL) before it expires may enrol a passkey as actor
// r.ID in role r.Role, once. r.TTL is a duration such as "72h" (empty:
// the gateway's default). The token is a secret: hand the link to the
// person only.
func (c *Client) Invite(ctx context.Context, r wire.InviteRequest) (*wire.Invite, error) {
	var out wire.Invite
	if _, err := c.do(ctx, request{method: http.MethodPost, path: "/v1/invites", body: r, admin: true}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// EnrolmentOptions asks for the creation options of an invitation's
// registration ceremony (POST /v1/enrol/{token}/options), with a fresh
// challenge valid once. An unknown, expired or used token is ErrNotFound.
func (c *Client) EnrolmentOptions(ctx context.Context, token string) (*wire.CreationOptions, error) {
	var out wire.CreationOptions
	if _, err := c.do(ctx, request{method: http.MethodPost, path: "/v1/enrol/" + seg(token) + "/options"}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Enrol posts the response of the registration ceremony (POST
// /v1/enrol/{token}): on success the invited actor is on the ledger with
// the new passkey as its credential, and the invitation is used up. A
// ceremony that does not match the invitation's challenge, the relying
// party or its user-verification requirement is ErrUnauthenticated; a
// new attempt needs new options.
func (c *Client) Enrol(ctx context.Context, token string, r wire.EnrolmentRequest) (*wire.EnrolmentReceipt, error) {
	var out wire.EnrolmentReceipt
	if _, err := c.do(ctx, request{method: http.MethodPost, path: "/v1/enrol/" + seg(token), body: r}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Registration is the response of a registration ceremony
// (navigator.credentials.create) in bytes.
type Registration struct {
	CredentialID      []byte
	ClientDataJSON    []byte
	AttestationObject []byte
}

// EnrolmentRequest returns r as the body Enrol sends (base64url).
func (r Registration) EnrolmentRequest() (wire.EnrolmentRequest, error) {
	if len(r.CredentialID) == 0 || len(r.ClientDataJSON) == 0 || len(r.AttestationObject) == 0 {
		return wire.EnrolmentRequest{}, errors.New("registration needs a credential id, clientDataJSON and an attestation object")
	}
	enc := base64.RawURLEncoding.EncodeToString
	return wire.EnrolmentRequest{CredentialID: enc(r.CredentialID), ClientDataJSON: enc(r.ClientDataJSON), AttestationObject: enc(r.AttestationObject)}, nil
}
