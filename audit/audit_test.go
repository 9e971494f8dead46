package audit_test

import (
	"bytes"
	"crypto/ecdsa"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/medprov/medprov/audit"
	"github.com/medprov/medprov/client"
	"github.com/medprov/medprov/evidence"
	"github.com/medprov/medprov/internal/testkit"
	"github.com/medprov/medprov/ledger/embedded"
	"github.com/medprov/medprov/node"
	"github.com/medprov/medprov/seal"
	"github.com/medprov/medprov/wire"
)

const adminToken = "audit-test-admin-token-0123456789"

// world is a node on the embedded backends with a patient who has a
// device, readings, a consent, a granted and a denied access.
type world struct {
	n          *node.Node
	ledger     *embedded.Ledger
	url        string
	admin      *client.Client
	patient    *client.Client
	researcher *client.Client
	operator   *client.Client
	regulator  *client.Client
	devKey     *ecdsa.PrivateKey
	seq        uint64
}

func newWorld(t *testing.T) *world {
	t.Helper()
	dir := t.TempDir()
	mk, err := seal.LoadOrCreateMasterKey(filepath.Join(dir, "master.key"))
	require.NoError(t, err)
	n, err := node.Open(t.Context(), node.Config{DataDir: dir, MasterKey: mk, AdminToken: adminToken})
	require.NoError(t, err)
	srv := httptest.NewServer(n.Handler())
	t.Cleanup(func() {
		srv.Close()
		assert.NoError(t, n.Close())
	})
	w := &world{n: n, url: srv.URL}
	w.ledger, _ = n.Ledger.(*embedded.Ledger)
	require.NotNil(t, w.ledger)
	w.admin, err = client.New(srv.URL, client.WithAdminToken(adminToken))
	require.NoError(t, err)
	actor := func(id, role string) *client.Client {
		k := testkit.MustKey(t)
		_, err := w.admin.RegisterActor(t.Context(), wire.ActorInput{ID: id, Role: role, PublicKey: testkit.PublicPEM(t, k)})
		require.NoError(t, err)
		c, err := client.New(srv.URL, client.WithActor(id, k))
		require.NoError(t, err)
		return c
	}
	w.patient = actor("pat-1", wire.RolePatient)
	w.researcher = actor("res-1", wire.RoleResearcher)
	w.operator = actor("op-1", wire.RoleOperator)
	w.regulator = actor("reg-1", wire.RoleRegulator)
	actor("pat-2", wire.RolePatient) // someone else, whose records share blocks
	w.devKey = testkit.MustKey(t)
	_, err = w.operator.RegisterDevice(t.Context(), client.DeviceRegistration{DeviceID: "mon-1", PatientID: "pat-1", DeviceType: "monitor", PublicKey: testkit.PublicPEM(t, w.devKey)})
	require.NoError(t, err)
	w.readings(t, 3)
	_, err = w.patient.GrantConsent(t.Context(), client.ConsentGrant{GranteeID: "res-1", Purpose: "study", DataTypes: []string{"heart_rate"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)})
	require.NoError(t, err)
	w.access(t, "heart_rate", true)
	w.access(t, "glucose", false)
	return w
}

// readings records n more readings of the patient's device.
func (w *world) readings(t *testing.T, n int) {
	t.Helper()
	dev, err := client.New(w.url)
	require.NoError(t, err)
	for range n {
		w.seq++
		r, err := client.NewReading("mon-1", w.seq, "heart_rate", "bpm", 70, time.Now())
		require.NoError(t, err)
		e, err := client.SignReading(w.devKey, r)
		require.NoError(t, err)
		_, err = dev.SubmitReading(t.Context(), e, client.WaitForCommit())
		require.NoError(t, err)
	}
}

func (w *world) access(t *testing.T, typ string, granted bool) {
	t.Helper()
	_, err := w.researcher.RequestAccess(t.Context(), client.AccessRequest{PatientID: "pat-1", Purpose: "study", DataTypes: []string{typ},
		From: time.Now().Add(-30 * time.Minute), To: time.Now()})
	if granted {
		require.NoError(t, err)
	} else {
		require.Error(t, err)
	}
}

func (w *world) export(t *testing.T, s audit.Scope) *audit.Bundle {
	t.Helper()
	b, err := audit.Export(t.Context(), w.ledger, audit.ExportOptions{Scope: s, Format: embedded.BlockFormat{}})
	require.NoError(t, err)
	return b
}

func (w *world) trust(t *testing.T) *evidence.Trust {
	t.Helper()
	tr, err := w.ledger.Trust(t.Context())
	require.NoError(t, err)
	return tr
}

