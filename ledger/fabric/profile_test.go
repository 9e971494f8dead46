package fabric_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/medprov/medprov/ledger/fabric"
)

const twoOrgProfile = `{
  "channel": "medprov",
  "chaincode": "medprov",
  "organizations": [
    {"name": "hospital", "mspId": "HospitalMSP", "peerEndpoint": "127.0.0.1:27080",
     "peerHostOverride": "peer0.hospital.medprov.test", "tlsCACert": "/h/ca.pem",
     "adminMSPDir": "/h/admin", "clientMSPDir": "/h/client"},
    {"name": "research", "mspId": "ResearchMSP", "peerEndpoint": "127.0.0.1:27090",
     "tlsCACert": "/r/ca.pem", "adminMSPDir": "/r/admin", "clientMSPDir": "/r/client"}
  ]
}`

func writeProfile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "profile.json")
	require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
	return path
}

func TestProfileConfig(t *testing.T) {
	profile, err := fabric.LoadProfile(writeProfile(t, twoOrgProfile))
	require.NoError(t, err, "LoadProfile")
	tests := []struct {
		name     string
		org      string
		wantMSP  string
		wantPeer string
	}{
		{"no organisation picks the first", "", "HospitalMSP", "127.0.0.1:27080"},
		{"the short name picks that organisation", "research", "ResearchMSP", "127.0.0.1:27090"},
		{"the MSP ID picks that organisation, in any case", "researchmsp", "ResearchMSP", "127.0.0.1:27090"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := profile.Config(tc.org)
			require.NoError(t, err, "Config(%q)", tc.org)
			assert.Equal(t, tc.wantMSP, cfg.MSPID, "MSP ID")
			assert.Equal(t, tc.wantPeer, cfg.PeerEndpoint, "peer endpoint")
			assert.Equal(t, "medprov", cfg.Channel, "channel")
			assert.Equal(t, "medprov", cfg.Chaincode, "chaincode")
		})
	}
	t.Run("an unknown organisation is an error", func(t *testing.T) {
		_, err := profile.Config("pharma")
		assert.Error(t, err, "Config(pharma)")
	})
}

func TestLoadProfileRejectsIncompleteProfiles(t *testing.T) {
	tests := []struct {
		name    string
		content string
	}{
		{"not JSON", `channel: medprov`},
		{"no channel", `{"chaincode":"medprov","organizations":[{"mspId":"A","peerEndpoint":"x:1","tlsCACert":"c","clientMSPDir":"d"}]}`},
		{"no organisation", `{"channel":"medprov","chaincode":"medprov","organizations":[]}`},
		{"an organisation without a peer", `{"channel":"medprov","chaincode":"medprov","organizations":[{"mspId":"A","tlsCACert":"c","clientMSPDir":"d"}]}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := fabric.LoadProfile(writeProfile(t, tc.content))
			assert.Error(t, err, "LoadProfile")
		})
	}
	t.Run("a missing file", func(t *testing.T) {
		_, err := fabric.LoadProfile(filepath.Join(t.TempDir(), "none.json"))
		assert.Error(t, err, "LoadProfile")
	})
}
