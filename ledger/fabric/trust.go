package fabric

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hyperledger/fabric-protos-go-apiv2/common"
	"github.com/hyperledger/fabric-protos-go-apiv2/msp"
	"github.com/hyperledger/fabric-protos-go-apiv2/peer"
	"github.com/hyperledger/fabric-protos-go-apiv2/peer/lifecycle"
	"google.golang.org/protobuf/proto"

	"github.com/medprov/medprov/evidence"
	"github.com/medprov/medprov/ledger"
)

// lifecycleSCC is the peer's chaincode lifecycle system chaincode.
const lifecycleSCC = "_lifecycle"

// Names in a channel configuration (Fabric's common/channelconfig).
const (
	configApplication     = "Application"
	configOrderer         = "Orderer"
	configMSP             = "MSP"
	configOrderers        = "Orderers" // SmartBFT consenter mapping
	configBlockValidation = "BlockValidation"
	configRoot            = "/Channel/"
	// fabricMSPType is msp.MSPConfig.Type of an X.509 MSP.
	fabricMSPType = 0
	// defaultValidationPlugin interprets a chaincode's validation
	// parameter as its endorsement policy.
	defaultValidationPlugin = "vscc"
)

// Trust exports what a regulator pins to verify this channel's blocks
// offline: the organisations and ordering service of the channel's current
// configuration (the config block the newest block names), the block
// validation policy, the medprov chaincode's endorsement policy as the
// peer's _lifecycle has it committed, and the hash of block 0's header.
// Policies are rendered in the evidence rule language; a policy it cannot
// express (principals other than MSP roles, outside SmartBFT's quorum of
// consenter identities) is an error. A chaincode that is not defined on the
// channel is ledger.ErrNotFound.
func (t *Transactor) Trust(ctx context.Context) (*evidence.Trust, error) {
	height, err := t.BlockHeight(ctx)
	if err != nil {
		return nil, err
	}
	if height == 0 {
		return nil, fmt.Errorf("fabric: channel %s has no block: %w", t.cfg.Channel, ledger.ErrNotFound)
	}
	newestRaw, err := t.RawBlock(ctx, height-1)
	if err != nil {
		return nil, err
	}
	var newest common.Block
	if err := proto.Unmarshal(newestRaw, &newest); err != nil {
		return nil, malformed("decode block %d: %v", height-1, err)
	}
	index, err := lastConfigIndex(&newest)
	if err != nil {
		return nil, fmt.Errorf("block %d: %w", height-1, err)
	}

	cfgRaw := newestRaw
	if index != height-1 {
		if cfgRaw, err = t.RawBlock(ctx, index); err != nil {
			return nil, err
		}
	}
	var cfgBlock common.Block
	if err := proto.Unmarshal(cfgRaw, &cfgBlock); err != nil {
		return nil, malformed("decode block %d: %v", index, err)
	}
	cfg, ok, err := configOfBlock(&cfgBlock)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, malformed("block %d, named as the last config block, is not a config block", index)
	}
	config, err := configEvidence(cfg)
	if err != nil {
		return nil, fmt.Errorf("config block %d: %w", index, err)
	}

	genesisRaw := cfgRaw
	if index != 0 {
		if genesisRaw, err = t.RawBlock(ctx, 0); err != nil {
			return nil, err
		}
	}
	genesisHash, err := headerHash(genesisRaw)
	if err != nil {
		return nil, err
	}

	endorsement, err := t.endorsementPolicy(ctx, cfg.GetChannelGroup())
	if err != nil {
		return nil, err
	}
	return &evidence.Trust{
		Format:      evidence.TrustFormat,
		Backend:     evidence.BackendFabric,
		Channel:     t.cfg.Channel,
		Chaincode:   t.cfg.Chaincode,
		GenesisHash: genesisHash,
		Config:      *config,
		Endorsement: endorsement,
		Exported:    time.Now().UTC(),
	}, nil
}

// headerHash is the hash of a raw block's header, as the next block's
// previous hash names it.
func headerHash(raw []byte) ([]byte, error) {
	var block common.Block
	if err := proto.Unmarshal(raw, &block); err != nil {
		return nil, malformed("decode block: %v", err)
	}
	if block.GetHeader() == nil {
		return nil, malformed("block has no header")
	}
	der, err := headerBytes(block.GetHeader())
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(der)
	return sum[:], nil
}

