package fabric

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/hyperledger/fabric-gateway/pkg/client"
	"github.com/hyperledger/fabric-protos-go-apiv2/gateway"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/medprov/medprov/ledger"
)

// chaincodeMarker starts every refusal the medprov chaincode returns
// ("[medprov:<code>] message").
const chaincodeMarker = "[medprov:"

// chaincodeResponse is how the peer's gateway reports an error response the
// chaincode produced with a payload: "chaincode response 500, message".
var chaincodeResponse = regexp.MustCompile(`chaincode response (\d+), (.*)`)

// unavailableHints are messages of failures on the peer's side of the
// chaincode (the chaincode server is down or slow, a peer went away), as
// opposed to a refusal by the chaincode itself.
var unavailableHints = []string{
	"error in simulation",
	"could not launch chaincode",
	"chaincode stream terminated",
	"connection refused",
	"timeout expired",
	"code = Unavailable",
	"code = DeadlineExceeded",
	// discovery knows too few live peers to satisfy the endorsement policy
	"no combination of peers",
	"no peer combination",
}

// classify turns a gateway error into the ledger's error vocabulary:
// a chaincode refusal becomes *ledger.ChaincodeError, an unreachable or
// silent network wraps ledger.ErrUnavailable, a cancelled caller context
// wraps the context's error.
func classify(ctx context.Context, op, txID string, err error) error {
	var commitErr *client.CommitError
	if errors.As(err, &commitErr) {
		return &ledger.ChaincodeError{
			TxID:    commitErr.TransactionID,
			Status:  int32(commitErr.Code),
			Message: "transaction invalidated: " + commitErr.Code.String(),
		}
	}
	var txErr *client.TransactionError
	if errors.As(err, &txErr) && txErr.TransactionID != "" {
		txID = txErr.TransactionID
	}

	st, isStatus := status.FromError(err)
	if !isStatus {
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("fabric: %s: %w (%w)", op, ledger.ErrUnavailable, err)
		}
		if ctx.Err() != nil {
			return fmt.Errorf("fabric: %s: %w", op, ctx.Err())
		}
		return fmt.Errorf("fabric: %s: %w", op, err)
	}

	// The endorsers' own messages travel as ErrorDetail entries of the
	// status (EndorseError and friends wrap the same status).
	messages := []string{st.Message()}
	for _, d := range st.Details() {
		if detail, ok := d.(*gateway.ErrorDetail); ok {
			messages = append(messages, detail.GetMessage())
		}
	}
	// A refusal by the medprov chaincode is recognised by its marker,
	// wherever the peer put it.
	for _, m := range messages {
		if i := strings.Index(m, chaincodeMarker); i >= 0 {
			return &ledger.ChaincodeError{TxID: txID, Status: responseStatus(m), Message: m[i:]}
		}
	}

	switch st.Code() {
	case codes.Canceled:
		if ctx.Err() != nil {
			return fmt.Errorf("fabric: %s: %w", op, ctx.Err())
		}
		return fmt.Errorf("fabric: %s: %w: %s", op, ledger.ErrUnavailable, st.Message())
	case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted:
		return fmt.Errorf("fabric: %s: %w: %s", op, ledger.ErrUnavailable, joinMessages(messages))
	case codes.FailedPrecondition:
		if looksUnavailable(st.Message()) {
			return fmt.Errorf("fabric: %s: %w: %s", op, ledger.ErrUnavailable, st.Message())
		}
	case codes.Aborted, codes.Unknown:
		// Endorsement or evaluation failed on the peer. Either the chaincode
		// could not run (unavailable) or it refused without our marker
		// (e.g. the contract API rejecting an unknown function).
		details := messages[1:]
		if len(details) == 0 {
			details = messages
		}
		for _, m := range details {
			if looksUnavailable(m) {
				return fmt.Errorf("fabric: %s: %w: %s", op, ledger.ErrUnavailable, joinMessages(messages))
			}
		}
		msg := details[0]
		if m := chaincodeResponse.FindStringSubmatch(msg); m != nil {
			msg = m[2]
		}
		return &ledger.ChaincodeError{TxID: txID, Status: responseStatus(details[0]), Message: msg}
	}
	return fmt.Errorf("fabric: %s: %w", op, err)
}

// responseStatus extracts the chaincode's status from "chaincode response
// NNN, ..." and defaults to 500, the status of shim errors.
func responseStatus(msg string) int32 {
	if m := chaincodeResponse.FindStringSubmatch(msg); m != nil {
		if n, err := strconv.ParseInt(m[1], 10, 32); err == nil {
			return int32(n)
		}
	}
	return 500
}

func looksUnavailable(msg string) bool {
	for _, h := range unavailableHints {
		if strings.Contains(msg, h) {
			return true
		}
	}
	return false
}

func joinMessages(messages []string) string {
	var nonEmpty []string
	for _, m := range messages {
		if m != "" {
			nonEmpty = append(nonEmpty, m)
		}
	}
	return strings.Join(nonEmpty, "; ")
}
