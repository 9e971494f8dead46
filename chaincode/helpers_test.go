package chaincode_test

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hyperledger/fabric-chaincode-go/v2/shim"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/medprov/medprov/chaincode"
	"github.com/medprov/medprov/internal/testkit"
	"github.com/medprov/medprov/ledger"
	"github.com/medprov/medprov/ledger/embedded"
	"github.com/medprov/medprov/wire"
)

// t0 is the fake clock's start: every test runs at the same ledger time.
var t0 = time.Date(2030, time.March, 10, 12, 0, 0, 0, time.UTC)

// clock is the embedded ledger's transaction time source. With a step, each
// reading of the clock moves it forward by step, so transactions get
// distinct, ordered timestamps.
type clock struct {
	mu   sync.Mutex
	t    time.Time
	step time.Duration
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.t
	c.t = c.t.Add(c.step)
	return now
}

func (c *clock) Step(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.step = d
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// env is the real medprov chaincode running on an embedded ledger with a
// fake clock.
type env struct {
	tb    testing.TB
	l     *embedded.Ledger
	clock *clock
	seq   int // for unique ids
}

func newEnv(tb testing.TB) *env {
	tb.Helper()
	cc, err := chaincode.NewChaincode()
	require.NoError(tb, err, "NewChaincode")
	return newEnvWith(tb, cc)
}

func newEnvWith(tb testing.TB, cc shim.Chaincode) *env {
	tb.Helper()
	c := &clock{t: t0}
	l, err := embedded.New(tb.Context(), embedded.Config{
		Dir:       tb.TempDir(),
		Chaincode: cc,
		Now:       c.Now,
		Logger:    slog.New(slog.DiscardHandler),
	})
	require.NoError(tb, err, "embedded.New")
	tb.Cleanup(func() { assert.NoError(tb, l.Close(), "close ledger") })
	return &env{tb: tb, l: l, clock: c}
}

// uid returns a fresh id with the given prefix.
func (e *env) uid(prefix string) string {
	e.seq++
	return prefix + "-" + strconv.Itoa(e.seq)
}

func (e *env) submit(fn string, args ...string) (*ledger.Commit, error) {
	return e.l.Submit(e.tb.Context(), ledger.Proposal{Function: fn, Args: args})
}

func (e *env) submitAdmin(fn string, args ...string) (*ledger.Commit, error) {
	return e.l.Submit(e.tb.Context(), ledger.Proposal{Function: fn, Args: args, AsAdmin: true})
}

func (e *env) evaluate(fn string, args ...string) ([]byte, error) {
	return e.l.Evaluate(e.tb.Context(), ledger.Proposal{Function: fn, Args: args})
}

// mustSubmit submits and decodes the result into out (if not nil).
func (e *env) mustSubmit(out any, fn string, args ...string) *ledger.Commit {
	e.tb.Helper()
	c, err := e.submit(fn, args...)
	require.NoError(e.tb, err, fn)
	if out != nil {
		require.NoError(e.tb, json.Unmarshal(c.Payload, out), "%s result", fn)
	}
	return c
}

// mustEvaluate evaluates and decodes the result into out.
func (e *env) mustEvaluate(out any, fn string, args ...string) {
	e.tb.Helper()
	b, err := e.evaluate(fn, args...)
	require.NoError(e.tb, err, fn)
	require.NoError(e.tb, json.Unmarshal(b, out), "%s result %s", fn, b)
}

// refusalCode returns the chaincode refusal code carried by err, or "" if
// err is nil, and fails the test if err is not a chaincode refusal.
func refusalCode(tb testing.TB, err error) wire.Code {
	tb.Helper()
	if err == nil {
		return ""
	}
	var ce *ledger.ChaincodeError
	require.ErrorAs(tb, err, &ce, "error is not a chaincode refusal")
	r, ok := wire.ParseError(ce.Message)
	require.True(tb, ok, "refusal carries no medprov code: %q", ce.Message)
	return r.Code
}

// principal is an actor or a device with its signing key.
type principal struct {
	id   string
	role string
	key  *ecdsa.PrivateKey
	pem  string
}

// newPrincipal returns a principal with a fresh key.
func newPrincipal(tb testing.TB, id, role string) *principal {
	tb.Helper()
	k := testkit.MustKey(tb)
	return &principal{id: id, role: role, key: k, pem: testkit.PublicPEM(tb, k)}
}

// freshPEM returns the public key of a new key pair.
func freshPEM(tb testing.TB) string {
	tb.Helper()
	return testkit.PublicPEM(tb, testkit.MustKey(tb))
}

// actor registers an actor with a fresh key as the org admin.
func (e *env) actor(role string) *principal {
	e.tb.Helper()
	p := newPrincipal(e.tb, e.uid(role), role)
	in := wire.ActorInput{ID: p.id, Role: role, PublicKey: p.pem}
	_, err := e.submitAdmin(wire.FnRegisterActor, string(testkit.MustJSON(e.tb, in)))
	require.NoError(e.tb, err, "register %s", role)
	return p
}

// action is a signed action payload; fields are added to the header.
type action map[string]any

// sign builds the envelope of a signed action by p at the ledger's current
// time with a fresh nonce. Header fields in a override the defaults.
func (e *env) sign(p *principal, name string, a action) string {
	e.tb.Helper()
	payload := map[string]any{
		"action": name, "actorId": p.id,
		"issuedAt": e.clock.Now().Format(time.RFC3339), "nonce": testkit.Nonce(e.tb),
	}
	for k, v := range a {
		if v == nil {
			delete(payload, k)
			continue
		}
		payload[k] = v
	}
	return string(testkit.MustJSON(e.tb, testkit.MustSign(e.tb, p.key, testkit.MustJSON(e.tb, payload))))
}

// device registers a device of patient by operator with a fresh key.
func (e *env) device(op, patient *principal) *principal {
	e.tb.Helper()
	d := newPrincipal(e.tb, e.uid("dev"), "device")
	_, err := e.submit(wire.FnRegisterDevice, e.sign(op, wire.ActionDeviceRegister, action{
		"deviceId": d.id, "patientId": patient.id, "deviceType": "pulse-oximeter", "publicKey": d.pem,
	}))
	require.NoError(e.tb, err, "register device")
	return d
}

// reading builds a batch item for a reading the device signs: the payload
// follows the wire format, dataHash is its SHA-256 and cid/cipherHash stand
// for the gateway's ciphertext.
func reading(tb testing.TB, dev *principal, seq uint64, typ string, measuredAt time.Time) wire.ReadingInput {
	tb.Helper()
	payload := testkit.MustJSON(tb, map[string]any{
		"deviceId": dev.id, "seq": seq, "type": typ, "unit": "%", "value": 97,
		"measuredAt": measuredAt.Format(time.RFC3339Nano), "nonce": testkit.Nonce(tb),
	})
	sum := sha256.Sum256(payload)
	sig, err := ecdsa.SignASN1(rand.Reader, dev.key, sum[:])
	require.NoError(tb, err, "sign reading")
	cipher := sha256.Sum256(append([]byte("ciphertext:"), payload...))
	return wire.ReadingInput{
		DeviceID: dev.id, Seq: seq, Type: typ, Unit: "%",
		MeasuredAt: measuredAt.Format(time.RFC3339Nano),
		DataHash:   hex.EncodeToString(sum[:]),
		Signature:  base64.StdEncoding.EncodeToString(sig),
		CID:        "bafkrei" + hex.EncodeToString(cipher[:8]),
		CipherHash: hex.EncodeToString(cipher[:]),
		Size:       int64(len(payload) + 28),
	}
}

// record submits a batch and returns its result.
func (e *env) record(items ...wire.ReadingInput) (wire.BatchResult, *ledger.Commit) {
	e.tb.Helper()
	var res wire.BatchResult
	c := e.mustSubmit(&res, wire.FnRecordReadings, string(testkit.MustJSON(e.tb, wire.BatchInput{Readings: items})))
	return res, c
}

// grant records a consent of patient for researcher and returns it.
func (e *env) grant(patient, researcher *principal, purpose string, types []string, notBefore, notAfter time.Time) wire.Consent {
	e.tb.Helper()
	var cn wire.Consent
	e.mustSubmit(&cn, wire.FnGrantConsent, e.sign(patient, wire.ActionConsentGrant, action{
		"granteeId": researcher.id, "purpose": purpose, "dataTypes": types,
		"notBefore": notBefore.Format(time.RFC3339), "notAfter": notAfter.Format(time.RFC3339),
	}))
	return cn
}
