// Package ledger defines what medprov needs from a ledger backend.
//
// Two backends implement Transactor: ledger/embedded runs the medprov
// chaincode in-process against a persistent, hash-chained store; ledger/fabric
// reaches a real Hyperledger Fabric network through the Fabric Gateway client.
// Everything above this package (gateway, CLI, tests) is backend-agnostic.
package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrUnavailable reports that the ledger could not be reached or did not
// answer in time. The outcome of a Submit that fails with it is unknown: the
// transaction may or may not commit, so callers retry only idempotent work.
var ErrUnavailable = errors.New("ledger unavailable")

// ErrNotFound reports that the ledger has no such transaction or block.
var ErrNotFound = errors.New("not found on ledger")

// Proposal names a chaincode function and its arguments.
type Proposal struct {
	// Function is the chaincode transaction name, e.g. "RecordReadings".
	Function string
	// Args are the string arguments, in order.
	Args []string
	// Transient is private input passed to the chaincode and never written
	// to the ledger.
	Transient map[string][]byte
	// AsAdmin submits with the organisation's admin identity instead of its
	// client identity (actor registration needs it).
	AsAdmin bool
}

// Commit describes a committed, valid transaction.
type Commit struct {
	TxID      string
	Block     uint64
	Timestamp time.Time
	// Payload is the chaincode's response payload.
	Payload []byte
}

// Event is a chaincode event from a committed, valid transaction.
type Event struct {
	Block   uint64
	TxID    string
	Name    string
	Payload []byte
}

// TxInfo locates a committed transaction.
type TxInfo struct {
	TxID      string
	Block     uint64
	Timestamp time.Time
	// Valid is false if the transaction was ordered but invalidated
	// (for example by an MVCC conflict).
	Valid bool
}

// ChaincodeError reports that the chaincode refused a proposal (endorsement
// failed) or that a transaction committed as invalid. Nothing was written.
type ChaincodeError struct {
	TxID    string
	Status  int32
	Message string
}

// Error implements error.
func (e *ChaincodeError) Error() string {
	if e.TxID != "" {
		return fmt.Sprintf("chaincode refused transaction %s: %s", e.TxID, e.Message)
	}
	return "chaincode refused proposal: " + e.Message
}

// Transactor submits and evaluates medprov chaincode transactions.
//
// Submit MUST return only after the transaction is committed in a block (or
// known to have failed). A refusal by the chaincode MUST be reported as a
// *ChaincodeError; failure to reach the ledger as an error wrapping
// ErrUnavailable. Implementations MUST be safe for concurrent use.
type Transactor interface {
	Submit(ctx context.Context, p Proposal) (*Commit, error)
	Evaluate(ctx context.Context, p Proposal) ([]byte, error)
	// Tx locates a committed transaction; ErrNotFound if there is none.
	Tx(ctx context.Context, txID string) (*TxInfo, error)
	// Events delivers chaincode events of committed blocks numbered
	// startBlock and above, in block order, until ctx is done. The channel is
	// closed when delivery stops; callers checkpoint (block, txID) themselves.
	Events(ctx context.Context, startBlock uint64) (<-chan Event, error)
	// Close releases the backend's resources.
	Close() error
}
