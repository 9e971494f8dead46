package fabric

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/hyperledger/fabric-gateway/pkg/identity"
)

// loadMSPIdentity reads an MSP folder as cryptogen and fabric-ca write it:
// the certificate from signcerts/ and the matching private key from
// keystore/.
func loadMSPIdentity(mspID, dir string) (identity.Identity, identity.Sign, error) {
	certPEM, err := readSingleFile(filepath.Join(dir, "signcerts"))
	if err != nil {
		return nil, nil, err
	}
	cert, err := identity.CertificateFromPEM(certPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("parse certificate in %s: %w", dir, err)
	}
	id, err := identity.NewX509Identity(mspID, cert)
	if err != nil {
		return nil, nil, fmt.Errorf("identity from %s: %w", dir, err)
	}
	keyPEM, err := readSingleFile(filepath.Join(dir, "keystore"))
	if err != nil {
		return nil, nil, err
	}
	key, err := identity.PrivateKeyFromPEM(keyPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("parse private key in %s: %w", dir, err)
	}
	sign, err := identity.NewPrivateKeySign(key)
	if err != nil {
		return nil, nil, fmt.Errorf("signer from %s: %w", dir, err)
	}
	return id, sign, nil
}

// readSingleFile returns the content of the only regular file in dir (the
// first by name if there are several; os.ReadDir sorts).
func readSingleFile(dir string) ([]byte, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read MSP folder: %w", err)
	}
	var names []string
	for _, e := range entries {
		if e.Type().IsRegular() {
			names = append(names, e.Name())
		}
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("no file in %s", dir)
	}
	data, err := os.ReadFile(filepath.Join(dir, names[0]))
	if err != nil {
		return nil, fmt.Errorf("read MSP file: %w", err)
	}
	if len(data) == 0 {
		return nil, errors.New("empty file " + filepath.Join(dir, names[0]))
	}
	return data, nil
}