// endorsementPolicy reads the chaincode's committed definition from
// _lifecycle and renders its validation parameter, an ApplicationPolicy:
// a signature policy, or a reference to a policy of the channel
// configuration root.
func (t *Transactor) endorsementPolicy(ctx context.Context, root *common.ConfigGroup) (evidence.Policy, error) {
	arg, err := proto.Marshal(&lifecycle.QueryChaincodeDefinitionArgs{Name: t.cfg.Chaincode})
	if err != nil {
		return evidence.Policy{}, fmt.Errorf("fabric: encode chaincode definition query: %w", err)
	}
	raw, err := t.evaluateSystem(ctx, lifecycleSCC, "QueryChaincodeDefinition", arg)
	if err != nil {
		var ccErr *ledger.ChaincodeError
		if errors.As(err, &ccErr) && strings.Contains(ccErr.Message, "is not defined") {
			return evidence.Policy{}, fmt.Errorf("fabric: chaincode %s: %w", t.cfg.Chaincode, ledger.ErrNotFound)
		}
		return evidence.Policy{}, err
	}
	var def lifecycle.QueryChaincodeDefinitionResult
	if err := proto.Unmarshal(raw, &def); err != nil {
		return evidence.Policy{}, fmt.Errorf("fabric: decode chaincode definition: %w", err)
	}
	if p := def.GetValidationPlugin(); p != "" && p != defaultValidationPlugin {
		return evidence.Policy{}, fmt.Errorf("fabric: chaincode %s is validated by plugin %q, whose policy this export cannot express", t.cfg.Chaincode, p)
	}
	var ap peer.ApplicationPolicy
	if err := proto.Unmarshal(def.GetValidationParameter(), &ap); err != nil {
		return evidence.Policy{}, fmt.Errorf("fabric: decode endorsement policy of %s: %w", t.cfg.Chaincode, err)
	}
	switch p := ap.GetType().(type) {
	case *peer.ApplicationPolicy_SignaturePolicy:
		return envelopePolicy(p.SignaturePolicy)
	case *peer.ApplicationPolicy_ChannelConfigPolicyReference:
		return referencedPolicy(root, p.ChannelConfigPolicyReference)
	default:
		return evidence.Policy{}, fmt.Errorf("fabric: chaincode %s has no endorsement policy", t.cfg.Chaincode)
	}
}

// configEvidence extracts the organisations, the SmartBFT consenters and
// the block validation policy from a channel configuration.
func configEvidence(cfg *common.Config) (*evidence.Config, error) {
	root := cfg.GetChannelGroup()
	orderer := root.GetGroups()[configOrderer]
	if orderer == nil {
		return nil, malformed("configuration has no %s group", configOrderer)
	}
	out := &evidence.Config{Orgs: []evidence.Org{}, Orderers: []evidence.Identity{}}
	for _, section := range []struct {
		group   *common.ConfigGroup
		orderer bool
	}{
		{root.GetGroups()[configApplication], false},
		{orderer, true},
	} {
		for _, name := range sortedKeys(section.group.GetGroups()) {
			org, err := orgEvidence(name, section.group.GetGroups()[name])
			if err != nil {
				return nil, err
			}
			org.Orderer = section.orderer
			if out.Orgs, err = addOrg(out.Orgs, org); err != nil {
				return nil, err
			}
		}
	}

	consenters, err := consenterMapping(root)
	if err != nil {
		return nil, err
	}
	for _, c := range consenters {
		out.Orderers = append(out.Orderers, evidence.Identity{MSPID: c.GetMspId(), CertPEM: c.GetIdentity()})
	}
	if out.BlockValidation, err = configPolicy(orderer, configBlockValidation, configRoot+configOrderer); err != nil {
		return nil, err
	}
	return out, nil
}

