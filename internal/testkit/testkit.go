// Package testkit holds the helpers medprov's tests share: random bytes,
// keys, JSON and envelope construction. It is imported only by tests (by
// the envelope package's external tests only, which would otherwise form a
// cycle).
// Every helper fails the test through testify's require on error, so a
// test never proceeds on a value it could not build.
package testkit

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/opt"
	"github.com/syndtr/goleveldb/leveldb/util"

	"github.com/medprov/medprov/envelope"
	"github.com/medprov/medprov/internal/privatecopy"
	"github.com/medprov/medprov/wire"
)

// RandomBytes returns n bytes from crypto/rand.
func RandomBytes(tb testing.TB, n int) []byte {
	tb.Helper()
	b := make([]byte, n)
	_, err := rand.Read(b)
	require.NoError(tb, err)
	return b
}

// Nonce returns 16 random bytes in hex: a nonce every medprov payload accepts.
func Nonce(tb testing.TB) string {
	tb.Helper()
	return hex.EncodeToString(RandomBytes(tb, 16))
}

// MustJSON marshals v.
func MustJSON(tb testing.TB, v any) []byte {
	tb.Helper()
	b, err := json.Marshal(v)
	require.NoError(tb, err)
	return b
}

// MustKey returns a new ECDSA P-256 key.
func MustKey(tb testing.TB) *ecdsa.PrivateKey {
	tb.Helper()
	k, err := envelope.GenerateKey()
	require.NoError(tb, err)
	return k
}

// PublicPEM returns k's public key as a PEM "PUBLIC KEY" (PKIX) string.
func PublicPEM(tb testing.TB, k *ecdsa.PrivateKey) string {
	tb.Helper()
	b, err := envelope.MarshalPublicKey(&k.PublicKey)
	require.NoError(tb, err)
	return string(b)
}

// MustSign returns the envelope of payload signed by k.
func MustSign(tb testing.TB, k *ecdsa.PrivateKey, payload []byte) envelope.Envelope {
	tb.Helper()
	env, err := envelope.Sign(k, payload)
	require.NoError(tb, err)
	return env
}

// Authenticator is a software WebAuthn authenticator holding one passkey
// (ES256, P-256), for tests of passkey-signed actions without a browser.
// Its assertions are what a platform authenticator returns from
// navigator.credentials.get: real ES256 signatures over
// authenticatorData || SHA-256(clientDataJSON).
type Authenticator struct {
	Key          *ecdsa.PrivateKey
	CredentialID []byte
	RPID         string
	Origin       string
	// SignCount is the counter of the last assertion (or registration);
	// each assertion reports SignCount+1 unless Counterless is set, in
	// which case it reports 0 (as synced passkeys do).
	SignCount   uint32
	Counterless bool
}

// NewAuthenticator returns an authenticator with a fresh key and a random
// 32-byte credential id, bound to rpID and used from origin.
func NewAuthenticator(tb testing.TB, rpID, origin string) *Authenticator {
	tb.Helper()
	return &Authenticator{Key: MustKey(tb), CredentialID: RandomBytes(tb, 32), RPID: rpID, Origin: origin}
}

// Credential returns the passkey as a relying party registers it:
// credential id in base64url, PEM public key and the current counter.
func (a *Authenticator) Credential(tb testing.TB) wire.PasskeyCredential {
	tb.Helper()
	return wire.PasskeyCredential{
		CredentialID: base64.RawURLEncoding.EncodeToString(a.CredentialID),
		PublicKey:    PublicPEM(tb, a.Key),
		SignCount:    a.SignCount,
	}
}

// COSEKey returns the credential public key as a registration carries it:
// a COSE_Key (EC2, ES256, P-256) in CTAP2 canonical CBOR.
func (a *Authenticator) COSEKey(tb testing.TB) []byte {
	tb.Helper()
	b, err := a.Key.PublicKey.Bytes() // 0x04 || x || y
	require.NoError(tb, err)
	out := []byte{0xa5, 0x01, 0x02, 0x03, 0x26, 0x20, 0x01, 0x21, 0x58, 0x20}
	out = append(out, b[1:33]...)
	out = append(out, 0x22, 0x58, 0x20)
	return append(out, b[33:65]...)
}

