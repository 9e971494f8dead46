package fabric_test

import (
	"context"
	"fmt"
	"log"

	"github.com/medprov/medprov/ledger"
	"github.com/medprov/medprov/ledger/fabric"
)

// Connect as the hospital organisation of a network started with
// scripts/network.sh up, then register an actor with the admin identity.
func Example() {
	ctx := context.Background()
	profile, err := fabric.LoadProfile(".cache/network/profile.json")
	if err != nil {
		log.Fatal(err)
	}
	cfg, err := profile.Config("hospital")
	if err != nil {
		log.Fatal(err)
	}
	tr, err := fabric.New(ctx, cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer tr.Close()

	commit, err := tr.Submit(ctx, ledger.Proposal{
		Function: "RegisterActor",
		Args:     []string{`{"id":"patient-1","role":"patient","publicKey":"-----BEGIN PUBLIC KEY-----\n..."}`},
		AsAdmin:  true,
	})
	if err != nil {
		log.Fatal(err) // a *ledger.ChaincodeError if refused, ledger.ErrUnavailable if unreachable
	}
	fmt.Println("committed in block", commit.Block)
}
