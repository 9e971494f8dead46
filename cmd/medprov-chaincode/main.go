// Command medprov-chaincode runs the medprov chaincode for a Fabric peer.
//
// With a listen address and a chaincode package ID (flags -address and -id,
// or CHAINCODE_SERVER_ADDRESS and CORE_CHAINCODE_ID_NAME) it runs as a
// chaincode server (chaincode as a service): the peer dials it at the address
// named in the package's connection.json. Without them it starts the way a
// peer-launched chaincode does and connects to the peer itself.
//
// The server speaks plain gRPC: it is meant to listen on loopback next to
// its peer (scripts/network.sh), so TLS is off unless -tls-cert and -tls-key
// are given.
package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"

	"github.com/hyperledger/fabric-chaincode-go/v2/shim"

	"github.com/medprov/medprov/chaincode"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		slog.Error("medprov-chaincode stopped", "err", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("medprov-chaincode", flag.ContinueOnError)
	address := fs.String("address", os.Getenv("CHAINCODE_SERVER_ADDRESS"),
		"listen address of the chaincode server, e.g. 127.0.0.1:9999 (env CHAINCODE_SERVER_ADDRESS)")
	id := fs.String("id", os.Getenv("CORE_CHAINCODE_ID_NAME"),
		"chaincode package ID installed on the peer, label:hash (env CORE_CHAINCODE_ID_NAME)")
	tlsCert := fs.String("tls-cert", "", "PEM server certificate; enables TLS together with -tls-key")
	tlsKey := fs.String("tls-key", "", "PEM server private key")
	tlsClientCA := fs.String("tls-client-ca", "", "PEM CA certificates; when set, the peer must present a client certificate")
	if err := fs.Parse(args); err != nil {
		return err
	}

	cc, err := chaincode.NewChaincode()
	if err != nil {
		return fmt.Errorf("build chaincode: %w", err)
	}

	if *address == "" && *id == "" {
		slog.Info("no server address: connecting to the peer as a peer-launched chaincode")
		return cc.Start()
	}
	if *address == "" || *id == "" {
		return errors.New("chaincode server needs both -address and -id (CHAINCODE_SERVER_ADDRESS, CORE_CHAINCODE_ID_NAME)")
	}

	tlsProps, err := loadTLS(*tlsCert, *tlsKey, *tlsClientCA)
	if err != nil {
		return err
	}
	server := &shim.ChaincodeServer{
		CCID:     *id,
		Address:  *address,
		CC:       cc,
		TLSProps: tlsProps,
	}
	slog.Info("chaincode server listening", "address", *address, "id", *id, "tls", !tlsProps.Disabled)
	return server.Start()
}

// loadTLS reads the server's TLS material; with neither certificate nor key
// TLS is disabled.
func loadTLS(certFile, keyFile, clientCAFile string) (shim.TLSProperties, error) {
	if certFile == "" && keyFile == "" {
		if clientCAFile != "" {
			return shim.TLSProperties{}, errors.New("-tls-client-ca needs -tls-cert and -tls-key")
		}
		return shim.TLSProperties{Disabled: true}, nil
	}
	if certFile == "" || keyFile == "" {
		return shim.TLSProperties{}, errors.New("TLS needs both -tls-cert and -tls-key")
	}
	cert, err := os.ReadFile(certFile)
	if err != nil {
		return shim.TLSProperties{}, fmt.Errorf("read TLS certificate: %w", err)
	}
	key, err := os.ReadFile(keyFile)
	if err != nil {
		return shim.TLSProperties{}, fmt.Errorf("read TLS key: %w", err)
	}
	props := shim.TLSProperties{Cert: cert, Key: key}
	if clientCAFile != "" {
		if props.ClientCACerts, err = os.ReadFile(clientCAFile); err != nil {
			return shim.TLSProperties{}, fmt.Errorf("read TLS client CA: %w", err)
		}
	}
	return props, nil
}
