package embedded_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hyperledger/fabric-protos-go-apiv2/msp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/syndtr/goleveldb/leveldb"
	"google.golang.org/protobuf/proto"

	"github.com/medprov/medprov/envelope"
	"github.com/medprov/medprov/evidence"
	"github.com/medprov/medprov/internal/testkit"
	"github.com/medprov/medprov/ledger"
	"github.com/medprov/medprov/ledger/embedded"
)

// submitConcurrently submits n transactions at once (puts, deletes,
// events, an admin's), so that blocks take several each, and returns the
// number of the first block holding more than one.
func submitConcurrently(t *testing.T, l *embedded.Ledger, round, n int) (uint64, bool) {
	t.Helper()
	start := l.Height()
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			k := "k" + strconv.Itoa(round) + "-" + strconv.Itoa(i)
			var p ledger.Proposal
			switch i % 4 {
			case 0:
				p = ledger.Proposal{Function: "Put", Args: []string{k, "value of " + k}}
			case 1:
				p = ledger.Proposal{Function: "Emit", Args: []string{k, "Happened"}}
			case 2:
				p = ledger.Proposal{Function: "Del", Args: []string{"k" + strconv.Itoa(round) + "-0"}}
			default:
				p = ledger.Proposal{Function: "PutAsset", Args: []string{"alice", k, "v"}, AsAdmin: true}
			}
			_, err := l.Submit(t.Context(), p)
			assert.NoError(t, err, "Submit %v", p)
		})
	}
	wg.Wait()
	for b := start; b < l.Height(); b++ {
		blk, err := l.Block(t.Context(), b)
		require.NoError(t, err, "Block %d", b)
		if len(blk.Transactions) > 1 {
			return b, true
		}
	}
	return 0, false
}

// multiTxLedger opens a ledger in dir and commits transactions until a
// block holds several; it returns that block's number.
func multiTxLedger(t *testing.T, dir string) (*embedded.Ledger, uint64) {
	t.Helper()
	l := openLedger(t, dir, nil)
	for round := range 20 {
		if n, ok := submitConcurrently(t, l, round, 24); ok {
			submit(t, l, "Put", "after", "the busy block")
			return l, n
		}
	}
	require.Fail(t, "no block took more than one transaction")
	return nil, 0
}

// checker is what a regulator holding a Trust checks of a parsed block,
// with crypto/x509 and envelope.VerifyDigest only.
type checker struct {
	trust *evidence.Trust
	roots *x509.CertPool
}

func newChecker(t *testing.T, trust *evidence.Trust) *checker {
	t.Helper()
	require.Len(t, trust.Config.Orgs, 1, "organisations")
	roots := x509.NewCertPool()
	for _, c := range trust.Config.Orgs[0].RootCerts {
		require.True(t, roots.AppendCertsFromPEM(c), "root certificate")
	}
	return &checker{trust: trust, roots: roots}
}

// signature checks that sig verifies under its signer's certificate, which
// chains to the trusted root, belongs to the trusted MSP and holds one of
// roles.
func (c *checker) signature(sig evidence.Signature, roles ...string) error {
	if sig.Signer.MSPID != c.trust.Config.Orgs[0].MSPID {
		return fmt.Errorf("signer of MSP %q", sig.Signer.MSPID)
	}
	blk, _ := pem.Decode(sig.Signer.CertPEM)
	if blk == nil {
		return errors.New("signer certificate is not PEM")
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return err
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: c.roots, CurrentTime: cert.NotBefore.Add(time.Second), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return err
	}
	if !slices.ContainsFunc(roles, func(r string) bool { return slices.Contains(cert.Subject.OrganizationalUnit, r) }) {
		return fmt.Errorf("signer has OUs %v, want one of %v", cert.Subject.OrganizationalUnit, roles)
	}
	pub, ok := cert.PublicKey.(*ecdsa.PublicKey)
	if !ok {
		return errors.New("signer key is not ECDSA")
	}
	digest := sha256.Sum256(sig.Signed)
	return envelope.VerifyDigest(pub, digest[:], sig.Signature)
}

