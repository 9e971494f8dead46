package embedded_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/medprov/medprov/ipfs/embedded"
)

func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "embedded-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	store, err := embedded.New(ctx, embedded.Config{Dir: dir})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()

	cid, err := store.Put(ctx, []byte("hello\n"))
	if err != nil {
		log.Fatal(err)
	}
	data, err := store.Get(ctx, cid)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(cid)
	fmt.Printf("%q\n", data)
	// Output:
	// bafkreicysg23kiwv34eg2d7qweipxwosdo2py4ldv42nbauguluen5v6am
	// "hello\n"
}
