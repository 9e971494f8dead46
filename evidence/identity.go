package evidence

import (
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Errors of identity and signature checks.
var (
	// ErrUnknownMSP: the signer names an MSP the trust root does not hold.
	ErrUnknownMSP = errors.New("evidence: signer's MSP is not in the trust root")
	// ErrChain: the signer's certificate does not chain to its MSP's roots.
	ErrChain = errors.New("evidence: certificate does not chain to the MSP's root")
	// ErrSignature: the signature does not verify under the certificate.
	ErrSignature = errors.New("evidence: signature does not verify")
)

// Validator checks signatures and their signers against the
// organisations of a trust root, offline.
type Validator struct {
	orgs map[string]*orgCerts
}

type orgCerts struct {
	org           Org
	roots, inters *x509.CertPool
}

// NewValidator prepares the certificate pools of cfg's organisations.
func NewValidator(cfg Config) (*Validator, error) {
	v := &Validator{orgs: map[string]*orgCerts{}}
	for _, o := range cfg.Orgs {
		oc := &orgCerts{org: o, roots: x509.NewCertPool(), inters: x509.NewCertPool()}
		for _, c := range o.RootCerts {
			cert, err := parseCert(c)
			if err != nil {
				return nil, fmt.Errorf("evidence: root certificate of %s: %w", o.MSPID, err)
			}
			oc.roots.AddCert(cert)
		}
		for _, c := range o.Intermediates {
			cert, err := parseCert(c)
			if err != nil {
				return nil, fmt.Errorf("evidence: intermediate certificate of %s: %w", o.MSPID, err)
			}
			oc.inters.AddCert(cert)
		}
		v.orgs[o.MSPID] = oc
	}
	return v, nil
}

// parseCert reads a PEM (or DER) X.509 certificate.
func parseCert(b []byte) (*x509.Certificate, error) {
	if blk, _ := pem.Decode(b); blk != nil {
		b = blk.Bytes
	}
	return x509.ParseCertificate(b)
}

// Verify checks sig: the signer's MSP is known, its certificate chains to
// that MSP's roots (through its intermediates) at time at (the zero time
// checks the chain at the certificate's own start of validity, for
// signatures whose time the evidence does not carry), and the ECDSA
// signature verifies over SHA-256(sig.Signed). It returns the signer with
// its roles (the OUs client, peer, admin, orderer when the MSP uses
// NodeOUs).
func (v *Validator) Verify(sig Signature, at time.Time) (Signer, error) {
	oc, ok := v.orgs[sig.Signer.MSPID]
	if !ok {
		return Signer{}, fmt.Errorf("%w: %q", ErrUnknownMSP, sig.Signer.MSPID)
	}
	cert, err := parseCert(sig.Signer.CertPEM)
	if err != nil {
		return Signer{}, fmt.Errorf("%w: %v", ErrChain, err)
	}
	if at.IsZero() {
		at = cert.NotBefore.Add(time.Second)
	}
	if _, err := cert.Verify(x509.VerifyOptions{
		Roots: oc.roots, Intermediates: oc.inters, CurrentTime: at,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	}); err != nil {
		return Signer{}, fmt.Errorf("%w: %v", ErrChain, err)
	}
	pub, ok := cert.PublicKey.(*ecdsa.PublicKey)
	if !ok {
		return Signer{}, fmt.Errorf("%w: not an ECDSA key", ErrSignature)
	}
	digest := sha256.Sum256(sig.Signed)
	if !ecdsa.VerifyASN1(pub, digest[:], sig.Signature) {
		return Signer{}, ErrSignature
	}
	s := Signer{MSPID: sig.Signer.MSPID, Key: string(cert.Raw)}
	if oc.org.NodeOUs {
		for _, ou := range cert.Subject.OrganizationalUnit {
			switch ou {
			case RoleClient, RolePeer, RoleAdmin, RoleOrderer:
				if !slices.Contains(s.Roles, ou) {
					s.Roles = append(s.Roles, ou)
				}
			}
		}
	}
	return s, nil
}

// SameIdentity reports whether two identities are the same certificate of
// the same MSP.
func SameIdentity(a, b Identity) bool {
	if a.MSPID != b.MSPID {
		return false
	}
	ca, err1 := parseCert(a.CertPEM)
	cb, err2 := parseCert(b.CertPEM)
	return err1 == nil && err2 == nil && ca.Equal(cb)
}

// KeyOf returns the signer key (certificate DER) of an identity, to match
// verified signers against a quorum policy's members.
func KeyOf(id Identity) string {
	c, err := parseCert(id.CertPEM)
	if err != nil {
		return ""
	}
	return string(c.Raw)
}
