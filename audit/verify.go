package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"iter"
	"slices"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"

	"github.com/medprov/medprov/consent"
	"github.com/medprov/medprov/envelope"
	"github.com/medprov/medprov/evidence"
	"github.com/medprov/medprov/fhir/readaccess"
	"github.com/medprov/medprov/wire"
)

// Format is one backend's block encoding: how its raw blocks decode into
// evidence and how its headers hash.
type Format interface {
	ParseBlock(raw []byte) (*evidence.Block, error)
	HeaderHash(h evidence.Header) []byte
}

// Check is one verification step and its outcome, with the block and
// transaction it concerns when it concerns one.
type Check struct {
	Name   string  `json:"name"`
	OK     bool    `json:"ok"`
	Block  *uint64 `json:"block,omitempty"`
	TxID   string  `json:"txId,omitempty"`
	Detail string  `json:"detail,omitempty"`
}

// Report is the outcome of Verify. OK is true only when every check
// passed and there was something to check.
type Report struct {
	OK           bool    `json:"ok"`
	Backend      string  `json:"backend"`
	Scope        Scope   `json:"scope"`
	Tip          uint64  `json:"tip"`
	Blocks       int     `json:"blocks"`
	Transactions int     `json:"transactions"`
	Checks       []Check `json:"checks"`
}

// Failed returns the checks that failed.
func (r *Report) Failed() []Check {
	var out []Check
	for _, c := range r.Checks {
		if !c.OK {
			out = append(out, c)
		}
	}
	return out
}

// Count returns how many checks of each name passed and failed.
func (r *Report) Count() map[string][2]int {
	out := map[string][2]int{}
	for _, c := range r.Checks {
		n := out[c.Name]
		if c.OK {
			n[0]++
		} else {
			n[1]++
		}
		out[c.Name] = n
	}
	return out
}

// VerifyOptions are what Verify needs besides the bundle and the trust.
type VerifyOptions struct {
	// Format decodes the bundle's blocks (chosen by the trust's backend).
	Format Format
	// Checkpoint, if set, is a tip saved earlier (and already verified
	// with VerifyCheckpoint): the bundle's chain must extend it.
	Checkpoint *Checkpoint
	// Open, if set, decrypts a ciphertext of the bundle (the node's
	// keyring): the decrypted reading must hash to its dataHash.
	Open func(patientID, readingID string, ciphertext []byte) ([]byte, error)
}

// Verify checks bundle b against trust, trusting nothing else: not the
// bundle's own trust or records, not the peers' validation flags. See the
// README's "Audit without trust" for every check and what cannot be
// re-derived offline.
func Verify(b *Bundle, trust *evidence.Trust, opt VerifyOptions) *Report {
	v := &verifier{b: b, trust: trust, opt: opt, r: &Report{Backend: b.Manifest.Backend, Scope: b.Manifest.Scope, Tip: b.Manifest.Tip}}
	v.run()
	v.r.OK = len(v.r.Checks) > 0 && len(v.r.Failed()) == 0
	return v.r
}

type verifier struct {
	b     *Bundle
	trust *evidence.Trust
	opt   VerifyOptions
	r     *Report
	val   *evidence.Validator
	// quorum holds the keys of the block validation quorum's members.
	quorum map[string]bool
	hash   [][]byte // recomputed header hashes, by number
	st     state
}

func (v *verifier) add(name string, ok bool, block *uint64, txID, detail string, args ...any) {
	if len(args) > 0 {
		detail = fmt.Sprintf(detail, args...)
	}
	v.r.Checks = append(v.r.Checks, Check{Name: name, OK: ok, Block: block, TxID: txID, Detail: detail})
}

func at(n uint64) *uint64 { return &n }

