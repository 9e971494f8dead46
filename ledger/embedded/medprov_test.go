package embedded_test

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/medprov/medprov/chaincode"
	"github.com/medprov/medprov/internal/testkit"
	"github.com/medprov/medprov/ledger"
	"github.com/medprov/medprov/ledger/embedded"
	"github.com/medprov/medprov/wire"
)

// medprov is the real medprov chaincode on an embedded ledger in dir: what
// the integrity tests build a ledger of genuine transactions with (actors,
// a device, signed readings, a consent granted and revoked) before they
// tamper with its files.
type medprov struct {
	tb  testing.TB
	dir string
	l   *embedded.Ledger
	seq int
}

// openMedprov opens (creating) the embedded ledger in dir with the medprov
// chaincode.
func openMedprov(tb testing.TB, dir string) (*embedded.Ledger, error) {
	tb.Helper()
	cc, err := chaincode.NewChaincode()
	require.NoError(tb, err, "NewChaincode")
	return embedded.New(tb.Context(), embedded.Config{Dir: dir, Chaincode: cc, Logger: slog.New(slog.DiscardHandler)})
}

func newMedprov(tb testing.TB, dir string) *medprov {
	tb.Helper()
	l, err := openMedprov(tb, dir)
	require.NoError(tb, err, "open the ledger")
	return &medprov{tb: tb, dir: dir, l: l}
}

// principal is an actor or a device with its signing key and the block
// that registered it.
type principal struct {
	id    string
	key   *ecdsa.PrivateKey
	block uint64
}

func (m *medprov) newPrincipal(prefix string) *principal {
	m.seq++
	return &principal{id: prefix + "-" + strconv.Itoa(m.seq), key: testkit.MustKey(m.tb)}
}

func (m *medprov) submit(asAdmin bool, fn string, arg string) *ledger.Commit {
	m.tb.Helper()
	c, err := m.l.Submit(m.tb.Context(), ledger.Proposal{Function: fn, Args: []string{arg}, AsAdmin: asAdmin})
	require.NoError(m.tb, err, fn)
	return c
}

// actor registers an actor of role as the org admin.
func (m *medprov) actor(role string) *principal {
	m.tb.Helper()
	p := m.newPrincipal(role)
	p.block = m.submit(true, wire.FnRegisterActor, string(testkit.MustJSON(m.tb, wire.ActorInput{ID: p.id, Role: role, PublicKey: testkit.PublicPEM(m.tb, p.key)}))).Block
	return p
}

// signed is the envelope of action name by p with fields.
func (m *medprov) signed(p *principal, name string, fields map[string]any) string {
	m.tb.Helper()
	payload := map[string]any{"action": name, "actorId": p.id, "issuedAt": time.Now().UTC().Format(time.RFC3339), "nonce": testkit.Nonce(m.tb)}
	for k, v := range fields {
		payload[k] = v
	}
	return string(testkit.MustJSON(m.tb, testkit.MustSign(m.tb, p.key, testkit.MustJSON(m.tb, payload))))
}

// device registers a device of patient by operator.
func (m *medprov) device(operator, patient *principal) *principal {
	m.tb.Helper()
	d := m.newPrincipal("dev")
	d.block = m.submit(false, wire.FnRegisterDevice, m.signed(operator, wire.ActionDeviceRegister, map[string]any{
		"deviceId": d.id, "patientId": patient.id, "deviceType": "pulse-oximeter", "publicKey": testkit.PublicPEM(m.tb, d.key),
	})).Block
	return d
}

// readings records n readings of dev, numbered from seq, in one batch.
func (m *medprov) readings(dev *principal, seq uint64, n int) {
	m.tb.Helper()
	m.submit(false, wire.FnRecordReadings, string(testkit.MustJSON(m.tb, readingBatch(m.tb, dev, seq, n))))
}

// readingBatch is a batch of n readings dev signs, numbered from seq.
func readingBatch(tb testing.TB, dev *principal, seq uint64, n int) wire.BatchInput {
	tb.Helper()
	var batch wire.BatchInput
	at := time.Now().UTC().Add(-time.Minute)
	for i := range n {
		payload := testkit.MustJSON(tb, map[string]any{
			"deviceId": dev.id, "seq": seq + uint64(i), "type": "spo2", "unit": "%", "value": 97,
			"measuredAt": at.Format(time.RFC3339Nano), "nonce": testkit.Nonce(tb),
		})
		sum := sha256.Sum256(payload)
		sig, err := ecdsa.SignASN1(rand.Reader, dev.key, sum[:])
		require.NoError(tb, err, "sign reading")
		cipher := sha256.Sum256(append([]byte("ciphertext:"), payload...))
		batch.Readings = append(batch.Readings, wire.ReadingInput{
			DeviceID: dev.id, Seq: seq + uint64(i), Type: "spo2", Unit: "%",
			MeasuredAt: at.Format(time.RFC3339Nano),
			DataHash:   hex.EncodeToString(sum[:]),
			Signature:  base64.StdEncoding.EncodeToString(sig),
			CID:        "bafkrei" + hex.EncodeToString(cipher[:8]),
			CipherHash: hex.EncodeToString(cipher[:]),
			Size:       int64(len(payload) + 28),
		})
	}
	return batch
}

// grant records a consent of patient for researcher and returns its ID.
func (m *medprov) grant(patient, researcher *principal) string {
	m.tb.Helper()
	now := time.Now().UTC()
	var c wire.Consent
	require.NoError(m.tb, json.Unmarshal(m.submit(false, wire.FnGrantConsent, m.signed(patient, wire.ActionConsentGrant, map[string]any{
		"granteeId": researcher.id, "purpose": "research", "dataTypes": []string{"spo2"},
		"notBefore": now.Add(-time.Hour).Format(time.RFC3339), "notAfter": now.Add(24 * time.Hour).Format(time.RFC3339),
	})).Payload, &c), "consent")
	return c.ID
}

// revoke revokes consent id of patient and returns the block.
func (m *medprov) revoke(patient *principal, id string) uint64 {
	m.tb.Helper()
	return m.submit(false, wire.FnRevokeConsent, m.signed(patient, wire.ActionConsentRevoke, map[string]any{"consentId": id})).Block
}

// population is what populate recorded.
type population struct {
	researcher *principal
	consentID  string
	// revoked is the block that revoked the consent.
	revoked uint64
	height  uint64
}

// populate records a small medprov history: four actors, a device, three
// batches of readings, a consent granted and then revoked.
func (m *medprov) populate() population {
	m.tb.Helper()
	operator, patient := m.actor(wire.RoleOperator), m.actor(wire.RolePatient)
	researcher := m.actor(wire.RoleResearcher)
	m.actor(wire.RoleRegulator)
	dev := m.device(operator, patient)
	for b := range 3 {
		m.readings(dev, uint64(1+b*5), 5)
	}
	id := m.grant(patient, researcher)
	revoked := m.revoke(patient, id)
	return population{researcher: researcher, consentID: id, revoked: revoked, height: m.l.Height()}
}

// close closes the ledger.
func (m *medprov) close() {
	m.tb.Helper()
	require.NoError(m.tb, m.l.Close(), "Close")
}
