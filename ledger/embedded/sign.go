package embedded

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"hash"
	"slices"
	"time"

	"github.com/hyperledger/fabric-protos-go-apiv2/msp"
	"google.golang.org/protobuf/proto"
)

// What the embedded ledger signs, as Fabric does: the orderer signs every
// block's header, the creator (the client or admin identity that
// submitted) signs every transaction's proposal, and the peer endorses
// every transaction's outcome. Each signature is ECDSA P-256, DER, over
// SHA-256 of the signed bytes, which are canonical encodings (fixed-width
// big-endian integers, uvarint length-prefixed byte strings, as in the
// store) that a verifier rebuilds from the block:
//
//   - block: the header's encoding, uint64(number) || bytes(previous hash)
//     || bytes(data hash) || bytes(write-set hash), whose SHA-256 is the
//     header's Hash: the orderer signs the hash the next block names;
//   - proposal (ProposalBytes): string("medprov/embedded/proposal/1") ||
//     string(txID) || uint64(timestamp, Unix ns) || bytes(creator) ||
//     string(function) || uvarint(len(args)) || string(arg)...;
//   - response (ResponseBytes): string("medprov/embedded/response/1") ||
//     bytes(SHA-256(proposal)) || uvarint(len(writes)) || (string(key) ||
//     bool(delete) || bytes(value))... || uint32(status) ||
//     string(message) || bytes(payload) || bool(event) [|| string(name) ||
//     bytes(payload)]; the endorsement signs response || endorser
//     (serialized identity), as Fabric's endorsements sign the proposal
//     response payload followed by the endorser.
//
// A transaction's record holds its signatures, so the data hash, and
// through the header hash the chain, covers them; the orderer's signature
// is stored beside the header it signs.
const (
	proposalTag = "medprov/embedded/proposal/1"
	responseTag = "medprov/embedded/response/1"
	configTag   = "medprov/embedded/config/1"
)

// chaincodeName is the namespace the embedded ledger's writes are in, as
// evidence names it.
const chaincodeName = "medprov"

// fieldWriter takes a canonical encoding field by field: an encoder builds
// the bytes, a digester hashes them without building them.
type fieldWriter interface {
	uvarint(v uint64)
	uint64(v uint64)
	uint32(v uint32)
	bytes(b []byte)
	string(s string)
	bool(v bool)
}

// writeProposal writes a transaction's proposal fields: the start of its
// stored record and, after proposalTag, its ProposalBytes.
func writeProposal(w fieldWriter, txID string, ts int64, creator []byte, function string, args []string) {
	w.string(txID)
	w.uint64(uint64(ts))
	w.bytes(creator)
	w.string(function)
	w.uvarint(uint64(len(args)))
	for _, a := range args {
		w.string(a)
	}
}

// writeOutcome writes a transaction's writes, chaincode response and
// event: a contiguous part of its stored record and the end of its
// ResponseBytes.
func writeOutcome(w fieldWriter, writes []KeyWrite, r Response, ev *ChaincodeEvent) {
	w.uvarint(uint64(len(writes)))
	for _, kw := range writes {
		w.string(kw.Key)
		w.bool(kw.Delete)
		w.bytes(kw.Value)
	}
	w.uint32(uint32(r.Status))
	w.string(r.Message)
	w.bytes(r.Payload)
	w.bool(ev != nil)
	if ev != nil {
		w.string(ev.Name)
		w.bytes(ev.Payload)
	}
}

// ProposalBytes returns the bytes the transaction's creator signs: its ID,
// timestamp, creator, function and arguments (see the encodings above).
func (t *Transaction) ProposalBytes() []byte {
	e := &encoder{}
	e.string(proposalTag)
	writeProposal(e, t.TxID, t.Timestamp.UnixNano(), t.Creator, t.Function, t.Args)
	return e.buf
}

// ResponseBytes returns the outcome the transaction's endorsements sign
// (each followed by the endorser's serialized identity): the hash of its
// ProposalBytes, its writes in key order, the chaincode's response and
// the event, so an endorsement covers exactly what the transaction
// changed.
func (t *Transaction) ResponseBytes() []byte {
	p := sha256.Sum256(t.ProposalBytes())
	e := &encoder{}
	e.string(responseTag)
	e.bytes(p[:])
	writeOutcome(e, t.Writes, t.Response, t.Event)
	return e.buf
}

