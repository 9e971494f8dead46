package evidence

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrPolicy reports a policy rule that cannot be parsed.
var ErrPolicy = errors.New("evidence: malformed policy")

// Principal is one 'MSPID.role' of a signature policy.
type Principal struct{ MSPID, Role string }

// Roles a principal may name. A member is any valid identity of the MSP.
const (
	RoleMember  = "member"
	RoleAdmin   = "admin"
	RoleClient  = "client"
	RolePeer    = "peer"
	RoleOrderer = "orderer"
)

// rule is a parsed signature policy: a principal, or n of its children.
type rule struct {
	principal *Principal
	n         int
	children  []*rule
}

// parseRule parses Fabric's policy language: AND(a, b...), OR(a, b...),
// OutOf(n, a, b...) and 'MSPID.role' principals.
func parseRule(s string) (*rule, error) {
	p := &ruleParser{s: s}
	r, err := p.rule()
	if err != nil {
		return nil, err
	}
	p.space()
	if p.i != len(p.s) {
		return nil, fmt.Errorf("%w: trailing %q", ErrPolicy, p.s[p.i:])
	}
	return r, nil
}

type ruleParser struct {
	s string
	i int
}

func (p *ruleParser) space() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t' || p.s[p.i] == '\n') {
		p.i++
	}
}

func (p *ruleParser) rule() (*rule, error) {
	p.space()
	if p.i < len(p.s) && (p.s[p.i] == '\'' || p.s[p.i] == '"') {
		q := p.s[p.i]
		end := strings.IndexByte(p.s[p.i+1:], q)
		if end < 0 {
			return nil, fmt.Errorf("%w: unterminated principal", ErrPolicy)
		}
		text := p.s[p.i+1 : p.i+1+end]
		p.i += end + 2
		dot := strings.LastIndexByte(text, '.')
		if dot <= 0 || dot == len(text)-1 {
			return nil, fmt.Errorf("%w: principal %q is not MSPID.role", ErrPolicy, text)
		}
		pr := Principal{MSPID: text[:dot], Role: strings.ToLower(text[dot+1:])}
		switch pr.Role {
		case RoleMember, RoleAdmin, RoleClient, RolePeer, RoleOrderer:
		default:
			return nil, fmt.Errorf("%w: unknown role %q", ErrPolicy, pr.Role)
		}
		return &rule{principal: &pr}, nil
	}
	open := strings.IndexByte(p.s[p.i:], '(')
	if open < 0 {
		return nil, fmt.Errorf("%w: expected AND, OR, OutOf or a principal at %q", ErrPolicy, p.s[p.i:])
	}
	op := strings.TrimSpace(p.s[p.i : p.i+open])
	p.i += open + 1
	r := &rule{}
	if strings.EqualFold(op, "OutOf") {
		p.space()
		j := p.i
		for j < len(p.s) && p.s[j] >= '0' && p.s[j] <= '9' {
			j++
		}
		n, err := strconv.Atoi(p.s[p.i:j])
		if err != nil {
			return nil, fmt.Errorf("%w: OutOf needs a count", ErrPolicy)
		}
		r.n = n
		p.i = j
		p.space()
		if p.i >= len(p.s) || p.s[p.i] != ',' {
			return nil, fmt.Errorf("%w: OutOf needs a count and rules", ErrPolicy)
		}
		p.i++
	}
	for {
		c, err := p.rule()
		if err != nil {
			return nil, err
		}
		r.children = append(r.children, c)
		p.space()
		if p.i >= len(p.s) {
			return nil, fmt.Errorf("%w: unclosed %s(", ErrPolicy, op)
		}
		if p.s[p.i] == ',' {
			p.i++
			continue
		}
		if p.s[p.i] == ')' {
			p.i++
			break
		}
		return nil, fmt.Errorf("%w: unexpected %q", ErrPolicy, p.s[p.i:])
	}
	switch {
	case strings.EqualFold(op, "AND"):
		r.n = len(r.children)
	case strings.EqualFold(op, "OR"):
		r.n = 1
	case strings.EqualFold(op, "OutOf"):
		if r.n < 0 || r.n > len(r.children) {
			return nil, fmt.Errorf("%w: OutOf(%d) of %d rules", ErrPolicy, r.n, len(r.children))
		}
	default:
		return nil, fmt.Errorf("%w: unknown operator %q", ErrPolicy, op)
	}
	return r, nil
}

// Signer is a verified signer: an identity whose signature verified and
// whose certificate chains to its MSP, with the roles it holds there.
type Signer struct {
	MSPID string
	Roles []string
	// Key tells signers apart: the same certificate counts once.
	Key string
}

func (s Signer) holds(p Principal) bool {
	if s.MSPID != p.MSPID {
		return false
	}
	if p.Role == RoleMember {
		return true
	}
	for _, r := range s.Roles {
		if r == p.Role {
			return true
		}
	}
	return false
}

// Satisfied reports whether the verified signers satisfy policy p. A
// signature policy is satisfied with each signer used for one principal
// at most (so AND('A.peer','A.peer') needs two peers of A); a quorum policy
// needs Quorum distinct signers among its members (memberOf tells whether
// a signer is one).
func Satisfied(p Policy, signers []Signer, memberOf func(Signer) bool) (bool, error) {
	uniq := dedupe(signers)
	switch p.Kind {
	case PolicyQuorum:
		n := 0
		for _, s := range uniq {
			if memberOf != nil && memberOf(s) {
				n++
			}
		}
		return p.Quorum > 0 && n >= p.Quorum, nil
	case PolicySignature:
		r, err := parseRule(p.Rule)
		if err != nil {
			return false, err
		}
		return satisfy(r, uniq, make([]bool, len(uniq)), func() bool { return true }), nil
	default:
		return false, fmt.Errorf("%w: unknown kind %q", ErrPolicy, p.Kind)
	}
}

func dedupe(signers []Signer) []Signer {
	seen := map[string]bool{}
	var out []Signer
	for _, s := range signers {
		if !seen[s.Key] {
			seen[s.Key] = true
			out = append(out, s)
		}
	}
	return out
}

// satisfy reports whether r can be satisfied by signers not yet used and
// then k by what is left, trying every assignment of signers to principals
// (a search, which is fine for the few signers and principals of real
// policies).
func satisfy(r *rule, signers []Signer, used []bool, k func() bool) bool {
	if r.principal != nil {
		for i, s := range signers {
			if used[i] || !s.holds(*r.principal) {
				continue
			}
			used[i] = true
			if k() {
				return true
			}
			used[i] = false
		}
		return false
	}
	return choose(r.children, r.n, signers, used, k)
}

// choose reports whether n of rules can be satisfied together, and then k.
func choose(rules []*rule, n int, signers []Signer, used []bool, k func() bool) bool {
	if n == 0 {
		return k()
	}
	if len(rules) < n {
		return false
	}
	if satisfy(rules[0], signers, used, func() bool { return choose(rules[1:], n-1, signers, used, k) }) {
		return true
	}
	return choose(rules[1:], n, signers, used, k)
}
