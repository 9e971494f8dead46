package browser

import (
	"github.com/chromedp/cdproto/webauthn"
)

// Authenticator is a DevTools virtual authenticator attached to one page: a
// platform passkey provider (CTAP2, internal transport, resident keys, user
// verification) that answers navigator.credentials.create and .get at once,
// with no dialog, and whose credentials the test can read.
type Authenticator struct {
	// ID is the authenticator's DevTools id.
	ID webauthn.AuthenticatorID
	p  *Page
}

// VirtualAuthenticator enables the WebAuthn domain of the page's tab and adds
// a virtual authenticator to it: ctap2 (2.1), internal transport, resident
// keys, user verification supported and succeeding, user presence simulated.
// It lives as long as the tab, across navigations.
func (p *Page) VirtualAuthenticator() *Authenticator {
	p.tb.Helper()
	call(p, webauthn.Enable, webauthn.EnableParams{EnableUI: new(false)})
	res := call(p, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{
		Options: &webauthn.VirtualAuthenticatorOptions{
			Protocol:                    webauthn.AuthenticatorProtocolCtap2,
			Ctap2version:                webauthn.Ctap2versionCtap21,
			Transport:                   webauthn.AuthenticatorTransportInternal,
			HasResidentKey:              true,
			HasUserVerification:         true,
			IsUserVerified:              true,
			AutomaticPresenceSimulation: true, // the field has no omitempty: false would leave every ceremony waiting
		},
	})
	return &Authenticator{ID: res.AuthenticatorID, p: p}
}

// Credentials returns the credentials the authenticator holds: their ids,
// RP ids, user handles, signature counters and private keys (PKCS#8).
func (a *Authenticator) Credentials() []*webauthn.Credential {
	a.p.tb.Helper()
	return call(a.p, webauthn.GetCredentials, webauthn.GetCredentialsParams{AuthenticatorID: a.ID}).Credentials
}

// SetUserVerified sets whether user verification (the PIN or biometric
// check) succeeds from now on. With false, a ceremony that requires user
// verification fails in the page with a NotAllowedError.
func (a *Authenticator) SetUserVerified(verified bool) {
	a.p.tb.Helper()
	call(a.p, webauthn.SetUserVerified, webauthn.SetUserVerifiedParams{AuthenticatorID: a.ID, IsUserVerified: verified})
}

// Tamper says how the authenticator falsifies its next responses, for tests
// of a verifier's refusals. The zero value falsifies nothing.
type Tamper struct {
	BogusSignature bool // the signature is all zeroes
	ClearUV        bool // the UV (user verified) flag is cleared
	ClearUP        bool // the UP (user present) flag is cleared
}

// SetTamper makes the authenticator's responses from now on carry the
// falsifications of t, while the page's ceremony still succeeds; the zero
// Tamper restores honest responses.
func (a *Authenticator) SetTamper(t Tamper) {
	a.p.tb.Helper()
	call(a.p, webauthn.SetResponseOverrideBits, webauthn.SetResponseOverrideBitsParams{
		AuthenticatorID:  a.ID,
		IsBogusSignature: new(t.BogusSignature),
		IsBadUV:          new(t.ClearUV),
		IsBadUP:          new(t.ClearUP),
	})
}
