package evidence_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/medprov/medprov/evidence"
)

func signer(msp, key string, roles ...string) evidence.Signer {
	return evidence.Signer{MSPID: msp, Key: key, Roles: roles}
}

func TestSignaturePolicies(t *testing.T) {
	hp := signer("HospitalMSP", "h-peer", "peer")
	rp := signer("ResearchMSP", "r-peer", "peer")
	hc := signer("HospitalMSP", "h-client", "client")
	hp2 := signer("HospitalMSP", "h-peer-2", "peer")
	for _, tc := range []struct {
		name    string
		rule    string
		signers []evidence.Signer
		want    bool
	}{
		{"both peers satisfy AND", "AND('HospitalMSP.peer','ResearchMSP.peer')", []evidence.Signer{hp, rp}, true},
		{"one org's peer does not", "AND('HospitalMSP.peer','ResearchMSP.peer')", []evidence.Signer{hp}, false},
		{"the same signer twice counts once", "AND('HospitalMSP.peer','ResearchMSP.peer')", []evidence.Signer{hp, hp}, false},
		{"a client is not a peer", "AND('HospitalMSP.peer','ResearchMSP.peer')", []evidence.Signer{hc, rp}, false},
		{"OR needs one", "OR('HospitalMSP.orderer','ResearchMSP.peer')", []evidence.Signer{rp}, true},
		{"member is any role", "OR('HospitalMSP.member')", []evidence.Signer{hc}, true},
		{"one signer per principal", "AND('HospitalMSP.peer','HospitalMSP.peer')", []evidence.Signer{hp}, false},
		{"two distinct peers of one org", "AND('HospitalMSP.peer','HospitalMSP.peer')", []evidence.Signer{hp, hp2}, true},
		{"order of principals does not matter", "AND('HospitalMSP.member','HospitalMSP.peer')", []evidence.Signer{hp, hc}, true},
		{"OutOf counts", "OutOf(2, 'HospitalMSP.peer', 'ResearchMSP.peer', 'OtherMSP.peer')", []evidence.Signer{rp, hp}, true},
		{"OutOf short", "OutOf(2, 'HospitalMSP.peer', 'ResearchMSP.peer', 'OtherMSP.peer')", []evidence.Signer{rp}, false},
		{"nested", "OR(AND('HospitalMSP.peer','ResearchMSP.peer'), 'OtherMSP.admin')", []evidence.Signer{rp, hp}, true},
		{"no signers", "OR('HospitalMSP.peer')", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ok, err := evidence.Satisfied(evidence.Policy{Kind: evidence.PolicySignature, Rule: tc.rule}, tc.signers, nil)
			require.NoError(t, err)
			assert.Equal(t, tc.want, ok)
		})
	}
}

func TestMalformedPolicies(t *testing.T) {
	for _, rule := range []string{"", "AND(", "AND('HospitalMSP.peer'", "XOR('A.peer')", "'A'", "'A.king'", "OutOf(3, 'A.peer', 'B.peer')", "OR('A.peer') junk"} {
		t.Run(rule, func(t *testing.T) {
			_, err := evidence.Satisfied(evidence.Policy{Kind: evidence.PolicySignature, Rule: rule}, nil, nil)
			assert.ErrorIs(t, err, evidence.ErrPolicy)
		})
	}
}

func TestQuorumPolicy(t *testing.T) {
	members := map[string]bool{"o1": true, "o2": true, "o3": true, "o4": true}
	memberOf := func(s evidence.Signer) bool { return members[s.Key] }
	p := evidence.Policy{Kind: evidence.PolicyQuorum, Quorum: 3}
	for _, tc := range []struct {
		name string
		keys []string
		want bool
	}{
		{"three of four", []string{"o1", "o2", "o4"}, true},
		{"two of four", []string{"o1", "o2"}, false},
		{"a repeated signer counts once", []string{"o1", "o1", "o2"}, false},
		{"outsiders do not count", []string{"o1", "o2", "x"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ss []evidence.Signer
			for _, k := range tc.keys {
				ss = append(ss, signer("OrdererMSP", k, "orderer"))
			}
			ok, err := evidence.Satisfied(p, ss, memberOf)
			require.NoError(t, err)
			assert.Equal(t, tc.want, ok)
		})
	}
}
