package gateway

import (
	"context"
	"encoding/json"
	"time"

	"github.com/medprov/medprov/chaincode"
)

// followEvents keeps the key cache honest across gateways: a device revoked
// or registered anywhere drops this gateway's cached entry as soon as the
// block commits. It starts at the ledger's live end and reconnects with
// backoff; missed events only delay invalidation to the cache TTL.
func (s *Server) followEvents(ctx context.Context) {
	backoff := time.Second
	var next uint64
	for ctx.Err() == nil {
		ch, err := s.cfg.Ledger.Events(ctx, next)
		if err != nil {
			s.log.Warn("event stream unavailable; retrying", "err", err, "backoff", backoff)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 30*time.Second)
			continue
		}
		backoff = time.Second
		for ev := range ch {
			next = ev.Block
			switch ev.Name {
			case chaincode.EventDeviceRevoked, chaincode.EventDeviceRegistered:
				var d struct {
					ID string `json:"id"`
				}
				if err := json.Unmarshal(ev.Payload, &d); err == nil && d.ID != "" {
					s.keys.forgetDevice(d.ID)
				}
			}
		}
	}
}