// addOrg adds an org, merging an MSP that serves both peers and orderers.
func addOrg(orgs []evidence.Org, org evidence.Org) ([]evidence.Org, error) {
	for i, o := range orgs {
		if o.MSPID != org.MSPID {
			continue
		}
		if !slices.EqualFunc(o.RootCerts, org.RootCerts, slices.Equal) ||
			!slices.EqualFunc(o.Intermediates, org.Intermediates, slices.Equal) || o.NodeOUs != org.NodeOUs {
			return nil, fmt.Errorf("fabric: MSP %s is defined twice with different certificates", org.MSPID)
		}
		orgs[i].Orderer = o.Orderer || org.Orderer
		return orgs, nil
	}
	return append(orgs, org), nil
}

func orgEvidence(name string, group *common.ConfigGroup) (evidence.Org, error) {
	value := group.GetValues()[configMSP]
	if value == nil {
		return evidence.Org{}, malformed("organisation %s has no MSP", name)
	}
	var mc msp.MSPConfig
	if err := proto.Unmarshal(value.GetValue(), &mc); err != nil {
		return evidence.Org{}, malformed("decode MSP of %s: %v", name, err)
	}
	if mc.GetType() != fabricMSPType {
		return evidence.Org{}, fmt.Errorf("fabric: organisation %s: MSP type %d is not an X.509 MSP", name, mc.GetType())
	}
	var fc msp.FabricMSPConfig
	if err := proto.Unmarshal(mc.GetConfig(), &fc); err != nil {
		return evidence.Org{}, malformed("decode MSP config of %s: %v", name, err)
	}
	if fc.GetName() == "" || len(fc.GetRootCerts()) == 0 {
		return evidence.Org{}, malformed("MSP of %s has no name or no root certificate", name)
	}
	return evidence.Org{
		MSPID:         fc.GetName(),
		RootCerts:     fc.GetRootCerts(),
		Intermediates: fc.GetIntermediateCerts(),
		NodeOUs:       fc.GetFabricNodeOus().GetEnable(),
	}, nil
}

// consenterMapping returns the SmartBFT consenters of a configuration
// (/Channel/Orderer value Orderers); none for Raft, whose consenters are
// TLS endpoints, not signing identities.
func consenterMapping(root *common.ConfigGroup) ([]*common.Consenter, error) {
	value := root.GetGroups()[configOrderer].GetValues()[configOrderers]
	if value == nil {
		return nil, nil
	}
	var orderers common.Orderers
	if err := proto.Unmarshal(value.GetValue(), &orderers); err != nil {
		return nil, malformed("decode consenter mapping: %v", err)
	}
	return orderers.GetConsenterMapping(), nil
}

// referencedPolicy resolves a channel configuration policy path, absolute
// ("/Channel/Application/Endorsement") or relative to /Channel, as the
// peer's policy manager does.
func referencedPolicy(root *common.ConfigGroup, ref string) (evidence.Policy, error) {
	rel := ref
	if strings.HasPrefix(ref, "/") {
		if !strings.HasPrefix(ref, configRoot) {
			return evidence.Policy{}, fmt.Errorf("fabric: policy %s is outside %s", ref, configRoot)
		}
		rel = strings.TrimPrefix(ref, configRoot)
	}
	parts := strings.Split(rel, "/")
	group, path := root, strings.TrimSuffix(configRoot, "/")
	for _, name := range parts[:len(parts)-1] {
		group = group.GetGroups()[name]
		path += "/" + name
		if group == nil {
			return evidence.Policy{}, fmt.Errorf("fabric: policy %s: no group %s", ref, path)
		}
	}
	return configPolicy(group, parts[len(parts)-1], path)
}

// configPolicy renders the policy name of a configuration group at path.
// A signature policy over consenter identities (SmartBFT's block
// validation) becomes a quorum policy; anything else a signature rule.
func configPolicy(group *common.ConfigGroup, name, path string) (evidence.Policy, error) {
	cp := group.GetPolicies()[name]
	if cp == nil {
		return evidence.Policy{}, fmt.Errorf("fabric: no policy %s/%s", path, name)
	}
	if common.Policy_PolicyType(cp.GetPolicy().GetType()) == common.Policy_SIGNATURE {
		var env common.SignaturePolicyEnvelope
		if err := proto.Unmarshal(cp.GetPolicy().GetValue(), &env); err != nil {
			return evidence.Policy{}, malformed("decode policy %s/%s: %v", path, name, err)
		}
		p, err := envelopePolicy(&env)
		if err != nil {
			return evidence.Policy{}, fmt.Errorf("policy %s/%s: %w", path, name, err)
		}
		return p, nil
	}
	rule, err := configRule(group, name, path)
	if err != nil {
		return evidence.Policy{}, err
	}
	return evidence.Policy{Kind: evidence.PolicySignature, Rule: rule}, nil
}

