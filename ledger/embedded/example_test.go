package embedded_test

import (
	"bytes"
	"context"
	"errors"
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

func ExampleVerifyDir() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "ledger-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	cc, err := contractapi.NewChaincode(&testContract{})
	if err != nil {
		log.Fatal(err)
	}
	l, err := embedded.New(ctx, embedded.Config{Dir: dir, Chaincode: cc, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		log.Fatal(err)
	}
	if _, err := l.Submit(ctx, ledger.Proposal{Function: "Put", Args: []string{"greeting", "hello"}}); err != nil {
		log.Fatal(err)
	}
	if err := l.Close(); err != nil {
		log.Fatal(err)
	}

	// Offline, with the ledger closed: every block, state record and index.
	rep, err := embedded.VerifyDir(ctx, dir)
	if err != nil {
		var te *embedded.TamperError
		if errors.As(err, &te) {
			log.Fatalf("first bad block: %d", te.Block)
		}
		log.Fatal(err)
	}
	fmt.Printf("ok: %d blocks, %d keys, anchored: %v\n", rep.Blocks, rep.Keys, rep.Anchored)
	// Output:
	// ok: 2 blocks, 1 keys, anchored: true
}

func ExampleParseBlock() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "ledger-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	cc, err := contractapi.NewChaincode(&testContract{})
	if err != nil {
		log.Fatal(err)
	}
	l, err := embedded.New(ctx, embedded.Config{Dir: dir, Chaincode: cc, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	commit, err := l.Submit(ctx, ledger.Proposal{Function: "Put", Args: []string{"greeting", "hello"}})
	if err != nil {
		log.Fatal(err)
	}

	// What a regulator receives: the trust root once, then blocks.
	trust, err := l.Trust(ctx)
	if err != nil {
		log.Fatal(err)
	}
	raw, err := l.RawBlock(ctx, commit.Block)
	if err != nil {
		log.Fatal(err)
	}
	blk, err := embedded.ParseBlock(raw)
	if err != nil {
		log.Fatal(err)
	}
	tx := blk.Txs[0]
	fmt.Printf("block %d, data hash matches: %v\n", blk.Header.Number, bytes.Equal(blk.ComputedDataHash, blk.Header.DataHash))
	fmt.Printf("signed by the orderer of %s, policy %s\n", blk.Orderers[0].Signer.MSPID, trust.Config.BlockValidation.Rule)
	fmt.Printf("%s%q by %s, endorsed under %s, writes %s\n", tx.Function, tx.Args, tx.Creator.Signer.MSPID, trust.Endorsement.Rule, tx.Writes[0].Key)
	// Output:
	// block 1, data hash matches: true
	// signed by the orderer of HospitalMSP, policy OR('HospitalMSP.orderer')
	// Put["greeting" "hello"] by HospitalMSP, endorsed under OR('HospitalMSP.peer'), writes greeting
}