// block checks blk, which the chain names by wantHash (the next block's
// PreviousHash, or the tip): its hashes and, if signed, every signature.
func (c *checker) block(blk *evidence.Block, wantHash []byte, signed bool) error {
	if !bytes.Equal(blk.Header.Hash, wantHash) {
		return errors.New("header hash differs from the one the chain names")
	}
	if !bytes.Equal(blk.ComputedDataHash, blk.Header.DataHash) {
		return errors.New("data hash differs from the block's data")
	}
	if !signed {
		return nil
	}
	if len(blk.Orderers) != 1 {
		return fmt.Errorf("%d orderer signatures", len(blk.Orderers))
	}
	if h := sha256.Sum256(blk.Orderers[0].Signed); !bytes.Equal(h[:], blk.Header.Hash) {
		return errors.New("the orderer signed another header")
	}
	if err := c.signature(blk.Orderers[0], "orderer"); err != nil {
		return fmt.Errorf("orderer: %w", err)
	}
	for _, tx := range blk.Txs {
		if err := c.signature(tx.Creator, "client", "admin"); err != nil {
			return fmt.Errorf("transaction %d: creator: %w", tx.Index, err)
		}
		if len(tx.Endorsements) == 0 || len(tx.Endorsements) != len(tx.EndorserIDs) {
			return fmt.Errorf("transaction %d: %d endorsements, %d endorsers", tx.Index, len(tx.Endorsements), len(tx.EndorserIDs))
		}
		for i, e := range tx.Endorsements {
			if !bytes.Equal(e.Signed, append(bytes.Clone(tx.Response), tx.EndorserIDs[i]...)) {
				return fmt.Errorf("transaction %d: endorsement %d signs something else than the response", tx.Index, i)
			}
			if err := c.signature(e, "peer"); err != nil {
				return fmt.Errorf("transaction %d: endorsement %d: %w", tx.Index, i, err)
			}
		}
	}
	return nil
}

// parsedChain parses every block of l through RawBlock and ParseBlock.
func parsedChain(t *testing.T, l *embedded.Ledger) []*evidence.Block {
	t.Helper()
	var blocks []*evidence.Block
	for n := range l.Height() {
		raw, err := l.RawBlock(t.Context(), n)
		require.NoError(t, err, "RawBlock %d", n)
		blk, err := embedded.ParseBlock(raw)
		require.NoError(t, err, "ParseBlock %d", n)
		blocks = append(blocks, blk)
	}
	return blocks
}

func identityOf(t *testing.T, serialized []byte) evidence.Identity {
	t.Helper()
	var si msp.SerializedIdentity
	require.NoError(t, proto.Unmarshal(serialized, &si), "serialized identity")
	return evidence.Identity{MSPID: si.GetMspid(), CertPEM: si.GetIdBytes()}
}