// digester hashes a canonical encoding as it is written: small fields are
// gathered, large byte strings hashed in place.
type digester struct {
	h   hash.Hash
	buf []byte
}

func newDigester() *digester { return &digester{h: sha256.New(), buf: make([]byte, 0, 1024)} }

func (d *digester) reset() {
	d.h.Reset()
	d.buf = d.buf[:0]
}

func (d *digester) flush() {
	d.h.Write(d.buf)
	d.buf = d.buf[:0]
}

func (d *digester) uvarint(v uint64) { d.buf = binary.AppendUvarint(d.buf, v) }
func (d *digester) uint64(v uint64)  { d.buf = binary.BigEndian.AppendUint64(d.buf, v) }
func (d *digester) uint32(v uint32)  { d.buf = binary.BigEndian.AppendUint32(d.buf, v) }
func (d *digester) bool(v bool) {
	if v {
		d.buf = append(d.buf, 1)
	} else {
		d.buf = append(d.buf, 0)
	}
}

func (d *digester) bytes(b []byte) {
	d.uvarint(uint64(len(b)))
	d.raw(b)
}

func (d *digester) string(s string) {
	d.uvarint(uint64(len(s)))
	if len(s) <= 512 {
		d.buf = append(d.buf, s...)
		return
	}
	d.flush()
	d.h.Write([]byte(s))
}

// raw hashes b as it is, with no length prefix.
func (d *digester) raw(b []byte) {
	if len(b) <= 512 {
		d.buf = append(d.buf, b...)
		if len(d.buf) >= 4096 {
			d.flush()
		}
		return
	}
	d.flush()
	d.h.Write(b)
}

func (d *digester) sum() (s [sha256.Size]byte) {
	d.flush()
	d.h.Sum(s[:0])
	return s
}

// proposalDigest is SHA-256 of the ProposalBytes of p.
func proposalDigest(p *proposal) [sha256.Size]byte {
	d := newDigester()
	d.string(proposalTag)
	writeProposal(d, p.txID, p.timestamp.AsTime().UnixNano(), p.creator, p.function, p.params)
	return d.sum()
}

// endorsementDigest is SHA-256 of the ResponseBytes of the transaction
// whose proposal hashes to prop and whose simulation is sim, followed by
// endorser: what the endorsement signs.
func endorsementDigest(prop [sha256.Size]byte, sim *simulation, endorser []byte) [sha256.Size]byte {
	d := newDigester()
	d.string(responseTag)
	d.bytes(prop[:])
	writeOutcome(d, sim.writes, sim.response, sim.event)
	d.raw(endorser)
	return d.sum()
}

// sign signs digest with key (ECDSA, DER).
func sign(key *ecdsa.PrivateKey, digest []byte) ([]byte, error) {
	sig, err := ecdsa.SignASN1(rand.Reader, key, digest)
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	return sig, nil
}

// encode returns the canonical encoding of c: string(configTag) ||
// string(channel) || string(MSP ID) || bytes(root certificate) ||
// uvarint(len(orderers)) || bytes(orderer)... || string(block validation)
// || string(endorsement).
func (c *ChannelConfig) encode() []byte {
	e := &encoder{}
	e.string(configTag)
	e.string(c.Channel)
	e.string(c.MSPID)
	e.bytes(c.RootCertPEM)
	e.uvarint(uint64(len(c.Orderers)))
	for _, o := range c.Orderers {
		e.bytes(o)
	}
	e.string(c.BlockValidation)
	e.string(c.Endorsement)
	return e.buf
}

func decodeChannelConfig(b []byte) (*ChannelConfig, error) {
	d := decoder{buf: b}
	if tag := d.string(); d.err == nil && tag != configTag {
		return nil, fmt.Errorf("%w: channel configuration %q, want %q", errCorrupt, tag, configTag)
	}
	c := &ChannelConfig{Channel: d.string(), MSPID: d.string(), RootCertPEM: d.bytes()}
	for range d.count() {
		c.Orderers = append(c.Orderers, d.bytes())
	}
	c.BlockValidation, c.Endorsement = d.string(), d.string()
	if err := d.finish(); err != nil {
		return nil, fmt.Errorf("channel configuration: %w", err)
	}
	return c, nil
}

// signerRule names the principal 'mspID.role' in Fabric's policy language;
// the embedded ledger's policies are one such principal.
func signerRule(mspID, role string) string { return "OR('" + mspID + "." + role + "')" }