// roundTrip writes and reads b, as a regulator receives it.
func roundTrip(t *testing.T, b *audit.Bundle) *audit.Bundle {
	t.Helper()
	var buf bytes.Buffer
	require.NoError(t, audit.Write(&buf, b))
	got, err := audit.Read(&buf)
	require.NoError(t, err)
	return got
}

func verify(b *audit.Bundle, tr *evidence.Trust, cp *audit.Checkpoint) *audit.Report {
	return audit.Verify(b, tr, audit.VerifyOptions{Format: embedded.BlockFormat{}, Checkpoint: cp})
}

// failedNames are the names of the failed checks.
func failedNames(r *audit.Report) []string {
	var out []string
	for _, c := range r.Failed() {
		if !slices.Contains(out, c.Name) {
			out = append(out, c.Name)
		}
	}
	return out
}

func TestBundleOfAPatientVerifies(t *testing.T) {
	w := newWorld(t)
	tr := w.trust(t)
	b := roundTrip(t, w.export(t, audit.Scope{PatientID: "pat-1"}))
	r := verify(b, tr, nil)
	require.True(t, r.OK, "failed: %v", r.Failed())
	counts := r.Count()
	for _, name := range []string{"chain.genesis", "chain.linkage", "chain.tip_signed", "block.data_hash", "block.orderer_signatures",
		"tx.creator_signature", "tx.endorsement_policy", "reading.device_signature", "action.signature", "access.decision", "tx.present"} {
		assert.Positive(t, counts[name][0], "check %s ran and passed", name)
	}
	assert.Equal(t, 3, counts["reading.device_signature"][0], "each of the patient's readings")
	assert.Equal(t, 2, counts["access.decision"][0], "the grant and the denial, re-derived")
	assert.Less(t, len(b.Blocks), len(b.Headers), "only the scope's blocks are full")

	t.Run("a reading's bundle verifies too", func(t *testing.T) {
		r := verify(roundTrip(t, w.export(t, audit.Scope{ReadingID: wire.ReadingID("mon-1", 2)})), tr, nil)
		require.True(t, r.OK, "failed: %v", r.Failed())
		assert.Equal(t, 1, r.Count()["reading.device_signature"][0])
	})
}

func TestTamperedBundlesFail(t *testing.T) {
	w := newWorld(t)
	tr := w.trust(t)
	fresh := func() *audit.Bundle { return roundTrip(t, w.export(t, audit.Scope{PatientID: "pat-1"})) }
	firstFull := func(b *audit.Bundle) uint64 {
		for n := uint64(1); n <= b.Manifest.Tip; n++ {
			if _, ok := b.Blocks[n]; ok {
				return n
			}
		}
		require.FailNow(t, "no full block")
		return 0
	}
	for _, tc := range []struct {
		name   string
		tamper func(b *audit.Bundle, tr *evidence.Trust) *evidence.Trust
		want   string
	}{
		{"a flipped byte in a full block", func(b *audit.Bundle, tr *evidence.Trust) *evidence.Trust {
			n := firstFull(b)
			raw := slices.Clone(b.Blocks[n])
			raw[len(raw)/2] ^= 0x01
			b.Blocks[n] = raw
			return tr
		}, ""},
		{"a header rewritten mid-chain", func(b *audit.Bundle, tr *evidence.Trust) *evidence.Trust {
			b.Headers[2].DataHash = slices.Clone(b.Headers[2].DataHash)
			b.Headers[2].DataHash[0] ^= 0x01
			return tr
		}, "chain.linkage"},
		{"the tip block left out", func(b *audit.Bundle, tr *evidence.Trust) *evidence.Trust {
			delete(b.Blocks, b.Manifest.Tip)
			return tr
		}, "chain.tip_signed"},
		{"another ledger's trust root", func(b *audit.Bundle, _ *evidence.Trust) *evidence.Trust {
			other := newWorld(t)
			return other.trust(t)
		}, "chain.genesis"},
		{"a transaction of the scope left out", func(b *audit.Bundle, tr *evidence.Trust) *evidence.Trust {
			last := b.Manifest.Transactions[len(b.Manifest.Transactions)-1]
			for _, ref := range b.Manifest.Transactions {
				if ref.Block != b.Manifest.Tip && ref.Block != last.Block {
					delete(b.Blocks, ref.Block)
					break
				}
			}
			return tr
		}, "tx.present"},
		{"an endorsement policy the bundle does not meet", func(b *audit.Bundle, tr *evidence.Trust) *evidence.Trust {
			c := *tr
			c.Endorsement = evidence.Policy{Kind: evidence.PolicySignature, Rule: "AND('" + tr.Config.Orgs[0].MSPID + ".peer','OtherMSP.peer')"}
			return &c
		}, "tx.endorsement_policy"},
		{"a block validation policy the bundle does not meet", func(b *audit.Bundle, tr *evidence.Trust) *evidence.Trust {
			c := *tr
			c.Config.BlockValidation = evidence.Policy{Kind: evidence.PolicySignature, Rule: "OR('OtherMSP.orderer')"}
			return &c
		}, "block.orderer_signatures"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := fresh()
			use := tc.tamper(b, tr)
			r := verify(roundTrip(t, b), use, nil)
			assert.False(t, r.OK, "a tampered bundle must not verify")
			require.NotEmpty(t, r.Failed())
			if tc.want != "" {
				assert.Contains(t, failedNames(r), tc.want, "failed: %v", r.Failed())
			}
		})
	}

	t.Run("a grant whose consent the bundle lacks is an error", func(t *testing.T) {
		b := fresh()
		var grantTx string
		for _, c := range b.Records.Consents {
			grantTx = c.GrantedTx
		}
		require.NotEmpty(t, grantTx)
		info, err := w.ledger.Tx(t.Context(), grantTx)
		require.NoError(t, err)
		// Leave the consent's block out, as a dishonest exporter would, but
		// keep the block if something else in scope needs it.
		delete(b.Blocks, info.Block)
		var kept []audit.TxRef
		for _, ref := range b.Manifest.Transactions {
			if ref.Block != info.Block {
				kept = append(kept, ref)
			}
		}
		b.Manifest.Transactions = kept
		r := verify(roundTrip(t, b), tr, nil)
		assert.False(t, r.OK)
		assert.Contains(t, failedNames(r), "access.decision", "failed: %v", r.Failed())
	})
}

