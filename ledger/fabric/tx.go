package fabric

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/hyperledger/fabric-gateway/pkg/client"
	"github.com/hyperledger/fabric-protos-go-apiv2/common"
	"github.com/hyperledger/fabric-protos-go-apiv2/peer"
	"google.golang.org/protobuf/proto"

	"github.com/medprov/medprov/ledger"
)

// qscc is the peer's ledger query system chaincode.
const qscc = "qscc"

// Tx locates a committed transaction through the peer's qscc system
// chaincode: GetTransactionByID gives the validation code and timestamp,
// GetBlockByTxID the block number. A transaction the peer does not know is
// ledger.ErrNotFound.
func (t *Transactor) Tx(ctx context.Context, txID string) (*ledger.TxInfo, error) {
	if txID == "" {
		return nil, fmt.Errorf("fabric: empty transaction ID: %w", ledger.ErrNotFound)
	}
	raw, err := t.evaluateQSCC(ctx, "GetTransactionByID", txID)
	if err != nil {
		return nil, err
	}
	var processed peer.ProcessedTransaction
	if err := proto.Unmarshal(raw, &processed); err != nil {
		return nil, fmt.Errorf("fabric: decode transaction %s: %w", txID, err)
	}
	timestamp, err := envelopeTime(processed.GetTransactionEnvelope())
	if err != nil {
		return nil, err
	}

	raw, err = t.evaluateQSCC(ctx, "GetBlockByTxID", txID)
	if err != nil {
		return nil, err
	}
	var block common.Block
	if err := proto.Unmarshal(raw, &block); err != nil {
		return nil, fmt.Errorf("fabric: decode block of %s: %w", txID, err)
	}
	return &ledger.TxInfo{
		TxID:      txID,
		Block:     block.GetHeader().GetNumber(),
		Timestamp: timestamp,
		Valid:     processed.GetValidationCode() == int32(peer.TxValidationCode_VALID),
	}, nil
}

func (t *Transactor) evaluateQSCC(ctx context.Context, fn, txID string) ([]byte, error) {
	contract := t.user.GetNetwork(t.cfg.Channel).GetContract(qscc)
	evalCtx, cancel := context.WithTimeout(ctx, t.cfg.EvaluateTimeout)
	defer cancel()
	raw, err := contract.EvaluateWithContext(evalCtx, fn, client.WithArguments(t.cfg.Channel, txID))
	if err == nil {
		return raw, nil
	}
	classified := classify(ctx, "qscc "+fn, "", err)
	var ccErr *ledger.ChaincodeError
	if errors.As(classified, &ccErr) && isNoSuchTx(ccErr.Message) {
		return nil, fmt.Errorf("fabric: transaction %s: %w", txID, ledger.ErrNotFound)
	}
	return nil, classified
}

// isNoSuchTx recognises qscc's answer for an unknown transaction ID
// ("... no such transaction ID [...] in index").
func isNoSuchTx(msg string) bool {
	return strings.Contains(msg, "no such transaction ID")
}