func (v *verifier) run() {
	if v.trust == nil || v.trust.Format != evidence.TrustFormat {
		v.add("trust.format", false, nil, "", "the trust root is not a %s document", evidence.TrustFormat)
		return
	}
	if v.opt.Format == nil {
		v.add("bundle.backend", false, nil, "", "no block format for backend %q", v.trust.Backend)
		return
	}
	if v.b.Manifest.Backend != v.trust.Backend {
		v.add("bundle.backend", false, nil, "", "the bundle is from a %q ledger, the trust root is for %q", v.b.Manifest.Backend, v.trust.Backend)
		return
	}
	val, err := evidence.NewValidator(v.trust.Config)
	if err != nil {
		v.add("trust.certificates", false, nil, "", "%v", err)
		return
	}
	v.val = val
	// The quorum's members, parsed once rather than for every block.
	v.quorum = make(map[string]bool, len(v.trust.Config.BlockValidation.Members))
	for _, m := range v.trust.Config.BlockValidation.Members {
		v.quorum[evidence.KeyOf(m)] = true
	}
	if !v.chain() {
		return
	}
	v.checkpoint()
	blocks := v.blocks()
	v.transactions(blocks)
	v.ciphertexts()
}

// chain checks that the headers run from the pinned genesis to the tip,
// each naming its predecessor's hash.
func (v *verifier) chain() bool {
	hs := v.b.Headers
	if len(hs) == 0 || uint64(len(hs)) != v.b.Manifest.Tip+1 {
		v.add("chain.headers", false, nil, "", "the bundle holds %d headers for a tip of %d", len(hs), v.b.Manifest.Tip)
		return false
	}
	v.hash = make([][]byte, len(hs))
	for i, h := range hs {
		if h.Number != uint64(i) {
			v.add("chain.linkage", false, at(uint64(i)), "", "header %d is numbered %d", i, h.Number)
			return false
		}
		v.hash[i] = v.opt.Format.HeaderHash(h)
		if i > 0 && !bytes.Equal(h.PreviousHash, v.hash[i-1]) {
			v.add("chain.linkage", false, at(uint64(i)), "", "block %d does not name the hash of block %d", i, i-1)
			return false
		}
	}
	if !bytes.Equal(v.hash[0], v.trust.GenesisHash) {
		v.add("chain.genesis", false, at(0), "", "the genesis header is not the one the trust root pins")
		return false
	}
	v.add("chain.genesis", true, at(0), "", "genesis header hash %s is pinned in the trust root", short(v.hash[0]))
	v.add("chain.linkage", true, nil, "", "%d headers, each naming its predecessor's hash, genesis to tip %d", len(hs), len(hs)-1)
	return true
}

// checkpoint checks that the chain extends a saved checkpoint.
func (v *verifier) checkpoint() {
	cp := v.opt.Checkpoint
	if cp == nil {
		return
	}
	switch {
	case cp.Height >= uint64(len(v.hash)):
		v.add("checkpoint.extends", false, at(cp.Height), "", "the bundle's chain ends at %d, before the checkpoint's block %d: a rollback", len(v.hash)-1, cp.Height)
	case !bytes.Equal(v.hash[cp.Height], cp.HeaderHash):
		v.add("checkpoint.extends", false, at(cp.Height), "", "block %d is not the block the checkpoint saved: history was rewritten", cp.Height)
	default:
		v.add("checkpoint.extends", true, at(cp.Height), "", "the chain extends the checkpoint of block %d saved %s", cp.Height, cp.Saved.UTC().Format(time.RFC3339))
	}
}

// blocks checks every full block: its header is the chained one, its data
// hashes to the header's data hash, and its orderer signatures satisfy the
// block validation policy. The tip block must be among them: its
// signatures anchor every header before it.
func (v *verifier) blocks() map[uint64]*evidence.Block {
	out := map[uint64]*evidence.Block{}
	nums := make([]uint64, 0, len(v.b.Blocks))
	for n := range v.b.Blocks {
		nums = append(nums, n)
	}
	slices.Sort(nums)
	for _, n := range nums {
		blk, err := v.opt.Format.ParseBlock(v.b.Blocks[n])
		if err != nil {
			v.add("block.decode", false, at(n), "", "%v", err)
			continue
		}
		if blk.Header.Number != n || n >= uint64(len(v.hash)) || !bytes.Equal(v.opt.Format.HeaderHash(blk.Header), v.hash[n]) {
			v.add("block.header", false, at(n), "", "the block's header is not the chained header %d", n)
			continue
		}
		if !bytes.Equal(blk.ComputedDataHash, blk.Header.DataHash) {
			v.add("block.data_hash", false, at(n), "", "the block's data does not hash to its header's data hash")
			continue
		}
		v.add("block.data_hash", true, at(n), "", "data hash %s", short(blk.Header.DataHash))
		v.orderers(n, blk)
		out[n] = blk
	}
	if _, ok := out[v.b.Manifest.Tip]; !ok {
		v.add("chain.tip_signed", false, at(v.b.Manifest.Tip), "", "the tip block is not in the bundle (or did not verify): nothing signs the headers")
	} else {
		v.add("chain.tip_signed", true, at(v.b.Manifest.Tip), "", "the tip block's orderer signatures cover every header before it")
	}
	v.r.Blocks = len(out)
	return out
}