func TestRawBlockRoundTrip(t *testing.T) {
	l, busy := multiTxLedger(t, t.TempDir())
	closeAtEnd(t, l)
	trust, err := l.Trust(t.Context())
	require.NoError(t, err, "Trust")
	check := newChecker(t, trust)
	blocks := parsedChain(t, l)

	t.Run("blocks parse as the ledger holds them", func(t *testing.T) {
		for n, got := range blocks {
			want, err := l.Block(t.Context(), uint64(n))
			require.NoError(t, err, "Block %d", n)
			assert.Equal(t, evidence.Header{
				Number:       want.Header.Number,
				PreviousHash: want.Header.PreviousHash,
				DataHash:     want.Header.DataHash,
				Hash:         want.Header.Hash(),
				Extra:        want.Header.WriteSetHash,
			}, got.Header, "header of block %d", n)
			require.Len(t, got.Txs, len(want.Transactions), "transactions of block %d", n)
			for i, wt := range want.Transactions {
				gt := got.Txs[i]
				writes := []evidence.Write{}
				for _, w := range wt.Writes {
					writes = append(writes, evidence.Write{Key: w.Key, Delete: w.Delete, Value: w.Value})
				}
				assert.Equal(t, wt.TxID, gt.ID, "ID")
				assert.Equal(t, i, gt.Index, "index")
				assert.True(t, wt.Timestamp.Equal(gt.Timestamp), "timestamp")
				assert.Equal(t, "medprov", gt.Chaincode, "chaincode")
				assert.Equal(t, wt.Function, gt.Function, "function")
				assert.Equal(t, wt.Args, gt.Args, "args")
				assert.Equal(t, writes, gt.Writes, "writes")
				assert.True(t, gt.FlaggedValid, "flagged valid")
				assert.Equal(t, identityOf(t, wt.Creator), gt.Creator.Signer, "creator")
				assert.Equal(t, wt.ProposalBytes(), gt.Creator.Signed, "creator signs the proposal")
				assert.Equal(t, wt.Signature, gt.Creator.Signature, "creator signature")
				assert.Equal(t, wt.ResponseBytes(), gt.Response, "response")
				require.Len(t, gt.EndorserIDs, 1, "endorsers")
				assert.Equal(t, wt.Endorsements[0].Endorser, gt.EndorserIDs[0], "endorser")
				assert.Equal(t, identityOf(t, wt.Endorsements[0].Endorser), gt.Endorsements[0].Signer, "endorser identity")
			}
		}
		assert.Greater(t, len(blocks[busy].Txs), 1, "transactions of the busy block")
	})
	t.Run("headers chain and data hashes match", func(t *testing.T) {
		for n, blk := range blocks {
			assert.Equal(t, uint64(n), blk.Header.Number, "number")
			assert.Equal(t, blk.Header.DataHash, blk.ComputedDataHash, "data hash of block %d", n)
			if n == 0 {
				assert.Empty(t, blk.Header.PreviousHash, "genesis previous hash")
				continue
			}
			assert.Equal(t, blocks[n-1].Header.Hash, blk.Header.PreviousHash, "previous hash of block %d", n)
		}
		last, err := l.Block(t.Context(), l.Height()-1)
		require.NoError(t, err)
		assert.Equal(t, last.Header.Hash(), blocks[len(blocks)-1].Header.Hash, "the last header's hash is the tip")
	})
	t.Run("every signature verifies against the trust root", func(t *testing.T) {
		for n, blk := range blocks {
			assert.NoError(t, check.block(blk, blk.Header.Hash, true), "block %d", n)
		}
	})
	t.Run("the genesis block is a config block the trust root repeats", func(t *testing.T) {
		genesis := blocks[0]
		require.NotNil(t, genesis.Config, "config")
		assert.Empty(t, genesis.Txs, "transactions")
		assert.Equal(t, trust.Config, *genesis.Config, "config")
		assert.Equal(t, genesis.Header.Hash, trust.GenesisHash, "genesis hash")
		assert.Equal(t, "OR('HospitalMSP.orderer')", genesis.Config.BlockValidation.Rule, "block validation")
		assert.Equal(t, evidence.PolicySignature, genesis.Config.BlockValidation.Kind, "block validation kind")
		assert.Equal(t, []evidence.Org{{MSPID: "HospitalMSP", RootCerts: [][]byte{l.CACertPEM()}, NodeOUs: true}}, genesis.Config.Orgs, "organisations")
		require.Len(t, genesis.Config.Orderers, 1, "orderers")
		assert.Equal(t, genesis.Orderers[0].Signer, genesis.Config.Orderers[0], "the genesis block's signer is the configured orderer")
	})
	t.Run("the trust root names the embedded ledger", func(t *testing.T) {
		assert.Equal(t, evidence.TrustFormat, trust.Format)
		assert.Equal(t, evidence.BackendEmbedded, trust.Backend)
		assert.Equal(t, "medprov", trust.Channel)
		assert.Equal(t, "medprov", trust.Chaincode)
		assert.Equal(t, evidence.Policy{Kind: evidence.PolicySignature, Rule: "OR('HospitalMSP.peer')"}, trust.Endorsement)
	})
	t.Run("a block beyond the chain is not found", func(t *testing.T) {
		height, err := l.BlockHeight(t.Context())
		require.NoError(t, err, "BlockHeight")
		assert.Equal(t, uint64(len(blocks)), height, "BlockHeight")
		_, err = l.RawBlock(t.Context(), height)
		assert.ErrorIs(t, err, ledger.ErrNotFound)
	})
	t.Run("BlockFormat hashes headers as the chain does, after a JSON round trip", func(t *testing.T) {
		for n, blk := range blocks {
			b, err := json.Marshal(blk)
			require.NoError(t, err, "marshal block %d", n)
			var got evidence.Block
			require.NoError(t, json.Unmarshal(b, &got), "unmarshal block %d", n)
			assert.Equal(t, blk.Header.Hash, embedded.BlockFormat{}.HeaderHash(got.Header), "block %d", n)
		}
	})
}

