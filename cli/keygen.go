package cli

import (
	"crypto/ecdsa"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/medprov/medprov/envelope"
)

func newKeygenCmd(a *app) *cobra.Command {
	var out string
	var force bool
	cmd := &cobra.Command{
		Use:   "keygen --out key.pem",
		Short: "Generate an ECDSA P-256 key pair for an actor or a device",
		Long: `keygen writes a fresh ECDSA P-256 private key as PKCS#8 PEM to --out (mode
0600, readable only by you) and its public key as PEM "PUBLIC KEY" next to
it: key.pem gives key.pub.pem. The public key is what "actor register" and
"device register" put on the ledger; the private key never leaves the file.

The files are the same as openssl's:
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out key.pem
  openssl pkey -in key.pem -pubout -out key.pub.pem
Existing files are not overwritten unless --force is given.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pub, err := keygen(out, force)
			if err != nil {
				return err
			}
			return a.emit(map[string]string{"privateKey": out, "publicKey": pub}, func(w io.Writer) {
				fmt.Fprintf(w, "private key: %s (0600)\npublic key:  %s\n", out, pub)
			})
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "private key file to write (PEM, 0600)")
	cmd.Flags().BoolVar(&force, "force", false, "overwrite existing files")
	required(cmd, "out")
	return cmd
}

// publicKeyPath returns where keygen writes the public key of out.
func publicKeyPath(out string) string {
	return strings.TrimSuffix(out, ".pem") + ".pub.pem"
}

// keygen writes a new key pair and returns the public key's path.
func keygen(out string, force bool) (string, error) {
	key, err := envelope.GenerateKey()
	if err != nil {
		return "", err
	}
	pubPath := publicKeyPath(out)
	if err := writeKeyPair(key, out, pubPath, force); err != nil {
		return "", err
	}
	return pubPath, nil
}

// writeKeyPair writes key to privPath (0600) and its public key to pubPath
// (0644).
func writeKeyPair(key *ecdsa.PrivateKey, privPath, pubPath string, force bool) error {
	priv, err := envelope.MarshalPrivateKey(key)
	if err != nil {
		return err
	}
	pub, err := envelope.MarshalPublicKey(&key.PublicKey)
	if err != nil {
		return err
	}
	if err := writeFile(privPath, priv, 0o600, force); err != nil {
		return err
	}
	return writeFile(pubPath, pub, 0o644, force)
}

// writeFile writes data to path with mode perm. Without force it refuses
// to replace an existing file; with force the mode is reset to perm.
func writeFile(path string, data []byte, perm fs.FileMode, force bool) error {
	flag := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if force {
		flag = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	}
	f, err := os.OpenFile(path, flag, perm)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s exists (use --force to overwrite)", path)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Chmod(perm); err != nil { // umask or a pre-existing file
		f.Close()
		return fmt.Errorf("chmod %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