func (v *verifier) orderers(n uint64, blk *evidence.Block) {
	if n == 0 && len(blk.Orderers) == 0 {
		// Fabric's genesis block is made by configtxgen, not by the
		// ordering service: it carries no orderer signature. The trust
		// root pins its header hash instead (chain.genesis).
		v.add("block.orderer_signatures", true, at(0), "", "the genesis block is pinned by its hash in the trust root")
		return
	}
	when := time.Time{}
	for _, tx := range blk.Txs {
		if tx.Timestamp.After(when) {
			when = tx.Timestamp
		}
	}
	pol := v.trust.Config.BlockValidation
	var signers []evidence.Signer
	bad := 0
	for _, s := range blk.Orderers {
		if s.Signer.MSPID == "" {
			// A SmartBFT signature names its consenter by id only: it
			// counts for the quorum member whose key verifies it (the
			// signed bytes do not depend on who signed).
			for _, m := range pol.Members {
				s.Signer = m
				if sg, err := v.val.Verify(s, when); err == nil {
					signers = append(signers, sg)
					break
				}
			}
			continue
		}
		sg, err := v.val.Verify(s, when)
		if err != nil {
			bad++
			continue
		}
		signers = append(signers, sg)
	}
	ok, err := evidence.Satisfied(pol, signers, func(s evidence.Signer) bool { return v.quorum[s.Key] })
	switch {
	case err != nil:
		v.add("block.orderer_signatures", false, at(n), "", "block validation policy: %v", err)
	case !ok:
		v.add("block.orderer_signatures", false, at(n), "", "%d valid orderer signatures (%d invalid) do not satisfy the block validation policy %s", len(signers), bad, describe(pol))
	default:
		v.add("block.orderer_signatures", true, at(n), "", "%d valid orderer signatures satisfy %s", len(signers), describe(pol))
	}
}

func describe(p evidence.Policy) string {
	if p.Kind == evidence.PolicyQuorum {
		return fmt.Sprintf("a quorum of %d of %d consenters", p.Quorum, len(p.Members))
	}
	return p.Rule
}

// transactions checks the scope's transactions and replays the records
// their endorsed writes carry, in ledger order, checking the device and
// actor signatures and re-deriving every access decision.
func (v *verifier) transactions(blocks map[uint64]*evidence.Block) {
	v.st = newState()
	scope := map[string]uint64{}
	for _, t := range v.b.Manifest.Transactions {
		scope[t.TxID] = t.Block
	}
	found := map[string]bool{}
	nums := make([]uint64, 0, len(blocks))
	for n := range blocks {
		nums = append(nums, n)
	}
	slices.Sort(nums)
	for _, n := range nums {
		for _, tx := range blocks[n].Txs {
			if want, ok := scope[tx.ID]; ok && want == n {
				found[tx.ID] = true
			}
			if !v.endorsed(n, tx) {
				continue
			}
			v.r.Transactions++
			v.replay(n, tx)
		}
	}
	for _, t := range v.b.Manifest.Transactions {
		if !found[t.TxID] {
			v.add("tx.present", false, at(t.Block), t.TxID, "the scope's transaction is not in block %d of the bundle", t.Block)
		}
	}
	if len(v.b.Manifest.Transactions) > 0 && len(found) == len(v.b.Manifest.Transactions) {
		v.add("tx.present", true, nil, "", "all %d transactions of the scope are in verified blocks", len(found))
	}
}