// newChannelConfig is the configuration a new ledger's genesis block
// holds.
func newChannelConfig(channel string, m *localMSP) *ChannelConfig {
	return &ChannelConfig{
		Channel:         channel,
		MSPID:           m.orderer.MSPID,
		RootCertPEM:     m.caCertPEM,
		Orderers:        [][]byte{m.orderer.Serialized},
		BlockValidation: signerRule(m.orderer.MSPID, ouOrderer),
		Endorsement:     signerRule(m.peer.MSPID, ouPeer),
	}
}

// parseIdentity reads a serialized msp.SerializedIdentity: its MSP ID and
// its PEM certificate. Both encodings must be canonical (as the local MSP
// writes them), so that no two byte strings name the same identity: the
// orderer's identity is outside the hashes that cover a block.
func parseIdentity(serialized []byte) (string, []byte, *x509.Certificate, error) {
	var si msp.SerializedIdentity
	if err := proto.Unmarshal(serialized, &si); err != nil {
		return "", nil, nil, fmt.Errorf("serialized identity: %w", err)
	}
	if again, err := (proto.MarshalOptions{Deterministic: true}).Marshal(&si); err != nil || !bytes.Equal(again, serialized) || len(si.ProtoReflect().GetUnknown()) > 0 {
		return "", nil, nil, errors.New("serialized identity: not in canonical form")
	}
	blk, rest := pem.Decode(si.GetIdBytes())
	if blk == nil || blk.Type != "CERTIFICATE" {
		return "", nil, nil, errors.New("serialized identity: no PEM certificate")
	}
	if len(rest) > 0 || len(blk.Headers) > 0 || !bytes.Equal(pem.EncodeToMemory(blk), si.GetIdBytes()) {
		return "", nil, nil, errors.New("serialized identity: the certificate's PEM is not in canonical form")
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return "", nil, nil, fmt.Errorf("serialized identity: %w", err)
	}
	return si.GetMspid(), si.GetIdBytes(), cert, nil
}

// signers checks the identities that signed blocks and transactions
// against the organisation's CA: each certificate must chain to it and
// hold the role (NodeOU) its signature needs. Identities are checked once.
type signers struct {
	roots *x509.CertPool
	// mspID, if set, is the MSP every signer must name.
	mspID string
	known map[string]*signer
}

// signer is a checked identity: its key and roles, or why it was refused.
type signer struct {
	key   *ecdsa.PublicKey
	roles []string
	err   error
}

// newSigners trusts the CA certificate caPEM; mspID, if set, is the MSP
// every signer must name.
func newSigners(caPEM []byte, mspID string) (*signers, error) {
	blk, _ := pem.Decode(caPEM)
	if blk == nil {
		return nil, errors.New("the CA certificate is not PEM")
	}
	ca, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("the CA certificate: %w", err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	return &signers{roots: roots, mspID: mspID, known: make(map[string]*signer)}, nil
}

// key returns the public key of the identity serialized, if it is valid
// and holds one of roles.
func (s *signers) key(serialized []byte, roles ...string) (*ecdsa.PublicKey, error) {
	k := s.known[string(serialized)]
	if k == nil {
		k = s.check(serialized)
		s.known[string(serialized)] = k
	}
	if k.err != nil {
		return nil, k.err
	}
	for _, r := range roles {
		if slices.Contains(k.roles, r) {
			return k.key, nil
		}
	}
	return nil, fmt.Errorf("the signer holds none of the roles %v", roles)
}

func (s *signers) check(serialized []byte) *signer {
	mspID, _, cert, err := parseIdentity(serialized)
	if err != nil {
		return &signer{err: err}
	}
	if s.mspID != "" && mspID != s.mspID {
		return &signer{err: fmt.Errorf("the signer names MSP %q, not %q", mspID, s.mspID)}
	}
	// Signatures carry no trusted time; the chain is checked as it stood
	// when the certificate was issued.
	if _, err := cert.Verify(x509.VerifyOptions{Roots: s.roots, CurrentTime: cert.NotBefore.Add(time.Second), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return &signer{err: fmt.Errorf("the signer's certificate does not chain to the CA: %w", err)}
	}
	pub, ok := cert.PublicKey.(*ecdsa.PublicKey)
	if !ok {
		return &signer{err: errors.New("the signer's key is not ECDSA")}
	}
	return &signer{key: pub, roles: cert.Subject.OrganizationalUnit}
}
