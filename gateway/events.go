package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/medprov/medprov/wire"

	"github.com/medprov/medprov/ledger"
)

// checkpoint is the last chaincode event the gateway handled.
type checkpoint struct {
	Block uint64 `json:"block"`
	TxID  string `json:"txId"`
}

func loadCheckpoint(path string) (checkpoint, error) {
	var cp checkpoint
	if path == "" {
		return cp, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return cp, nil
	}
	if err != nil {
		return cp, fmt.Errorf("read event checkpoint: %w", err)
	}
	if err := json.Unmarshal(b, &cp); err != nil {
		return cp, fmt.Errorf("parse event checkpoint %s: %w", path, err)
	}
	return cp, nil
}

// save replaces the checkpoint file atomically (write, then rename).
func (cp checkpoint) save(path string) error {
	if path == "" {
		return nil
	}
	b, err := json.Marshal(cp)
	if err != nil {
		return err
	}
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("write event checkpoint: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write event checkpoint: %w", err)
	}
	return nil
}

// followEvents keeps the key cache honest across gateways: a device revoked
// or registered, an actor registered, revoked or given a new key, a
// passkey registered or an org's relying party set, anywhere drops this
// gateway's cached entry as soon as its block commits.
// It also crypto-shreds the keys of every patient erased on the ledger, so
// an erasure committed through another gateway, or one whose shredding
// failed or was cut short by a crash, is completed here. It resumes after
// the checkpointed event (so a restart neither misses nor repeats events)
// and reconnects with backoff.
func (s *Server) followEvents(ctx context.Context) {
	cp, err := loadCheckpoint(s.cfg.EventCheckpointPath)
	if err != nil {
		s.log.Error("event checkpoint unreadable; following events from the start of the chain", "err", err)
	}
	backoff := time.Second
	for ctx.Err() == nil {
		ch, err := s.cfg.Ledger.Events(ctx, cp.Block)
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
		// Events of the checkpoint's block up to and including its
		// transaction were handled before.
		skipping := cp.TxID != ""
		for ev := range ch {
			if skipping && ev.Block == cp.Block {
				if ev.TxID == cp.TxID {
					skipping = false
				}
				continue
			}
			skipping = false
			if err := s.handleEvent(ctx, ev); err != nil {
				return // stopping: the event is handled again after a restart
			}
			cp = checkpoint{Block: ev.Block, TxID: ev.TxID}
			if err := cp.save(s.cfg.EventCheckpointPath); err != nil {
				s.log.Warn("saving event checkpoint", "err", err)
			}
		}
	}
}

// handleEvent applies one chaincode event: it drops the key cache entries
// of devices and actors that changed, and crypto-shreds the keys of an
// erased patient (retrying until it succeeds). It fails only when ctx is
// done before the event was fully handled, so that the event is not
// checkpointed.
func (s *Server) handleEvent(ctx context.Context, ev ledger.Event) error {
	s.m.events.WithLabelValues(ev.Name).Inc()
	switch ev.Name {
	case wire.EventDeviceRevoked, wire.EventDeviceRegistered:
		var d wire.Device
		if err := json.Unmarshal(ev.Payload, &d); err == nil && d.ID != "" {
			s.keys.forgetDevice(d.ID)
			if ev.Name == wire.EventDeviceRevoked {
				s.revocations.notify(d.ID)
			}
		}
	case wire.EventActorRegistered, wire.EventActorRevoked, wire.EventActorRotated:
		var a wire.Actor
		if err := json.Unmarshal(ev.Payload, &a); err == nil && a.ID != "" {
			s.keys.forgetActor(a.ID)
		}
	case wire.EventPasskeyRegistered:
		var pk wire.Passkey
		if err := json.Unmarshal(ev.Payload, &pk); err == nil && pk.CredentialID != "" {
			s.passkeys.forgetCredential(pk.CredentialID)
		}
	case wire.EventRelyingPartySet:
		var rp wire.RelyingParty
		if err := json.Unmarshal(ev.Payload, &rp); err == nil && rp.Org != "" {
			s.passkeys.forgetRelyingParty(rp.Org)
		}
	case wire.EventPatientErased:
		var er wire.Erasure
		if err := json.Unmarshal(ev.Payload, &er); err != nil || er.PatientID == "" {
			s.log.Error("PatientErased event without a patient", "block", ev.Block)
			return nil
		}
		s.keys.forgetActor(er.PatientID)
		return s.shredUntilDone(ctx, er.PatientID)
	}
	return nil
}