// endorsed checks a transaction's creator signature, every endorsement
// and the endorsement policy, and reports whether its writes may be used.
func (v *verifier) endorsed(n uint64, tx evidence.Tx) bool {
	ok := true
	if _, err := v.val.Verify(tx.Creator, tx.Timestamp); err != nil {
		v.add("tx.creator_signature", false, at(n), tx.ID, "%v", err)
		ok = false
	} else {
		v.add("tx.creator_signature", true, at(n), tx.ID, "signed by a member of %s", tx.Creator.Signer.MSPID)
	}
	var signers []evidence.Signer
	for i, e := range tx.Endorsements {
		if i >= len(tx.EndorserIDs) || !bytes.Equal(e.Signed, append(slices.Clip(tx.Response), tx.EndorserIDs[i]...)) {
			v.add("tx.endorsement", false, at(n), tx.ID, "endorsement %d does not sign the transaction's response", i)
			ok = false
			continue
		}
		s, err := v.val.Verify(e, tx.Timestamp)
		if err != nil {
			v.add("tx.endorsement", false, at(n), tx.ID, "endorsement %d by %s: %v", i, e.Signer.MSPID, err)
			ok = false
			continue
		}
		signers = append(signers, s)
	}
	sat, err := evidence.Satisfied(v.trust.Endorsement, signers, nil)
	switch {
	case err != nil:
		v.add("tx.endorsement_policy", false, at(n), tx.ID, "%v", err)
		ok = false
	case !sat:
		v.add("tx.endorsement_policy", false, at(n), tx.ID, "%d valid endorsements do not satisfy %s", len(signers), describe(v.trust.Endorsement))
		ok = false
	default:
		v.add("tx.endorsement_policy", true, at(n), tx.ID, "%d endorsements over the same response satisfy %s", len(signers), describe(v.trust.Endorsement))
	}
	if !tx.FlaggedValid {
		// The peer marked it invalid (an MVCC conflict, typically): its
		// writes did not apply. Offline, that cannot be re-derived; the
		// transaction is reported and its writes are not replayed.
		v.add("tx.flagged_valid", true, at(n), tx.ID, "the committing peer marked this transaction invalid; its writes are not applied")
		return false
	}
	return ok
}

// state is what the replayed writes established so far.
type state struct {
	actors   map[string]wire.Actor
	devices  map[string]wire.Device
	passkeys map[string]wire.Passkey
	rps      map[string]wire.RelyingParty
	consents map[string]wire.Consent
	erased   map[string]bool
	readings map[string]wire.Reading
}

func newState() state {
	return state{actors: map[string]wire.Actor{}, devices: map[string]wire.Device{}, passkeys: map[string]wire.Passkey{},
		rps: map[string]wire.RelyingParty{}, consents: map[string]wire.Consent{}, erased: map[string]bool{}, readings: map[string]wire.Reading{}}
}

// record is the part every ledger record shares.
type record struct {
	DocType string `json:"docType"`
}

// actionFunctions are the chaincode functions whose first argument is an
// actor's signed envelope.
var actionFunctions = map[string]bool{
	wire.FnRegisterDevice: true, wire.FnRevokeDevice: true, wire.FnGrantConsent: true, wire.FnRevokeConsent: true,
	wire.FnRequestAccess: true, wire.FnRevokeActor: true, wire.FnRotateActorKey: true, wire.FnErasePatient: true,
	wire.FnRequestAccessByRead: true,
}

// records yields the ledger records a transaction wrote (JSON values with
// a docType; index keys and deletions are skipped) with their docType.
func records(tx evidence.Tx) iter.Seq2[string, []byte] {
	return func(yield func(string, []byte) bool) {
		for _, w := range tx.Writes {
			if w.Delete || len(w.Value) == 0 || w.Value[0] != '{' {
				continue
			}
			var rec record
			if json.Unmarshal(w.Value, &rec) != nil {
				continue
			}
			if !yield(rec.DocType, w.Value) {
				return
			}
		}
	}
}