func TestCheckpoints(t *testing.T) {
	w := newWorld(t)
	tr := w.trust(t)
	key := testkit.MustKey(t)
	first := roundTrip(t, w.export(t, audit.Scope{PatientID: "pat-1"}))
	require.True(t, verify(first, tr, nil).OK)
	sc, err := audit.NewCheckpoint(first, embedded.BlockFormat{}, key, "reg-1", time.Now())
	require.NoError(t, err)
	data := testkit.MustJSON(t, sc)
	cp, err := audit.VerifyCheckpoint(data, &key.PublicKey)
	require.NoError(t, err)
	assert.Equal(t, first.Manifest.Tip, cp.Height)

	t.Run("a later bundle extends the checkpoint", func(t *testing.T) {
		w.readings(t, 2)
		later := roundTrip(t, w.export(t, audit.Scope{PatientID: "pat-1"}))
		require.Greater(t, later.Manifest.Tip, cp.Height)
		r := verify(later, tr, cp)
		require.True(t, r.OK, "failed: %v", r.Failed())
		assert.Equal(t, 1, r.Count()["checkpoint.extends"][0])
	})
	t.Run("a rolled-back chain fails", func(t *testing.T) {
		ahead := *cp
		ahead.Height = first.Manifest.Tip + 100
		r := verify(first, tr, &ahead)
		assert.Contains(t, failedNames(r), "checkpoint.extends")
	})
	t.Run("a rewritten history fails", func(t *testing.T) {
		other := *cp
		other.HeaderHash = slices.Clone(cp.HeaderHash)
		other.HeaderHash[0] ^= 1
		r := verify(first, tr, &other)
		assert.Contains(t, failedNames(r), "checkpoint.extends")
	})
	t.Run("a checkpoint signed by another key is refused", func(t *testing.T) {
		_, err := audit.VerifyCheckpoint(data, &testkit.MustKey(t).PublicKey)
		assert.ErrorIs(t, err, audit.ErrCheckpoint)
	})
}

func TestBundleReadRefusesAlteredMembers(t *testing.T) {
	w := newWorld(t)
	var buf bytes.Buffer
	require.NoError(t, audit.Write(&buf, w.export(t, audit.Scope{PatientID: "pat-1"})))
	raw := buf.Bytes()
	t.Run("intact", func(t *testing.T) {
		_, err := audit.Read(bytes.NewReader(raw))
		require.NoError(t, err)
	})
	t.Run("a byte changed inside a member", func(t *testing.T) {
		bad := slices.Clone(raw)
		i := bytes.Index(bad, []byte(`"number"`))
		require.Positive(t, i)
		bad[i+12] ^= 0x01
		_, err := audit.Read(bytes.NewReader(bad))
		assert.ErrorIs(t, err, audit.ErrBundle)
	})
	t.Run("not a tar", func(t *testing.T) {
		_, err := audit.Read(bytes.NewReader([]byte("hello")))
		assert.ErrorIs(t, err, audit.ErrBundle)
	})
}
