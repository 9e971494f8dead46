package cli

import (
	"context"
	"fmt"

	"github.com/medprov/medprov/ipfs/kubo"
	"github.com/medprov/medprov/ledger"
	"github.com/medprov/medprov/ledger/fabric"
)

// openFabric connects to the organisation's peer named in the profile
// that scripts/network.sh writes.
func openFabric(ctx context.Context, o *serveOptions) (ledger.Transactor, error) {
	p, err := fabric.LoadProfile(o.fabricProfile)
	if err != nil {
		return nil, err
	}
	cfg, err := p.Config(o.fabricOrg)
	if err != nil {
		return nil, err
	}
	t, err := fabric.New(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("fabric ledger: %w", err)
	}
	return t, nil
}

// openKubo connects to a kubo daemon's RPC API.
func openKubo(ctx context.Context, o *serveOptions) (*kubo.Store, error) {
	s, err := kubo.New(ctx, kubo.Config{API: o.kuboAPI})
	if err != nil {
		return nil, fmt.Errorf("kubo blob store: %w", err)
	}
	return s, nil
}