// configRule renders a configuration policy as a signature rule. An
// implicit meta policy ("ANY Writers") becomes a gate over the same-named
// policies of the group's subgroups, with Fabric's thresholds (ANY 1, ALL
// every one, MAJORITY n/2+1); with a single subgroup and ANY, the
// subgroup's rule itself. Fabric evaluates each subgroup's policy on its
// own; as one rule a signer counts for one principal only, which is the
// same whenever subgroups are different MSPs, as they are.
func configRule(group *common.ConfigGroup, name, path string) (string, error) {
	cp := group.GetPolicies()[name]
	if cp == nil {
		return "", fmt.Errorf("fabric: no policy %s/%s", path, name)
	}
	switch common.Policy_PolicyType(cp.GetPolicy().GetType()) {
	case common.Policy_SIGNATURE:
		var env common.SignaturePolicyEnvelope
		if err := proto.Unmarshal(cp.GetPolicy().GetValue(), &env); err != nil {
			return "", malformed("decode policy %s/%s: %v", path, name, err)
		}
		rule, err := envelopeRule(&env)
		if err != nil {
			return "", fmt.Errorf("policy %s/%s: %w", path, name, err)
		}
		return rule, nil
	case common.Policy_IMPLICIT_META:
		var imp common.ImplicitMetaPolicy
		if err := proto.Unmarshal(cp.GetPolicy().GetValue(), &imp); err != nil {
			return "", malformed("decode policy %s/%s: %v", path, name, err)
		}
		var subs []string
		for _, sub := range sortedKeys(group.GetGroups()) {
			rule, err := configRule(group.GetGroups()[sub], imp.GetSubPolicy(), path+"/"+sub)
			if err != nil {
				return "", err
			}
			subs = append(subs, rule)
		}
		if len(subs) == 0 {
			return "", fmt.Errorf("fabric: policy %s/%s: %s %s over no group is met without signatures", path, name, imp.GetRule(), imp.GetSubPolicy())
		}
		var threshold int
		switch imp.GetRule() {
		case common.ImplicitMetaPolicy_ANY:
			threshold = 1
		case common.ImplicitMetaPolicy_ALL:
			threshold = len(subs)
		case common.ImplicitMetaPolicy_MAJORITY:
			threshold = len(subs)/2 + 1
		default:
			return "", fmt.Errorf("fabric: policy %s/%s: unknown implicit meta rule %d", path, name, imp.GetRule())
		}
		if len(subs) == 1 && threshold == 1 {
			return subs[0], nil
		}
		return gate(threshold, subs), nil
	default:
		return "", fmt.Errorf("fabric: policy %s/%s: policy type %d cannot be expressed", path, name, cp.GetPolicy().GetType())
	}
}

// envelopePolicy renders a signature policy envelope: an N-out-of over
// distinct consenter identities is a quorum policy, one over MSP roles a
// signature rule.
func envelopePolicy(env *common.SignaturePolicyEnvelope) (evidence.Policy, error) {
	if quorum, members, ok := identityQuorum(env); ok {
		return evidence.Policy{Kind: evidence.PolicyQuorum, Quorum: quorum, Members: members}, nil
	}
	rule, err := envelopeRule(env)
	if err != nil {
		return evidence.Policy{}, err
	}
	return evidence.Policy{Kind: evidence.PolicySignature, Rule: rule}, nil
}

