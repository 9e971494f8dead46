package embedded

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hyperledger/fabric-protos-go-apiv2/msp"
	"google.golang.org/protobuf/proto"

	"github.com/medprov/medprov/envelope"
)

// Identity is one member of the local MSP: an X.509 certificate issued by
// the organisation's CA and its private key.
type Identity struct {
	MSPID   string
	CertPEM []byte
	Key     *ecdsa.PrivateKey
	// Serialized is the msp.SerializedIdentity a transaction creator
	// carries (GetCreator returns it).
	Serialized []byte
}

// localMSP is the organisation generated on first start in Dir/msp, laid out
// like a cryptogen tree: ca/, users/admin/, users/client/, and the nodes'
// identities orderers/orderer0/ (which signs blocks) and peers/peer0/
// (which endorses transactions).
type localMSP struct {
	caCertPEM []byte
	admin     *Identity
	client    *Identity
	orderer   *Identity
	peer      *Identity
}

const (
	mspDirName  = "msp"
	certFile    = "cert.pem"
	keyFile     = "key.pem"
	caDirName   = "ca"
	usersDir    = "users"
	adminName   = "admin"
	clientName  = "client"
	orderersDir = "orderers"
	peersDir    = "peers"
	ordererName = "orderer0"
	peerName    = "peer0"
	certYears   = 10
	nodeOUsYAML = `NodeOUs:
  Enable: true
  ClientOUIdentifier:
    Certificate: cacerts/ca-cert.pem
    OrganizationalUnitIdentifier: client
  PeerOUIdentifier:
    Certificate: cacerts/ca-cert.pem
    OrganizationalUnitIdentifier: peer
  AdminOUIdentifier:
    Certificate: cacerts/ca-cert.pem
    OrganizationalUnitIdentifier: admin
  OrdererOUIdentifier:
    Certificate: cacerts/ca-cert.pem
    OrganizationalUnitIdentifier: orderer
`
)

// member is one identity of the local MSP: where it lives under msp/, its
// certificate's common name and its NodeOU.
type member struct {
	dir, cn, ou string
}

// members are the local MSP's identities; nodeMembers those that earlier
// versions did not create, which loadOrCreateMSP adds to an MSP that
// lacks them.
func members(domain string) (users, nodeMembers []member) {
	return []member{
			{dir: filepath.Join(usersDir, adminName), cn: "Admin@" + domain, ou: ouAdmin},
			{dir: filepath.Join(usersDir, clientName), cn: "User1@" + domain, ou: ouClient},
		}, []member{
			{dir: filepath.Join(orderersDir, ordererName), cn: ordererName + "." + domain, ou: ouOrderer},
			{dir: filepath.Join(peersDir, peerName), cn: peerName + "." + domain, ou: ouPeer},
		}
}

// NodeOUs of the local MSP's certificates.
const (
	ouAdmin   = "admin"
	ouClient  = "client"
	ouOrderer = "orderer"
	ouPeer    = "peer"
)

// loadOrCreateMSP loads the local MSP under dir, generating it if dir/msp
// does not exist yet, and issuing the orderer and peer identities (with
// the MSP's CA) if an MSP written by an earlier version lacks them. added
// names the identities it issued into an existing MSP.
func loadOrCreateMSP(dir, mspID string, now time.Time) (m *localMSP, added []string, err error) {
	root := filepath.Join(dir, mspDirName)
	caCertPath := filepath.Join(root, caDirName, certFile)
	_, err = os.Stat(caCertPath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := createMSP(root, mspID, now); err != nil {
			return nil, nil, fmt.Errorf("create local MSP: %w", err)
		}
	case err != nil:
		return nil, nil, fmt.Errorf("local MSP: %w", err)
	}
	users, nodes := members(strings.ToLower(mspID))
	for _, mb := range nodes {
		_, err := os.Stat(filepath.Join(root, mb.dir))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if err := addMember(root, mb, now); err != nil {
				return nil, nil, fmt.Errorf("local MSP: add the %s identity: %w", mb.ou, err)
			}
			added = append(added, mb.dir)
		case err != nil:
			return nil, nil, fmt.Errorf("local MSP: %w", err)
		}
	}
	caPEM, err := os.ReadFile(caCertPath)
	if err != nil {
		return nil, nil, fmt.Errorf("local MSP: %w", err)
	}
	m = &localMSP{caCertPEM: caPEM}
	all := append(users, nodes...)
	for i, id := range []**Identity{&m.admin, &m.client, &m.orderer, &m.peer} {
		if *id, err = loadIdentity(filepath.Join(root, all[i].dir), mspID); err != nil {
			return nil, nil, err
		}
	}
	return m, added, nil
}