func TestParseBlockRefusesMalformedBytes(t *testing.T) {
	l := newLedger(t)
	c := submit(t, l, "Put", "k", "v")
	raw, err := l.RawBlock(t.Context(), 1)
	require.NoError(t, err, "RawBlock")
	genesis, err := l.RawBlock(t.Context(), 0)
	require.NoError(t, err, "RawBlock 0")
	tests := []struct {
		name string
		raw  []byte
	}{
		{name: "no bytes", raw: nil},
		{name: "another encoding", raw: append([]byte{5}, "hello"...)},
		{name: "a truncated block", raw: raw[:len(raw)-1]},
		{name: "a block with a trailing byte", raw: append(bytes.Clone(raw), 0)},
		{name: "a count of transactions beyond the bytes", raw: append(bytes.Clone(genesis[:len(genesis)-1]), 100)},
		{name: "a config block that also holds a transaction", raw: func() []byte {
			// The genesis block, its count of transactions (the last
			// byte) made 1, followed by block 1's transaction record.
			rec := raw[bytes.Index(raw, append([]byte{64}, c.TxID...)):]
			b := append(bytes.Clone(genesis[:len(genesis)-1]), 1)
			b = binary.AppendUvarint(b, uint64(len(rec)))
			return append(b, rec...)
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := embedded.ParseBlock(tt.raw)
			assert.ErrorIs(t, err, embedded.ErrMalformedBlock)
		})
	}
}

// TestFlippedByteIsFound flips bytes of exported blocks, at positions
// spread over the block and in each of its parts: every time either
// ParseBlock refuses the bytes or a hash or signature check fails.
func TestFlippedByteIsFound(t *testing.T) {
	l, busy := multiTxLedger(t, t.TempDir())
	closeAtEnd(t, l)
	trust, err := l.Trust(t.Context())
	require.NoError(t, err, "Trust")
	check := newChecker(t, trust)
	for _, n := range []uint64{0, busy} {
		t.Run("block "+strconv.FormatUint(n, 10), func(t *testing.T) {
			raw, err := l.RawBlock(t.Context(), n)
			require.NoError(t, err, "RawBlock")
			stored, err := l.Block(t.Context(), n)
			require.NoError(t, err, "Block")
			want := stored.Header.Hash()
			pristine, err := embedded.ParseBlock(raw)
			require.NoError(t, err, "ParseBlock")
			require.NoError(t, check.block(pristine, want, true), "the block as exported")

			positions := map[string]int{"first": 0, "last": len(raw) - 1}
			for i := range 64 {
				positions["spread "+strconv.Itoa(i)] = i * len(raw) / 64
			}
			for what, part := range map[string][]byte{
				"header":             pristine.Orderers[0].Signed,
				"orderer signature":  pristine.Orderers[0].Signature,
				"orderer identity":   pristine.Orderers[0].Signer.CertPEM,
				"genesis root cert":  configRoot(pristine),
				"creator signature":  txPart(pristine, func(tx evidence.Tx) []byte { return tx.Creator.Signature }),
				"endorsement":        txPart(pristine, func(tx evidence.Tx) []byte { return tx.Endorsements[0].Signature }),
				"endorser identity":  txPart(pristine, func(tx evidence.Tx) []byte { return tx.EndorserIDs[0] }),
				"an argument":        txPart(pristine, func(tx evidence.Tx) []byte { return []byte(tx.Args[len(tx.Args)-1]) }),
				"the last tx's data": txPart(pristine, func(tx evidence.Tx) []byte { return tx.Response[len(tx.Response)-8:] }),
			} {
				if len(part) == 0 {
					continue
				}
				i := bytes.LastIndex(raw, part)
				require.GreaterOrEqual(t, i, 0, "%s not found in the raw block", what)
				positions[what+" (start)"] = i
				positions[what+" (middle)"] = i + len(part)/2
				positions[what+" (end)"] = i + len(part) - 1
			}
			for what, pos := range positions {
				for _, mask := range []byte{0x01, 0x5a} {
					flipped := bytes.Clone(raw)
					flipped[pos] ^= mask
					blk, err := embedded.ParseBlock(flipped)
					if err != nil {
						assert.ErrorIs(t, err, embedded.ErrMalformedBlock, "%s: byte %d ^ %#x", what, pos, mask)
						continue
					}
					assert.Error(t, check.block(blk, want, true), "%s: byte %d ^ %#x went unnoticed", what, pos, mask)
				}
			}
		})
	}
}

