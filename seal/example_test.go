package seal_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/medprov/medprov/seal"
)

func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "seal-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	master, err := seal.LoadOrCreateMasterKey(filepath.Join(dir, "master.key"))
	if err != nil {
		log.Fatal(err)
	}
	k, err := seal.OpenKeyring(ctx, seal.KeyringConfig{Path: filepath.Join(dir, "keyring.db"), MasterKey: master})
	if err != nil {
		log.Fatal(err)
	}
	defer k.Close()

	sealed, err := k.Seal(ctx, "patient-7", "pulse-ox-1:42", []byte(`{"value":97}`))
	if err != nil {
		log.Fatal(err)
	}
	plaintext, err := k.Open(ctx, "patient-7", "pulse-ox-1:42", sealed)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s\n", plaintext)

	if err := k.Shred(ctx, "patient-7"); err != nil {
		log.Fatal(err)
	}
	_, err = k.Open(ctx, "patient-7", "pulse-ox-1:42", sealed)
	fmt.Println(errors.Is(err, seal.ErrErased))
	// Output:
	// {"value":97}
	// true
}
