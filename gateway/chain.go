package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/medprov/medprov/ledger"
	"github.com/medprov/medprov/wire"
)

// chain calls the medprov chaincode through a ledger backend and decodes
// its answers.
type chain struct{ t ledger.Transactor }

func (c *chain) submit(ctx context.Context, out any, admin bool, fn string, args ...string) (*ledger.Commit, error) {
	cm, err := c.t.Submit(ctx, ledger.Proposal{Function: fn, Args: args, AsAdmin: admin})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", fn, err)
	}
	if out != nil {
		if err := json.Unmarshal(cm.Payload, out); err != nil {
			return nil, fmt.Errorf("%s: decode result: %w", fn, err)
		}
	}
	return cm, nil
}

func (c *chain) evaluate(ctx context.Context, out any, fn string, args ...string) error {
	b, err := c.t.Evaluate(ctx, ledger.Proposal{Function: fn, Args: args})
	if err != nil {
		return fmt.Errorf("%s: %w", fn, err)
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s: decode result: %w", fn, err)
	}
	return nil
}

// ping reports whether the ledger answers: a lookup of an actor that cannot
// exist must come back as a refusal, not a transport error.
func (c *chain) ping(ctx context.Context) error {
	_, err := c.t.Evaluate(ctx, ledger.Proposal{Function: wire.FnGetActor, Args: []string{"-"}})
	var ce *ledger.ChaincodeError
	if err == nil || errors.As(err, &ce) {
		return nil
	}
	return err
}

func (c *chain) actor(ctx context.Context, id string) (*wire.Actor, error) {
	var a wire.Actor
	return &a, c.evaluate(ctx, &a, wire.FnGetActor, id)
}

func (c *chain) device(ctx context.Context, id string) (*wire.Device, error) {
	var d wire.Device
	return &d, c.evaluate(ctx, &d, wire.FnGetDevice, id)
}

func (c *chain) reading(ctx context.Context, id string) (*wire.Reading, error) {
	var r wire.Reading
	return &r, c.evaluate(ctx, &r, wire.FnGetReading, id)
}