// decoded decodes a record, reporting whether it decoded.
func decoded[T any](raw []byte) (T, bool) {
	var v T
	return v, json.Unmarshal(raw, &v) == nil
}

// keep stores a decoded record in m under key(record).
func keep[T any](m map[string]T, raw []byte, key func(T) string) {
	if v, ok := decoded[T](raw); ok {
		m[key(v)] = v
	}
}

// replay checks a transaction's chaincode-level evidence against the state
// before it, then applies its writes.
func (v *verifier) replay(n uint64, tx evidence.Tx) {
	if actionFunctions[tx.Function] && len(tx.Args) > 0 {
		v.actionSignature(n, tx)
	}
	for typ, raw := range records(tx) {
		switch typ {
		case "reading":
			if r, ok := decoded[wire.Reading](raw); ok {
				v.deviceSignature(n, tx, r)
			}
		case "access":
			if a, ok := decoded[wire.AccessEvent](raw); ok && (tx.Function == wire.FnRequestAccess || tx.Function == wire.FnRequestAccessByRead) {
				v.decision(n, tx, a)
			}
		}
	}
	v.apply(tx)
}

// apply records the transaction's writes in the state.
func (v *verifier) apply(tx evidence.Tx) {
	for typ, raw := range records(tx) {
		switch typ {
		case "actor":
			keep(v.st.actors, raw, func(a wire.Actor) string { return a.ID })
		case "device":
			keep(v.st.devices, raw, func(d wire.Device) string { return d.ID })
		case "passkey":
			keep(v.st.passkeys, raw, func(p wire.Passkey) string { return p.CredentialID })
		case "relyingParty":
			keep(v.st.rps, raw, func(p wire.RelyingParty) string { return p.Org })
		case "consent":
			keep(v.st.consents, raw, func(c wire.Consent) string { return c.ID })
		case "reading":
			keep(v.st.readings, raw, func(r wire.Reading) string { return r.ID })
		case "erasure":
			if e, ok := decoded[wire.Erasure](raw); ok {
				v.st.erased[e.PatientID] = true
			}
		}
	}
}

// deviceSignature checks a recorded reading's device signature over its
// dataHash with the device key registered before it.
func (v *verifier) deviceSignature(n uint64, tx evidence.Tx, r wire.Reading) {
	if !v.inScope(r.PatientID, r.ID) {
		return
	}
	dev, ok := v.st.devices[r.DeviceID]
	if !ok {
		v.add("reading.device_signature", false, at(n), tx.ID, "reading %s: the registration of device %s is not in the bundle", r.ID, r.DeviceID)
		return
	}
	pub, err := envelope.ParsePublicKey([]byte(dev.PublicKey))
	digest, herr := hex.DecodeString(r.DataHash)
	sig, serr := base64.StdEncoding.DecodeString(r.Signature)
	if err != nil || herr != nil || serr != nil || envelope.VerifyDigest(pub, digest, sig) != nil {
		v.add("reading.device_signature", false, at(n), tx.ID, "reading %s: the device signature does not verify over its dataHash", r.ID)
		return
	}
	v.add("reading.device_signature", true, at(n), tx.ID, "reading %s signed by device %s", r.ID, r.DeviceID)
}

// inScope reports whether a patient's or reading's records are the
// bundle's subject (other patients' records share blocks with them).
func (v *verifier) inScope(patientID, readingID string) bool {
	s := v.b.Manifest.Scope
	switch {
	case s.ReadingID != "":
		return readingID == s.ReadingID || readingID == "" && patientID == v.scopePatient()
	case s.PatientID != "":
		return patientID == s.PatientID
	}
	return true
}

// scopePatient is the patient of the scope's reading, once replayed.
func (v *verifier) scopePatient() string {
	if r, ok := v.st.readings[v.b.Manifest.Scope.ReadingID]; ok {
		return r.PatientID
	}
	return ""
}

