package fabric

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
)

// Profile is the connection profile scripts/network.sh writes: one entry
// per peer organisation, with paths to its TLS CA and MSP folders.
type Profile struct {
	Channel       string         `json:"channel"`
	Chaincode     string         `json:"chaincode"`
	Organizations []ProfileOrg   `json:"organizations"`
	Orderer       ProfileOrderer `json:"orderer"`
}

// ProfileOrg describes one organisation's peer and users.
type ProfileOrg struct {
	// Name is the short name used by network.sh, e.g. "hospital".
	Name             string `json:"name"`
	MSPID            string `json:"mspId"`
	PeerEndpoint     string `json:"peerEndpoint"`
	PeerHostOverride string `json:"peerHostOverride"`
	TLSCACert        string `json:"tlsCACert"`
	AdminMSPDir      string `json:"adminMSPDir"`
	ClientMSPDir     string `json:"clientMSPDir"`
	// ChaincodeServer is the address of the org's chaincode server.
	ChaincodeServer string `json:"chaincodeServer"`
}

// ProfileOrderer locates the ordering service (for tools; the gateway
// client needs only the peer).
type ProfileOrderer struct {
	Endpoint  string `json:"endpoint"`
	TLSCACert string `json:"tlsCACert"`
}

// LoadProfile reads a connection profile and checks that it names a
// channel, a chaincode and at least one organisation with a peer.
func LoadProfile(path string) (*Profile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("fabric: read profile: %w", err)
	}
	var p Profile
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, fmt.Errorf("fabric: parse profile %s: %w", path, err)
	}
	if p.Channel == "" || p.Chaincode == "" {
		return nil, fmt.Errorf("fabric: profile %s names no channel or chaincode", path)
	}
	if len(p.Organizations) == 0 {
		return nil, fmt.Errorf("fabric: profile %s lists no organisation", path)
	}
	for i, o := range p.Organizations {
		if o.MSPID == "" || o.PeerEndpoint == "" || o.TLSCACert == "" || o.ClientMSPDir == "" {
			return nil, fmt.Errorf("fabric: profile %s: organisation %d lacks mspId, peerEndpoint, tlsCACert or clientMSPDir", path, i)
		}
	}
	return &p, nil
}

// Config builds the Transactor configuration for one organisation, chosen
// by short name or MSP ID (case-insensitive); "" picks the first one (the
// hospital in profiles written by network.sh). Timeouts and logger are left
// to the caller.
func (p *Profile) Config(org string) (Config, error) {
	for _, o := range p.Organizations {
		if org == "" || strings.EqualFold(org, o.Name) || strings.EqualFold(org, o.MSPID) {
			return Config{
				PeerEndpoint:     o.PeerEndpoint,
				PeerHostOverride: o.PeerHostOverride,
				TLSCACertFile:    o.TLSCACert,
				MSPID:            o.MSPID,
				ClientMSPDir:     o.ClientMSPDir,
				AdminMSPDir:      o.AdminMSPDir,
				Channel:          p.Channel,
				Chaincode:        p.Chaincode,
			}, nil
		}
	}
	return Config{}, fmt.Errorf("fabric: profile has no organisation %q", org)
}
