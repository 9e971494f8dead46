package fabric

import (
	"context"
	"testing"

	"github.com/hyperledger/fabric-gateway/pkg/client"
	"github.com/hyperledger/fabric-protos-go-apiv2/gateway"
	"github.com/hyperledger/fabric-protos-go-apiv2/peer"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/medprov/medprov/ledger"
)

// statusWithDetails builds the gRPC status the peer's gateway returns, with
// one ErrorDetail per endorser message.
func statusWithDetails(t *testing.T, code codes.Code, msg string, details ...string) error {
	t.Helper()
	st := status.New(code, msg)
	for _, d := range details {
		var err error
		st, err = st.WithDetails(&gateway.ErrorDetail{Address: "127.0.0.1:7051", MspId: "HospitalMSP", Message: d})
		require.NoError(t, err, "WithDetails")
	}
	return st.Err()
}

// The real network produces most of these (see fabric_test.go); this table
// pins the classification of the rarer shapes that are hard to provoke.
func TestClassify(t *testing.T) {
	tests := []struct {
		name        string
		err         func(t *testing.T) error
		wantCC      string // expected ChaincodeError.Message, "" if none
		wantStatus  int32
		unavailable bool
	}{
		{
			name: "a medprov refusal in an endorser detail keeps the chaincode's message",
			err: func(t *testing.T) error {
				return statusWithDetails(t, codes.Aborted, "failed to endorse transaction, see attached details for more info",
					"[medprov:forbidden] only an org admin may register actors")
			},
			wantCC:     "[medprov:forbidden] only an org admin may register actors",
			wantStatus: 500,
		},
		{
			name: "an evaluate refusal carries the marker in the status message",
			err: func(t *testing.T) error {
				return statusWithDetails(t, codes.Aborted, "evaluate call to endorser returned error: [medprov:forbidden] only an org admin may register actors")
			},
			wantCC:     "[medprov:forbidden] only an org admin may register actors",
			wantStatus: 500,
		},
		{
			name: "a chaincode response with a status keeps that status",
			err: func(t *testing.T) error {
				return statusWithDetails(t, codes.Unknown, "failed to endorse", "chaincode response 409, [medprov:conflict] duplicate")
			},
			wantCC:     "[medprov:conflict] duplicate",
			wantStatus: 409,
		},
		{
			name: "a refusal without the marker is still a chaincode error",
			err: func(t *testing.T) error {
				return statusWithDetails(t, codes.Aborted, "failed to endorse transaction, see attached details for more info",
					"Function Nope not found in contract Contract")
			},
			wantCC:     "Function Nope not found in contract Contract",
			wantStatus: 500,
		},
		{
			name: "a chaincode server that is down makes the ledger unavailable",
			err: func(t *testing.T) error {
				return statusWithDetails(t, codes.Aborted, "failed to endorse transaction, see attached details for more info",
					"error in simulation: failed to execute transaction: could not launch chaincode medprov: connection refused")
			},
			unavailable: true,
		},
		{
			name: "too few live peers for the endorsement policy makes the ledger unavailable",
			err: func(t *testing.T) error {
				return statusWithDetails(t, codes.FailedPrecondition, "no combination of peers can be derived which satisfy the endorsement policy")
			},
			unavailable: true,
		},
		{
			name: "an unreachable peer makes the ledger unavailable",
			err: func(t *testing.T) error {
				return statusWithDetails(t, codes.Unavailable, "connection refused")
			},
			unavailable: true,
		},
		{
			name: "an expired deadline makes the ledger unavailable",
			err: func(t *testing.T) error {
				return statusWithDetails(t, codes.DeadlineExceeded, "context deadline exceeded")
			},
			unavailable: true,
		},
		{
			name: "an invalidated transaction is a chaincode error with its validation code",
			err: func(t *testing.T) error {
				return &client.CommitError{TransactionID: "tx1", Code: peer.TxValidationCode_MVCC_READ_CONFLICT}
			},
			wantCC:     "transaction invalidated: MVCC_READ_CONFLICT",
			wantStatus: int32(peer.TxValidationCode_MVCC_READ_CONFLICT),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := classify(t.Context(), "op", "tx0", tc.err(t))
			var ccErr *ledger.ChaincodeError
			switch {
			case tc.wantCC != "":
				require.ErrorAs(t, got, &ccErr)
				assert.Equal(t, tc.wantCC, ccErr.Message, "ChaincodeError message")
				assert.Equal(t, tc.wantStatus, ccErr.Status, "ChaincodeError status")
			case tc.unavailable:
				assert.ErrorIs(t, got, ledger.ErrUnavailable)
				assert.NotErrorAs(t, got, &ccErr, "an unavailable ledger is no refusal")
			}
		})
	}
}

func TestClassifyCancelledCaller(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	got := classify(ctx, "op", "", status.Error(codes.Canceled, "context canceled"))
	assert.ErrorIs(t, got, context.Canceled, "the caller's cancellation")
	assert.NotErrorIs(t, got, ledger.ErrUnavailable, "a cancelled caller is no unavailable ledger")
}

func TestRetryableConflict(t *testing.T) {
	tests := []struct {
		name string
		code peer.TxValidationCode
		want bool
	}{
		{"an MVCC read conflict is resubmitted", peer.TxValidationCode_MVCC_READ_CONFLICT, true},
		{"a phantom read conflict is resubmitted", peer.TxValidationCode_PHANTOM_READ_CONFLICT, true},
		{"an endorsement policy failure is final", peer.TxValidationCode_ENDORSEMENT_POLICY_FAILURE, false},
		{"a valid transaction is not retried", peer.TxValidationCode_VALID, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, retryableConflict(tt.code), "retryableConflict(%s)", tt.code)
		})
	}
}