// actionSignature checks the actor's signature over an action envelope
// with the actor's key (or passkey) on the ledger before it.
func (v *verifier) actionSignature(n uint64, tx evidence.Tx) {
	env, err := envelope.ParseSigned([]byte(tx.Args[0]))
	if err != nil {
		v.add("action.signature", false, at(n), tx.ID, "the action envelope is malformed: %v", err)
		return
	}
	var h wire.ActionHeader
	if err := json.Unmarshal(env.Payload, &h); err != nil {
		v.add("action.signature", false, at(n), tx.ID, "the action payload is malformed")
		return
	}
	act, ok := v.st.actors[h.ActorID]
	if !ok {
		v.add("action.signature", false, at(n), tx.ID, "the registration of actor %s is not in the bundle", h.ActorID)
		return
	}
	if issued, err := time.Parse(time.RFC3339Nano, h.IssuedAt); err != nil || issued.Sub(tx.Timestamp).Abs() > wire.IssuedAtWindow {
		v.add("action.signature", false, at(n), tx.ID, "%s issuedAt is not within %s of the transaction time", h.Action, wire.IssuedAtWindow)
		return
	}
	if env.WebAuthn == nil {
		pub, err := envelope.ParsePublicKey([]byte(act.PublicKey))
		if err != nil || env.Envelope().Verify(pub) != nil {
			v.add("action.signature", false, at(n), tx.ID, "%s by %s: the signature does not verify with the actor's key", h.Action, h.ActorID)
			return
		}
		v.add("action.signature", true, at(n), tx.ID, "%s signed by %s", h.Action, h.ActorID)
		return
	}
	credID := base64.RawURLEncoding.EncodeToString(env.WebAuthn.CredentialID)
	pk, ok := v.st.passkeys[credID]
	rp, rpOK := v.st.rps[act.Org]
	if !ok || pk.ActorID != h.ActorID || !rpOK {
		v.add("action.signature", false, at(n), tx.ID, "%s by %s: the passkey or the org's relying party is not in the bundle", h.Action, h.ActorID)
		return
	}
	pub, err := envelope.ParsePublicKey([]byte(pk.PublicKey))
	if err == nil {
		_, err = envelope.VerifyAssertion(pub, envelope.RelyingParty{ID: rp.RPID, Origins: rp.Origins}, env.Payload, *env.WebAuthn)
	}
	if err != nil {
		v.add("action.signature", false, at(n), tx.ID, "%s by %s: the passkey assertion does not verify: %v", h.Action, h.ActorID, err)
		return
	}
	v.add("action.signature", true, at(n), tx.ID, "%s signed by %s with a passkey (user verified)", h.Action, h.ActorID)
}

// decision re-derives an access decision from the consents the ledger held
// before the transaction.
func (v *verifier) decision(n uint64, tx evidence.Tx, ev wire.AccessEvent) {
	if !v.inScope(ev.PatientID, "") && !v.releasesScopeReading(ev) {
		return
	}
	p, err := v.accessRequest(tx)
	if err != nil {
		v.add("access.decision", false, at(n), tx.ID, "the access request is malformed: %v", err)
		return
	}
	from, err1 := time.Parse(time.RFC3339Nano, p.From)
	to, err2 := time.Parse(time.RFC3339Nano, p.To)
	if err1 != nil || err2 != nil {
		v.add("access.decision", false, at(n), tx.ID, "the access request's window is malformed")
		return
	}
	req := consent.Request{Self: p.ActorID == p.PatientID, Erased: v.st.erased[p.PatientID], Purpose: p.Purpose,
		DataTypes: p.DataTypes, From: from, To: to, At: tx.Timestamp}
	for _, c := range v.st.consents {
		if c.PatientID == p.PatientID && c.GranteeID == p.ActorID {
			req.Consents = append(req.Consents, c)
		}
	}
	granted, reason, consentID := consent.Decide(req)
	want := wire.DecisionDenied
	if granted {
		want = wire.DecisionGranted
	}
	switch {
	case ev.Decision != want || ev.Reason != reason || ev.ConsentID != consentID:
		v.add("access.decision", false, at(n), tx.ID, "access %s recorded %s (%s, consent %q); the consents on the ledger then give %s (%s, consent %q)",
			ev.ID, ev.Decision, ev.Reason, ev.ConsentID, want, reason, consentID)
	case granted && req.Self:
		v.add("access.decision", true, at(n), tx.ID, "access %s: the patient's own readings, granted", ev.ID)
	case granted:
		v.add("access.decision", true, at(n), tx.ID, "access %s granted by consent %s, re-derived from %d consents", ev.ID, consentID, len(req.Consents))
	default:
		v.add("access.decision", true, at(n), tx.ID, "access %s denied (%s), re-derived from %d consents", ev.ID, reason, len(req.Consents))
	}
}

