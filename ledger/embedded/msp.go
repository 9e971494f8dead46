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
// like a cryptogen user tree: ca/, users/admin/, users/client/.
type localMSP struct {
	caCertPEM []byte
	admin     *Identity
	client    *Identity
}

const (
	mspDirName  = "msp"
	certFile    = "cert.pem"
	keyFile     = "key.pem"
	caDirName   = "ca"
	usersDir    = "users"
	adminName   = "admin"
	clientName  = "client"
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

// loadOrCreateMSP loads the local MSP under dir, generating it if dir/msp
// does not exist yet.
func loadOrCreateMSP(dir, mspID string, now time.Time) (*localMSP, error) {
	root := filepath.Join(dir, mspDirName)
	caCertPath := filepath.Join(root, caDirName, certFile)
	_, err := os.Stat(caCertPath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := createMSP(root, mspID, now); err != nil {
			return nil, fmt.Errorf("create local MSP: %w", err)
		}
	case err != nil:
		return nil, fmt.Errorf("local MSP: %w", err)
	}
	caPEM, err := os.ReadFile(caCertPath)
	if err != nil {
		return nil, fmt.Errorf("local MSP: %w", err)
	}
	m := &localMSP{caCertPEM: caPEM}
	if m.admin, err = loadIdentity(filepath.Join(root, usersDir, adminName), mspID); err != nil {
		return nil, err
	}
	if m.client, err = loadIdentity(filepath.Join(root, usersDir, clientName), mspID); err != nil {
		return nil, err
	}
	return m, nil
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

// createMSP writes a CA and two NodeOU identities into a temporary directory
// and renames it into place, so a crash never leaves half an MSP behind.
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
	for _, u := range []struct{ name, cn string }{
		{adminName, "Admin@" + domain},
		{clientName, "User1@" + domain},
	} {
		key, err := envelope.GenerateKey()
		if err != nil {
			return err
		}
		tmpl := &x509.Certificate{
			Subject: pkix.Name{
				CommonName:         u.cn,
				Organization:       []string{mspID},
				OrganizationalUnit: []string{u.name},
			},
			KeyUsage: x509.KeyUsageDigitalSignature,
		}
		_, der, err := issue(tmpl, caCert, &key.PublicKey, caKey, now)
		if err != nil {
			return err
		}
		certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
		if err := writeMember(filepath.Join(tmp, usersDir, u.name), certPEM, key); err != nil {
			return err
		}
	}
	return os.Rename(tmp, root)
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