func loadIdentity(dir, mspID string) (*Identity, error) {
	certPEM, err := os.ReadFile(filepath.Join(dir, certFile))
	if err != nil {
		return nil, fmt.Errorf("local MSP identity: %w", err)
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, keyFile))
	if err != nil {
		return nil, fmt.Errorf("local MSP identity: %w", err)
	}
	key, err := envelope.ParsePrivateKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("local MSP identity %s: %w", dir, err)
	}
	ser, err := proto.Marshal(&msp.SerializedIdentity{Mspid: mspID, IdBytes: certPEM})
	if err != nil {
		return nil, fmt.Errorf("serialize identity: %w", err)
	}
	return &Identity{MSPID: mspID, CertPEM: certPEM, Key: key, Serialized: ser}, nil
}

// createMSP writes a CA and the NodeOU identities (admin, client, orderer,
// peer) into a temporary directory and renames it into place, so a crash
// never leaves half an MSP behind.
func createMSP(root, mspID string, now time.Time) error {
	if err := os.MkdirAll(filepath.Dir(root), dirPerm); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(root), ".msp-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp) //nolint:errcheck // best-effort cleanup of a temp dir already renamed on success
	domain := strings.ToLower(mspID)
	caKey, err := envelope.GenerateKey()
	if err != nil {
		return err
	}
	caTmpl := &x509.Certificate{
		Subject: pkix.Name{
			CommonName:   "ca." + domain,
			Organization: []string{mspID},
		},
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	caCert, caDER, err := issue(caTmpl, caTmpl, &caKey.PublicKey, caKey, now)
	if err != nil {
		return err
	}
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	if err := writeMember(filepath.Join(tmp, caDirName), caPEM, caKey); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(tmp, "cacerts"), dirPerm); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(tmp, "cacerts", "ca-cert.pem"), caPEM, filePerm); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(tmp, "config.yaml"), []byte(nodeOUsYAML), filePerm); err != nil {
		return err
	}
	users, nodes := members(domain)
	for _, mb := range append(users, nodes...) {
		if err := issueMember(filepath.Join(tmp, mb.dir), mb, mspID, caCert, caKey, now); err != nil {
			return err
		}
	}
	return os.Rename(tmp, root)
}

// issueMember writes into dir a new key and a certificate for mb issued by
// the CA.
func issueMember(dir string, mb member, mspID string, caCert *x509.Certificate, caKey *ecdsa.PrivateKey, now time.Time) error {
	key, err := envelope.GenerateKey()
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		Subject: pkix.Name{
			CommonName:         mb.cn,
			Organization:       []string{mspID},
			OrganizationalUnit: []string{mb.ou},
		},
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	_, der, err := issue(tmpl, caCert, &key.PublicKey, caKey, now)
	if err != nil {
		return err
	}
	return writeMember(dir, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), key)
}

// addMember issues mb with the CA of the existing MSP in root, in a
// temporary directory renamed into place, so a crash never leaves half an
// identity behind. Its certificate names the MSP the CA certificate names.
func addMember(root string, mb member, now time.Time) error {
	caDir := filepath.Join(root, caDirName)
	caPEM, err := os.ReadFile(filepath.Join(caDir, certFile))
	if err != nil {
		return err
	}
	blk, _ := pem.Decode(caPEM)
	if blk == nil {
		return fmt.Errorf("%s is not a PEM certificate", filepath.Join(caDir, certFile))
	}
	caCert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return fmt.Errorf("CA certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(filepath.Join(caDir, keyFile))
	if err != nil {
		return err
	}
	caKey, err := envelope.ParsePrivateKey(keyPEM)
	if err != nil {
		return fmt.Errorf("CA key: %w", err)
	}
	mspID := caCert.Subject.CommonName
	if len(caCert.Subject.Organization) > 0 {
		mspID = caCert.Subject.Organization[0]
	}
	tmp, err := os.MkdirTemp(root, ".member-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp) //nolint:errcheck // best-effort cleanup of a temp dir already renamed on success
	if err := issueMember(tmp, mb, mspID, caCert, caKey, now); err != nil {
		return err
	}
	final := filepath.Join(root, mb.dir)
	if err := os.MkdirAll(filepath.Dir(final), dirPerm); err != nil {
		return err
	}
	return os.Rename(tmp, final)
}

func issue(tmpl, parent *x509.Certificate, pub *ecdsa.PublicKey, signer *ecdsa.PrivateKey, now time.Time) (*x509.Certificate, []byte, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, nil, fmt.Errorf("certificate serial: %w", err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, nil, fmt.Errorf("marshal public key: %w", err)
	}
	ski := sha256.Sum256(pubDER)
	tmpl.SerialNumber = serial
	tmpl.SubjectKeyId = ski[:]
	tmpl.NotBefore = now.Add(-5 * time.Minute)
	tmpl.NotAfter = now.AddDate(certYears, 0, 0)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		return nil, nil, fmt.Errorf("issue certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("parse issued certificate: %w", err)
	}
	return cert, der, nil
}

func writeMember(dir string, certPEM []byte, key *ecdsa.PrivateKey) error {
	if err := os.MkdirAll(dir, dirPerm); err != nil {
		return err
	}
	keyPEM, err := envelope.MarshalPrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, keyFile), keyPEM, filePerm); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, certFile), certPEM, filePerm)
}