// accessRequest is the access request a transaction decided: the signed
// access.request, or, for a FHIR read (RequestAccessByRead), the request
// its signed GET stands for, derived as the chaincode derives it, with the
// readings replayed so far.
func (v *verifier) accessRequest(tx evidence.Tx) (wire.AccessRequestAction, error) {
	env, err := envelope.ParseSigned([]byte(tx.Args[0]))
	if err != nil {
		return wire.AccessRequestAction{}, err
	}
	if tx.Function != wire.FnRequestAccessByRead {
		var p wire.AccessRequestAction
		return p, json.Unmarshal(env.Payload, &p)
	}
	var g wire.HTTPGetAction
	if err := json.Unmarshal(env.Payload, &g); err != nil {
		return wire.AccessRequestAction{}, err
	}
	p, _, err := readaccess.Derive(g, func(dataHash, readingID string) (*wire.Reading, error) {
		for _, r := range v.st.readings {
			if r.ID == readingID || dataHash != "" && r.DataHash == dataHash {
				return &r, nil
			}
		}
		return nil, nil
	})
	return p, err
}

func (v *verifier) releasesScopeReading(ev wire.AccessEvent) bool {
	return v.b.Manifest.Scope.ReadingID != "" && slices.Contains(ev.ReadingIDs, v.b.Manifest.Scope.ReadingID)
}

// ciphertexts checks the bundle's ciphertexts against the verified
// readings: SHA-256 and size, and, with a keyring, the plaintext hash.
func (v *verifier) ciphertexts() {
	for id, r := range v.st.readings {
		ct, ok := v.b.Ciphertexts[r.CID]
		if !ok || !v.inScope(r.PatientID, id) {
			continue
		}
		sum := sha256.Sum256(ct)
		if hex.EncodeToString(sum[:]) != r.CipherHash || int64(len(ct)) != r.Size {
			v.add("ciphertext.hash", false, nil, r.TxID, "reading %s: the ciphertext's SHA-256 or size differs from the ledger's", id)
			continue
		}
		v.add("ciphertext.hash", true, nil, r.TxID, "reading %s: %d bytes, SHA-256 as on the ledger", id, len(ct))
		if c, err := cid.Decode(r.CID); err == nil && c.Prefix().Codec == cid.Raw {
			mh, _ := multihash.Sum(ct, multihash.SHA2_256, -1)
			v.add("ciphertext.cid", c.Equals(cid.NewCidV1(cid.Raw, mh)), nil, r.TxID, "reading %s: the ciphertext is the block its CID names", id)
		} else {
			v.add("ciphertext.cid", false, nil, r.TxID, "reading %s: CID %q is not a raw-leaf CID this check can recompute", id, r.CID)
		}
		if v.opt.Open == nil {
			continue
		}
		pt, err := v.opt.Open(r.PatientID, id, ct)
		if err != nil {
			v.add("plaintext.hash", false, nil, r.TxID, "reading %s: could not decrypt: %v", id, err)
			continue
		}
		ph := sha256.Sum256(pt)
		v.add("plaintext.hash", hex.EncodeToString(ph[:]) == r.DataHash, nil, r.TxID, "reading %s: the decrypted reading hashes to the dataHash the device signed", id)
	}
}

func short(b []byte) string {
	s := hex.EncodeToString(b)
	if len(s) > 16 {
		return s[:16] + "…"
	}
	return s
}
