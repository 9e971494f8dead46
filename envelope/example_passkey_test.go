package envelope_test

import (
	"encoding/hex"
	"fmt"

	"github.com/medprov/medprov/envelope"
)

// A registration ceremony yields the passkey's public key as a COSE_Key;
// the ledger stores it as PEM.
func ExampleParseCOSEKey() {
	// The EC2 example of the WebAuthn specification.
	cose, _ := hex.DecodeString("a5010203262001215820" +
		"65eda5a12577c2bae829437fe338701a10aaa375e1bb5b5de108de439c08551d" + "225820" +
		"1e52ed75701163f7f9e40ddf9f341b3dc9ba860af7e0ca7ca7e9eecd0084d19c")
	pub, err := envelope.ParseCOSEKey(cose)
	if err != nil {
		fmt.Println(err)
		return
	}
	pemKey, err := envelope.MarshalPublicKey(pub)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Print(string(pemKey))
	// Output:
	// -----BEGIN PUBLIC KEY-----
	// MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEZe2loSV3wrroKUN/4zhwGhCqo3Xh
	// u1td4QjeQ5wIVR0eUu11cBFj9/nkDd+fNBs9ybqGCvfgynyn6e7NAITRnA==
	// -----END PUBLIC KEY-----
}

// The challenge a portal asks the authenticator to sign is the payload's
// SHA-256; the browser writes it base64url-encoded into clientDataJSON.
func ExampleChallenge() {
	fmt.Println(envelope.Challenge([]byte(`{"action":"consent.grant"}`)))
	// Output: nm8yIcxw0aNgDgokaskdUxJ-GggjgrvY7byzptmIuf0
}
