package chaincode

import (
	"crypto/ecdsa"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/medprov/medprov/wire"

	"github.com/hyperledger/fabric-chaincode-go/v2/pkg/cid"
	"github.com/hyperledger/fabric-chaincode-go/v2/shim"
	"github.com/hyperledger/fabric-contract-api-go/v2/contractapi"
	"github.com/hyperledger/fabric-contract-api-go/v2/metadata"

	"github.com/medprov/medprov/envelope"
)

// AdminOU is the organisational unit an org admin's certificate carries
// (Fabric NodeOUs).
const AdminOU = "admin"

// Contract is the medprov smart contract. It holds no state of its own:
// everything it decides comes from the ledger, the arguments and the
// transaction (timestamp, id, creator).
type Contract struct {
	contractapi.Contract
	verifier Verifier
	// registryScan and statsScan bound the registry queries' scans
	// (WithRegistryScan, WithDeviceStatsScan); 0 is the wire default.
	registryScan, statsScan int
}

// Verifier checks a DER ECDSA signature over a SHA-256 digest; it returns
// an error if the signature does not verify. envelope.VerifyDigest is the
// default; an envelope.VerifyMemo gives the same answers and skips the
// ECDSA work for a triple its process already verified.
type Verifier interface {
	VerifyDigest(pub *ecdsa.PublicKey, digest, sig []byte) error
}

// Option configures NewChaincode.
type Option func(*Contract)

// WithVerifier makes the chaincode check device signatures with v. The
// embedded ledger passes the memo the in-process gateway verified with, so
// a reading's signature costs one ECDSA verification per process instead of
// two; a peer's chaincode server uses the default.
func WithVerifier(v Verifier) Option { return func(c *Contract) { c.verifier = v } }

// NewChaincode builds the medprov chaincode with Contract as its default
// contract, so transactions are called by their plain names
// ("RecordReadings").
func NewChaincode(opts ...Option) (*contractapi.ContractChaincode, error) {
	c := &Contract{verifier: envelope.VerifierFunc(envelope.VerifyDigest)}
	for _, o := range opts {
		o(c)
	}
	c.Info = metadata.InfoMetadata{Title: "medprov", Version: "1.0.0"}
	cc, err := contractapi.NewChaincode(c)
	if err != nil {
		return nil, fmt.Errorf("build medprov chaincode: %w", err)
	}
	cc.Info = metadata.InfoMetadata{Title: "medprov", Version: "1.0.0"}
	return cc, nil
}

// GetEvaluateTransactions lists the read-only queries, so the contract
// metadata tags them as evaluate transactions.
func (c *Contract) GetEvaluateTransactions() []string {
	return wire.EvaluateFunctions()
}

// tx holds what every transaction reads once from the stub.
type tx struct {
	stub shim.ChaincodeStubInterface
	id   string
	time time.Time
	at   string // formatTime(time)
}

func newTx(ctx contractapi.TransactionContextInterface) (*tx, error) {
	stub := ctx.GetStub()
	ts, err := stub.GetTxTimestamp()
	if err != nil {
		return nil, fmt.Errorf("read transaction timestamp: %w", err)
	}
	if err := ts.CheckValid(); err != nil {
		return nil, fmt.Errorf("transaction timestamp: %w", err)
	}
	t := ts.AsTime().UTC()
	return &tx{stub: stub, id: stub.GetTxID(), time: t, at: formatTime(t)}, nil
}

// getJSON loads the record under k into v; found is false if there is none.
func getJSON(stub shim.ChaincodeStubInterface, k string, v any) (bool, error) {
	b, err := stub.GetState(k)
	if err != nil {
		return false, fmt.Errorf("read state: %w", err)
	}
	if len(b) == 0 {
		return false, nil
	}
	if err := json.Unmarshal(b, v); err != nil {
		return false, fmt.Errorf("decode state record: %w", err)
	}
	return true, nil
}

func putJSON(stub shim.ChaincodeStubInterface, k string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode state record: %w", err)
	}
	if err := stub.PutState(k, b); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	return nil
}

func putIndex(stub shim.ChaincodeStubInterface, obj string, attrs ...string) error {
	k, err := key(stub, obj, attrs...)
	if err != nil {
		return fmt.Errorf("index key: %w", err)
	}
	if err := stub.PutState(k, indexValue); err != nil {
		return fmt.Errorf("write index: %w", err)
	}
	return nil
}

func setEvent(stub shim.ChaincodeStubInterface, name string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode event: %w", err)
	}
	if err := stub.SetEvent(name, b); err != nil {
		return fmt.Errorf("set event: %w", err)
	}
	return nil
}

// writeAudit stores the audit event of this transaction and its indexes: one
// per dimension (all, actor, type, each patient), each with a month marker.
// Markers are blind writes, so concurrent transactions never conflict on them.
func (t *tx) writeAudit(typ, actorID string, patientIDs []string, subjectID, decision string) error {
	pids := slices.Clone(patientIDs)
	slices.Sort(pids)
	pids = slices.Compact(pids)
	if pids == nil {
		pids = []string{}
	}
	ev := &wire.AuditEvent{
		DocType: "audit", ID: t.id, Type: typ, ActorID: actorID, PatientIDs: pids,
		SubjectID: subjectID, Decision: decision, TxID: t.id, TxTime: t.at,
	}
	k, err := key(t.stub, objAudit, t.id)
	if err != nil {
		return fmt.Errorf("audit key: %w", err)
	}
	if err := putJSON(t.stub, k, ev); err != nil {
		return err
	}
	month := monthOf(t.time)
	dims := [][2]string{{dimAll, allValue}, {dimActor, actorID}, {dimType, typ}}
	for _, p := range pids {
		dims = append(dims, [2]string{dimPatient, p})
	}
	for _, d := range dims {
		if err := putIndex(t.stub, objAuditBy, d[0], d[1], month, t.at, t.id); err != nil {
			return err
		}
		if err := putIndex(t.stub, objAuditMonth, d[0], d[1], month); err != nil {
			return err
		}
	}
	return nil
}

// orgActor names the org (creator MSP) as the actor of transactions that
// are authenticated by the Fabric identity alone.
func orgActor(stub shim.ChaincodeStubInterface) (string, error) {
	msp, err := cid.GetMSPID(stub)
	if err != nil {
		return "", fmt.Errorf("read creator MSP ID: %w", err)
	}
	return "org:" + msp, nil
}