func configRoot(blk *evidence.Block) []byte {
	if blk.Config == nil {
		return nil
	}
	return blk.Config.Orgs[0].RootCerts[0]
}

// txPart returns part of the last transaction of blk, nil if it has none.
func txPart(blk *evidence.Block, part func(evidence.Tx) []byte) []byte {
	if len(blk.Txs) == 0 {
		return nil
	}
	return part(blk.Txs[len(blk.Txs)-1])
}

// TestOldFormatLedgersAreSignedFromTheUpgrade opens ledgers written by
// earlier versions (unsigned blocks, a local MSP without orderer and peer
// identities): the identities are added, the old blocks parse as unsigned
// and still verify, and every block from the upgrade on is signed.
func TestOldFormatLedgersAreSignedFromTheUpgrade(t *testing.T) {
	for _, format := range []string{embedded.FormatUnsigned, embedded.FormatLegacy} {
		t.Run("a ledger of format "+format+" is upgraded", func(t *testing.T) {
			dir := t.TempDir()
			l := openLedger(t, dir, nil)
			submit(t, l, "Put", "k", "v1")
			submit(t, l, "Emit", "k2", "Happened")
			oldHeight := l.Height()
			require.NoError(t, l.Close(), "Close")
			require.NoError(t, embedded.Downgrade(dir, format), "write a %s ledger", format)
			for _, d := range []string{"orderers", "peers"} {
				_, err := os.Stat(filepath.Join(dir, "msp", d))
				require.ErrorIs(t, err, fs.ErrNotExist, "msp/%s before the upgrade", d)
			}
			_, err := embedded.VerifyDir(t.Context(), dir)
			require.NoError(t, err, "VerifyDir before the upgrade")

			l = openLedger(t, dir, nil)
			closeAtEnd(t, l)
			c := submit(t, l, "Put", "k", "v2")
			require.Equal(t, oldHeight, c.Block, "first block after the upgrade")

			t.Run("the orderer and peer identities are added", func(t *testing.T) {
				for _, id := range []struct{ dir, ou string }{{"orderers/orderer0", "orderer"}, {"peers/peer0", "peer"}} {
					path := filepath.Join(dir, "msp", id.dir)
					assertMode(t, filepath.Dir(path), 0o700)
					assertMode(t, path, 0o700)
					assertMode(t, filepath.Join(path, "key.pem"), 0o600)
					assertMode(t, filepath.Join(path, "cert.pem"), 0o600)
					certPEM, err := os.ReadFile(filepath.Join(path, "cert.pem"))
					require.NoError(t, err)
					blk, _ := pem.Decode(certPEM)
					require.NotNil(t, blk, "%s certificate", id.ou)
					cert, err := x509.ParseCertificate(blk.Bytes)
					require.NoError(t, err)
					assert.Equal(t, []string{id.ou}, cert.Subject.OrganizationalUnit, "OU")
					assert.Equal(t, []string{"HospitalMSP"}, cert.Subject.Organization, "O")
					roots := x509.NewCertPool()
					roots.AppendCertsFromPEM(l.CACertPEM())
					_, err = cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
					assert.NoError(t, err, "%s certificate chains to the MSP's CA", id.ou)
				}
			})
			trust, err := l.Trust(t.Context())
			require.NoError(t, err, "Trust")
			check := newChecker(t, trust)
			blocks := parsedChain(t, l)
			t.Run("old blocks parse unsigned and keep their hashes", func(t *testing.T) {
				assert.Nil(t, blocks[0].Config, "the old genesis block holds no config")
				assert.Equal(t, blocks[0].Header.Hash, trust.GenesisHash, "genesis hash")
				for n := range oldHeight {
					blk := blocks[n]
					assert.Empty(t, blk.Orderers, "orderer signatures of block %d", n)
					for _, tx := range blk.Txs {
						assert.Empty(t, tx.Creator.Signature, "creator signature in block %d", n)
						assert.Empty(t, tx.Endorsements, "endorsements in block %d", n)
					}
					assert.NoError(t, check.block(blk, blocks[n+1].Header.PreviousHash, false), "block %d", n)
					assert.Equal(t, blk.Header.Hash, embedded.BlockFormat{}.HeaderHash(blk.Header), "BlockFormat's hash of block %d", n)
				}
			})
			t.Run("new blocks are signed by the added identities", func(t *testing.T) {
				blk := blocks[oldHeight]
				assert.NoError(t, check.block(blk, blk.Header.Hash, true))
				assert.Equal(t, trust.Config.Orderers, []evidence.Identity{blk.Orderers[0].Signer}, "the trust root names the orderer that signs")
				assert.Equal(t, evidence.Policy{Kind: evidence.PolicySignature, Rule: "OR('HospitalMSP.orderer')"}, trust.Config.BlockValidation)
			})
			t.Run("the upgraded ledger verifies", func(t *testing.T) {
				require.NoError(t, l.Verify(t.Context()), "Verify")
				require.NoError(t, l.Close(), "Close")
				rep, err := embedded.VerifyDir(t.Context(), dir)
				require.NoError(t, err, "VerifyDir")
				assert.Equal(t, oldHeight+1, rep.Blocks, "blocks")
				l2 := openLedger(t, dir, nil)
				assert.Equal(t, oldHeight+1, submit(t, l2, "Put", "k", "v3").Block, "a block after reopening")
				require.NoError(t, l2.Verify(t.Context()), "Verify after reopening")
				require.NoError(t, l2.Close(), "Close")
			})
			t.Run("a store claiming its old format again is refused", func(t *testing.T) {
				copied := testkit.CopyDir(t, dir)
				editStore(t, copied, func(db *leveldb.DB) error {
					return db.Put(embedded.FormatKey, []byte(format), nil)
				})
				_, err := embedded.New(t.Context(), embedded.Config{Dir: copied, Chaincode: newChaincode(t), Logger: slog.New(slog.DiscardHandler)})
				assert.ErrorIs(t, err, embedded.ErrCorrupt, "New")
			})
		})
	}
}

func assertMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if assert.NoError(t, err) {
		assert.Equal(t, want, fi.Mode().Perm(), "mode of %s", path)
	}
}

// TestVerifyChecksSignatures alters the signatures, and with the orderer's
// key (which is on disk) the transactions, of a stopped ledger: Verify
// and VerifyDir name the block, and New refuses a bad orderer signature
// among the last blocks.
func TestVerifyChecksSignatures(t *testing.T) {
	pristine := t.TempDir()
	l := openLedger(t, pristine, nil)
	for i := range 12 {
		submit(t, l, "Put", "k"+strconv.Itoa(i), "value-"+strconv.Itoa(i))
	}
	height := l.Height()
	require.NoError(t, l.Verify(t.Context()), "Verify before tampering")
	client := l.Identity(false).Serialized
	require.NoError(t, l.Close(), "Close")

	// flipOrdererSignature flips the last byte of block n's orderer
	// signature: its header record ends with the signature and an empty
	// configuration (one zero byte).
	flipOrdererSignature := func(n uint64) func(t *testing.T, dir string) {
		return func(t *testing.T, dir string) {
			rewrite(t, dir, embedded.BlockHeaderKey(n), func(b []byte) []byte { b[len(b)-2] ^= 1; return b })
		}
	}
	reseal := func(change func(*embedded.Transaction)) func(t *testing.T, dir string) {
		return func(t *testing.T, dir string) {
			require.NoError(t, embedded.ResealChain(dir, 2, change), "ResealChain")
		}
	}
	tests := []struct {
		name         string
		change       func(t *testing.T, dir string)
		block        uint64
		reason       string
		refusedAtNew bool
	}{
		{name: "an altered orderer signature of an old block is found", change: flipOrdererSignature(2), block: 2, reason: "orderer signature"},
		{name: "an altered orderer signature of the last block is refused at open", change: flipOrdererSignature(height - 1), block: height - 1, reason: "orderer signature", refusedAtNew: true},
		{name: "an argument changed and resealed with the orderer's key is found by the creator's signature", change: reseal(func(tx *embedded.Transaction) { tx.Args[1] = "forged" }), block: 2, reason: "creator signature"},
		{name: "a write changed and resealed with the orderer's key is found by the endorsement", change: reseal(func(tx *embedded.Transaction) { tx.Writes[0].Value = []byte("forged") }), block: 2, reason: "endorsement"},
		{name: "a transaction stripped of its signatures is found", change: reseal(func(tx *embedded.Transaction) { tx.Signature, tx.Endorsements = nil, nil }), block: 2, reason: "no creator signature"},
		{name: "an endorsement by the client is refused", change: reseal(func(tx *embedded.Transaction) { tx.Endorsements[0].Endorser = client }), block: 2, reason: "roles [peer]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := testkit.CopyDir(t, pristine)
			tt.change(t, dir)
			_, err := embedded.VerifyDir(t.Context(), dir)
			assertTamperedAt(t, err, tt.block, "", "VerifyDir")
			assert.ErrorContains(t, err, tt.reason, "VerifyDir")
			l, err := embedded.New(t.Context(), embedded.Config{Dir: dir, Chaincode: newChaincode(t), Logger: slog.New(slog.DiscardHandler)})
			if tt.refusedAtNew {
				assertTamperedAt(t, err, tt.block, "", "New")
				return
			}
			require.NoError(t, err, "New")
			closeAtEnd(t, l)
			err = l.Verify(t.Context())
			assertTamperedAt(t, err, tt.block, "", "Verify")
			assert.ErrorContains(t, err, tt.reason, "Verify")
		})
	}
	t.Run("a ledger whose local MSP was replaced is refused", func(t *testing.T) {
		dir := testkit.CopyDir(t, pristine)
		require.NoError(t, os.RemoveAll(filepath.Join(dir, "msp")))
		_, err := embedded.New(t.Context(), embedded.Config{Dir: dir, Chaincode: newChaincode(t), Logger: slog.New(slog.DiscardHandler)})
		assert.ErrorContains(t, err, "restore it from a backup", "New")
	})
	t.Run("the pristine ledger verifies", func(t *testing.T) {
		_, err := embedded.VerifyDir(t.Context(), pristine)
		assert.NoError(t, err)
	})
}

func TestTrustIsJSON(t *testing.T) {
	upgraded := t.TempDir()
	l := openLedger(t, upgraded, nil)
	submit(t, l, "Put", "k", "v")
	require.NoError(t, l.Close(), "Close")
	require.NoError(t, embedded.Downgrade(upgraded, embedded.FormatUnsigned))
	tests := []struct {
		name string
		dir  string
	}{
		{name: "the trust root of a new ledger round-trips", dir: t.TempDir()},
		{name: "the trust root of an upgraded ledger round-trips", dir: upgraded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := openLedger(t, tt.dir, nil)
			closeAtEnd(t, l)
			want, err := l.Trust(t.Context())
			require.NoError(t, err, "Trust")
			b, err := json.Marshal(want)
			require.NoError(t, err, "marshal")
			var got evidence.Trust
			require.NoError(t, json.Unmarshal(b, &got), "unmarshal")
			assert.Equal(t, *want, got)
			assert.Contains(t, string(b), `"backend":"embedded"`)
		})
	}
}
