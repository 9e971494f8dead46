package embedded_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"os"

	"github.com/hyperledger/fabric-contract-api-go/v2/contractapi"

	"github.com/medprov/medprov/ledger"
	"github.com/medprov/medprov/ledger/embedded"
)

func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "ledger-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	cc, err := contractapi.NewChaincode(&testContract{}) // e.g. chaincode.NewChaincode()
	if err != nil {
		log.Fatal(err)
	}
	l, err := embedded.New(ctx, embedded.Config{Dir: dir, Chaincode: cc, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()

	var tr ledger.Transactor = l
	commit, err := tr.Submit(ctx, ledger.Proposal{Function: "Put", Args: []string{"greeting", "hello"}})
	if err != nil {
		log.Fatal(err)
	}
	value, err := tr.Evaluate(ctx, ledger.Proposal{Function: "Get", Args: []string{"greeting"}})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("block %d: greeting=%s\n", commit.Block, value)
	fmt.Println("chain verifies:", l.Verify(ctx) == nil)
	// Output:
	// block 1: greeting=hello
	// chain verifies: true
}
