package audit

import (
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/medprov/medprov/envelope"
	"github.com/medprov/medprov/wire"
)

// CheckpointFormat names the checkpoint format.
const CheckpointFormat = "medprov-checkpoint/1"

// Checkpoint is a chain tip a regulator saved: a block number and its
// header hash, from a bundle that verified. A later bundle verified
// against it must hold that exact block at that height (the chain was not
// rewritten) and reach at least as far (it was not rolled back).
type Checkpoint struct {
	Format     string    `json:"format"`
	Backend    string    `json:"backend"`
	Channel    string    `json:"channel"`
	Height     uint64    `json:"height"`
	HeaderHash []byte    `json:"headerHash"`
	Saved      time.Time `json:"saved"`
	// SignerID names the regulator whose key signs the checkpoint.
	SignerID string `json:"signerId"`
}

// SignedCheckpoint is a checkpoint signed by the regulator's key: the
// checkpoint's JSON is the envelope's payload.
type SignedCheckpoint struct {
	Checkpoint Checkpoint        `json:"checkpoint"`
	Envelope   envelope.Envelope `json:"envelope"`
}

// ErrCheckpoint reports a checkpoint that does not verify.
var ErrCheckpoint = errors.New("audit: checkpoint does not verify")

// NewCheckpoint saves the tip of a verified report's bundle: b's tip and
// its header hash (recomputed with f), signed with key as signerID.
func NewCheckpoint(b *Bundle, f Format, key *ecdsa.PrivateKey, signerID string, now time.Time) (*SignedCheckpoint, error) {
	tip := b.Manifest.Tip
	if uint64(len(b.Headers)) != tip+1 {
		return nil, fmt.Errorf("%w: the bundle has no header for its tip", ErrCheckpoint)
	}
	cp := Checkpoint{Format: CheckpointFormat, Backend: b.Manifest.Backend, Channel: b.Manifest.Channel,
		Height: tip, HeaderHash: f.HeaderHash(b.Headers[tip]), Saved: now.UTC(), SignerID: signerID}
	payload, err := json.Marshal(cp)
	if err != nil {
		return nil, fmt.Errorf("audit: encode checkpoint: %w", err)
	}
	env, err := envelope.Sign(key, payload)
	if err != nil {
		return nil, fmt.Errorf("audit: sign checkpoint: %w", err)
	}
	return &SignedCheckpoint{Checkpoint: cp, Envelope: env}, nil
}

// VerifyCheckpoint checks the regulator's signature over the checkpoint
// with pub and returns the checkpoint the signature covers.
func VerifyCheckpoint(data []byte, pub *ecdsa.PublicKey) (*Checkpoint, error) {
	var sc SignedCheckpoint
	if err := wire.DecodeStrict(data, &sc); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCheckpoint, err)
	}
	if err := sc.Envelope.Verify(pub); err != nil {
		return nil, fmt.Errorf("%w: the signature does not verify with the key given", ErrCheckpoint)
	}
	var cp Checkpoint
	if err := wire.DecodeStrict(sc.Envelope.Payload, &cp); err != nil || cp.Format != CheckpointFormat {
		return nil, fmt.Errorf("%w: the signed payload is not a %s", ErrCheckpoint, CheckpointFormat)
	}
	return &cp, nil
}
