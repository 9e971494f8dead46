//go:build tools

// Package medprov pins the module's dependencies while packages are being written.
package medprov

import (
	_ "github.com/gin-gonic/gin"
	_ "github.com/hyperledger/fabric-chaincode-go/v2/pkg/cid"
	_ "github.com/hyperledger/fabric-chaincode-go/v2/shim"
	_ "github.com/hyperledger/fabric-contract-api-go/v2/contractapi"
	_ "github.com/hyperledger/fabric-gateway/pkg/client"
	_ "github.com/hyperledger/fabric-protos-go-apiv2/peer"
	_ "github.com/ipfs/boxo/blockstore"
	_ "github.com/ipfs/boxo/ipld/unixfs/importer/balanced"
	_ "github.com/ipfs/boxo/chunker"
	_ "github.com/ipfs/boxo/ipld/merkledag"
	_ "github.com/ipfs/boxo/blockservice"
	_ "github.com/ipfs/go-ipfs-api"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/spf13/cobra"
	_ "go.etcd.io/bbolt"
)