// identityQuorum recognises N-out-of over distinct identity principals, the
// shape of SmartBFT's block validation policy
// (policies.EncodeBFTBlockVerificationPolicy).
func identityQuorum(env *common.SignaturePolicyEnvelope) (int, []evidence.Identity, bool) {
	nOutOf := env.GetRule().GetNOutOf()
	if nOutOf == nil || nOutOf.GetN() < 1 || len(nOutOf.GetRules()) == 0 {
		return 0, nil, false
	}
	seen := map[int32]bool{}
	var members []evidence.Identity
	for _, r := range nOutOf.GetRules() {
		signedBy, ok := r.GetType().(*common.SignaturePolicy_SignedBy)
		if !ok {
			return 0, nil, false
		}
		i := signedBy.SignedBy
		if i < 0 || int(i) >= len(env.GetIdentities()) || seen[i] {
			return 0, nil, false
		}
		seen[i] = true
		principal := env.GetIdentities()[i]
		if principal.GetPrincipalClassification() != msp.MSPPrincipal_IDENTITY {
			return 0, nil, false
		}
		id, err := signerIdentity(principal.GetPrincipal())
		if err != nil {
			return 0, nil, false
		}
		members = append(members, id)
	}
	return int(nOutOf.GetN()), members, true
}

// envelopeRule renders a signature policy in the evidence rule language:
// N-out-of(1) is OR, N-out-of(all) AND, any other OutOf(N, ...); a policy
// that is a single principal is OR of it.
func envelopeRule(env *common.SignaturePolicyEnvelope) (string, error) {
	if env.GetRule() == nil {
		return "", errors.New("fabric: signature policy without a rule")
	}
	rule, err := renderRule(env.GetRule(), env.GetIdentities())
	if err != nil {
		return "", err
	}
	if _, single := env.GetRule().GetType().(*common.SignaturePolicy_SignedBy); single {
		return gate(1, []string{rule}), nil
	}
	return rule, nil
}

func renderRule(r *common.SignaturePolicy, principals []*msp.MSPPrincipal) (string, error) {
	switch x := r.GetType().(type) {
	case *common.SignaturePolicy_SignedBy:
		if x.SignedBy < 0 || int(x.SignedBy) >= len(principals) {
			return "", fmt.Errorf("fabric: signature policy names principal %d of %d", x.SignedBy, len(principals))
		}
		return rolePrincipal(principals[x.SignedBy])
	case *common.SignaturePolicy_NOutOf_:
		var parts []string
		for _, sub := range x.NOutOf.GetRules() {
			p, err := renderRule(sub, principals)
			if err != nil {
				return "", err
			}
			parts = append(parts, p)
		}
		if len(parts) == 0 {
			return "", errors.New("fabric: signature policy gate without rules")
		}
		return gate(int(x.NOutOf.GetN()), parts), nil
	default:
		return "", errors.New("fabric: signature policy rule of unknown type")
	}
}

func gate(n int, parts []string) string {
	joined := strings.Join(parts, ",")
	switch n {
	case 1:
		return "OR(" + joined + ")"
	case len(parts):
		return "AND(" + joined + ")"
	default:
		return fmt.Sprintf("OutOf(%d,%s)", n, joined)
	}
}

// roleNames are the evidence language's names of Fabric's MSP roles.
var roleNames = map[msp.MSPRole_MSPRoleType]string{
	msp.MSPRole_MEMBER:  "member",
	msp.MSPRole_ADMIN:   "admin",
	msp.MSPRole_CLIENT:  "client",
	msp.MSPRole_PEER:    "peer",
	msp.MSPRole_ORDERER: "orderer",
}

// rolePrincipal renders an MSP role principal as 'MSPID.role'; other
// principal kinds (identities, OUs, anonymity, combinations) have no form
// in the evidence rule language.
func rolePrincipal(p *msp.MSPPrincipal) (string, error) {
	if p.GetPrincipalClassification() != msp.MSPPrincipal_ROLE {
		return "", fmt.Errorf("fabric: %s principals cannot be expressed as an MSP role", p.GetPrincipalClassification())
	}
	var role msp.MSPRole
	if err := proto.Unmarshal(p.GetPrincipal(), &role); err != nil {
		return "", fmt.Errorf("fabric: decode MSP role principal: %w", err)
	}
	name, ok := roleNames[role.GetRole()]
	if !ok || role.GetMspIdentifier() == "" {
		return "", fmt.Errorf("fabric: MSP role principal %s.%s cannot be expressed", role.GetMspIdentifier(), role.GetRole())
	}
	return "'" + role.GetMspIdentifier() + "." + name + "'", nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
