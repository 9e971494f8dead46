// Command medprov is the medprov command-line tool: it runs the gateway
// ("medprov serve") and acts on a running one through its HTTP API (keys,
// actors, devices, readings, consent, access, audit and an end-to-end demo).
// "medprov help" lists the commands.
package main

import (
	"os"

	"github.com/medprov/medprov/cli"
)

func main() { os.Exit(cli.Main()) }