// RegistrationParts are the parts of one registration, filled with the
// authenticator's defaults and open to a test's edits.
type RegistrationParts struct {
	// Type, Challenge (base64url) and Origin make the clientDataJSON.
	Type, Challenge, Origin string
	// RPID, Flags and SignCount make the authenticator data, which
	// attests CredentialID and COSEKey.
	RPID         string
	Flags        byte
	SignCount    uint32
	CredentialID []byte
	COSEKey      []byte
}

// Register returns the response of a registration ceremony
// (navigator.credentials.create) with "none" attestation: clientDataJSON
// of type webauthn.create over challenge, and the CBOR attestationObject
// whose authenticator data (flags UP, UV, AT) carries the credential id
// and COSEKey, after edits change any part. A gateway's ceremony library
// can verify it as it would a browser's.
func (a *Authenticator) Register(tb testing.TB, challenge []byte, edits ...func(*RegistrationParts)) (clientDataJSON, attestationObject []byte) {
	tb.Helper()
	p := RegistrationParts{
		Type: "webauthn.create", Challenge: base64.RawURLEncoding.EncodeToString(challenge), Origin: a.Origin,
		RPID: a.RPID, Flags: envelope.FlagUserPresent | envelope.FlagUserVerified | envelope.FlagAttestedData,
		SignCount: a.SignCount, CredentialID: a.CredentialID, COSEKey: a.COSEKey(tb),
	}
	for _, edit := range edits {
		edit(&p)
	}
	clientDataJSON = MustJSON(tb, clientData{Type: p.Type, Challenge: p.Challenge, Origin: p.Origin})
	authData := a.authData(p.RPID, p.Flags, p.SignCount)
	authData = append(authData, make([]byte, 16)...) // AAGUID: none
	authData = binary.BigEndian.AppendUint16(authData, uint16(len(p.CredentialID)))
	authData = append(authData, p.CredentialID...)
	authData = append(authData, p.COSEKey...)
	att := []byte{0xa3, 0x63, 'f', 'm', 't', 0x64, 'n', 'o', 'n', 'e', 0x67, 'a', 't', 't', 'S', 't', 'm', 't', 0xa0, 0x68, 'a', 'u', 't', 'h', 'D', 'a', 't', 'a'}
	if len(authData) < 256 { // shortest byte-string head, as canonical CBOR requires
		att = append(att, 0x58, byte(len(authData)))
	} else {
		att = binary.BigEndian.AppendUint16(append(att, 0x59), uint16(len(authData)))
	}
	return clientDataJSON, append(att, authData...)
}

// AssertionParts are the parts of one assertion, filled with the
// authenticator's defaults and open to a test's edits before signing.
type AssertionParts struct {
	// Type, Challenge and Origin make the clientDataJSON (in the order a
	// browser writes them, with "crossOrigin":false), unless
	// ClientDataJSON is set, which is then used byte for byte.
	Type, Challenge, Origin string
	ClientDataJSON          []byte
	// RPID, Flags and SignCount make the authenticator data.
	RPID      string
	Flags     byte
	SignCount uint32
	// Key signs; CredentialID is the id the assertion names.
	Key          *ecdsa.PrivateKey
	CredentialID []byte
}

