package fabric

import (
	"context"
	"time"

	"github.com/hyperledger/fabric-gateway/pkg/client"

	"github.com/medprov/medprov/ledger"
)

// Event stream reconnection backoff bounds.
const (
	eventsRetryMin = 200 * time.Millisecond
	eventsRetryMax = 5 * time.Second
)

// Events delivers the medprov chaincode's events from committed, valid
// transactions in blocks numbered startBlock and above, in block order.
// When the stream breaks (peer restart), it reconnects from the last
// delivered block and skips what was already delivered, until ctx is done;
// then the channel is closed. The first connection must succeed: if the peer
// cannot be reached the error wraps ledger.ErrUnavailable.
func (t *Transactor) Events(ctx context.Context, startBlock uint64) (<-chan ledger.Event, error) {
	network := t.user.GetNetwork(t.cfg.Channel)
	first, err := network.ChaincodeEvents(ctx, t.cfg.Chaincode, client.WithStartBlock(startBlock))
	if err != nil {
		return nil, classify(ctx, "chaincode events", "", err)
	}

	out := make(chan ledger.Event)
	go func() {
		defer close(out)
		var (
			events    = first
			lastBlock uint64
			lastTx    string
			delivered bool
			backoff   = eventsRetryMin
		)
		for {
			skipping := delivered // after a reconnect, skip up to lastTx
			for ev := range events {
				if skipping {
					if ev.BlockNumber == lastBlock {
						if ev.TransactionID == lastTx {
							skipping = false
						}
						continue
					}
					skipping = false
				}
				select {
				case out <- ledger.Event{Block: ev.BlockNumber, TxID: ev.TransactionID, Name: ev.EventName, Payload: ev.Payload}:
					lastBlock, lastTx, delivered = ev.BlockNumber, ev.TransactionID, true
					backoff = eventsRetryMin
				case <-ctx.Done():
					return
				}
			}
			// The stream ended: either ctx is done or the connection broke.
			for {
				if ctx.Err() != nil {
					return
				}
				t.log.Warn("fabric: chaincode event stream ended; reconnecting", "retryIn", backoff)
				select {
				case <-ctx.Done():
					return
				case <-time.After(backoff):
				}
				backoff = min(2*backoff, eventsRetryMax)
				from := startBlock
				if delivered {
					from = lastBlock
				}
				next, err := network.ChaincodeEvents(ctx, t.cfg.Chaincode, client.WithStartBlock(from))
				if err == nil {
					events = next
					break
				}
				t.log.Warn("fabric: reconnect chaincode event stream", "err", err)
			}
		}
	}()
	return out, nil
}