// Assert returns the passkey envelope of payload: an assertion of type
// webauthn.get, challenge envelope.Challenge(payload), the authenticator's
// origin and rpId, flags UP and UV, and the next counter, after edits
// change any part. The authenticator's counter only grows: it keeps the
// highest counter it reported.
func (a *Authenticator) Assert(tb testing.TB, payload []byte, edits ...func(*AssertionParts)) envelope.Signed {
	tb.Helper()
	p := AssertionParts{
		Type: envelope.ClientDataGet, Challenge: envelope.Challenge(payload), Origin: a.Origin,
		RPID: a.RPID, Flags: envelope.FlagUserPresent | envelope.FlagUserVerified,
		Key: a.Key, CredentialID: a.CredentialID,
	}
	if !a.Counterless {
		p.SignCount = a.SignCount + 1
	}
	for _, edit := range edits {
		edit(&p)
	}
	a.SignCount = max(a.SignCount, p.SignCount)
	cdj := p.ClientDataJSON
	if cdj == nil {
		cdj = MustJSON(tb, clientData{Type: p.Type, Challenge: p.Challenge, Origin: p.Origin})
	}
	authData := a.authData(p.RPID, p.Flags, p.SignCount)
	sig, err := ecdsa.SignASN1(rand.Reader, p.Key, envelope.AssertionDigest(authData, cdj))
	require.NoError(tb, err)
	return envelope.Signed{Payload: payload, WebAuthn: &envelope.Assertion{
		CredentialID: p.CredentialID, AuthenticatorData: authData, ClientDataJSON: cdj, Signature: sig,
	}}
}

// clientData is a clientDataJSON in the member order browsers write.
type clientData struct {
	Type        string `json:"type"`
	Challenge   string `json:"challenge"`
	Origin      string `json:"origin"`
	CrossOrigin bool   `json:"crossOrigin"`
}

// authData returns authenticator data without attested credential data:
// SHA-256(rpID), flags, counter.
func (a *Authenticator) authData(rpID string, flags byte, count uint32) []byte {
	h := sha256.Sum256([]byte(rpID))
	return binary.BigEndian.AppendUint32(append(h[:], flags), count)
}

// CopyDir copies the directory tree src into a new directory under the
// test's temporary directory (0700/0600) and returns its path, so that a
// test can damage or open the copy and leave src as it was.
func CopyDir(tb testing.TB, src string) string {
	tb.Helper()
	dst := filepath.Join(tb.TempDir(), "copy")
	require.NoError(tb, privatecopy.Tree(src, dst), "copy %s", src)
	return dst
}

// FlipJournalByte damages the embedded ledger store in storeDir (stopped)
// the way a bad disk would: it flips a byte in the middle of its largest
// LevelDB journal.
func FlipJournalByte(tb testing.TB, storeDir string) {
	tb.Helper()
	logs, err := filepath.Glob(filepath.Join(storeDir, "*.log"))
	require.NoError(tb, err)
	var path string
	var b []byte
	for _, p := range logs {
		c, err := os.ReadFile(p)
		require.NoError(tb, err)
		if len(c) > len(b) {
			path, b = p, c
		}
	}
	require.NotEmpty(tb, b, "no journal with records in %s", storeDir)
	b[len(b)/2] ^= 0x5a
	require.NoError(tb, os.WriteFile(path, b, 0o600))
}

// EditLedgerState edits current state behind the chaincode's back, as an
// intruder with the stopped node's files could: in the embedded ledger
// store in storeDir, the first current-state record of objectType whose
// value contains old gets old replaced by new.
func EditLedgerState(tb testing.TB, storeDir, objectType, old, new string) {
	tb.Helper()
	db, err := leveldb.OpenFile(storeDir, &opt.Options{ErrorIfMissing: true})
	require.NoError(tb, err, "open the store")
	defer func() { require.NoError(tb, db.Close(), "close the store") }()
	it := db.NewIterator(util.BytesPrefix([]byte("s\x00"+objectType+"\x00")), nil)
	defer it.Release()
	for it.Next() {
		if bytes.Contains(it.Value(), []byte(old)) {
			v := bytes.Replace(it.Value(), []byte(old), []byte(new), 1)
			require.NoError(tb, db.Put(bytes.Clone(it.Key()), v, &opt.WriteOptions{Sync: true}), "edit the record")
			return
		}
	}
	require.NoError(tb, it.Error())
	require.Failf(tb, "record not found", "no %s record holds %s", objectType, old)
}
