package chaincode_test

import (
	"encoding/json"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hyperledger/fabric-contract-api-go/v2/contractapi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/medprov/medprov/chaincode"
	"github.com/medprov/medprov/internal/testkit"
	"github.com/medprov/medprov/ledger"
	"github.com/medprov/medprov/wire"
)

// typedContract adds RecordReadingsTyped, the same transaction with typed
// argument and result, so the benchmark can measure what contract-api's
// JSON schema validation of typed values costs.
type typedContract struct {
	chaincode.Contract
}

// RecordReadingsTyped is RecordReadings with a typed batch and result.
func (c *typedContract) RecordReadingsTyped(ctx contractapi.TransactionContextInterface, in wire.BatchInput) (*wire.BatchResult, error) {
	arg, err := json.Marshal(in)
	if err != nil {
		return nil, err
	}
	out, err := c.RecordReadings(ctx, string(arg))
	if err != nil {
		return nil, err
	}
	var res wire.BatchResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// BenchmarkRecordReadings100 submits batches of 100 device-signed readings
// (20 devices of 5 patients) from 8 concurrent clients to the embedded
// ledger and reports committed readings per second.
func BenchmarkRecordReadings100(b *testing.B) {
	cc, err := chaincode.NewChaincode()
	require.NoError(b, err, "NewChaincode")
	benchRecord(b, newEnvWith(b, cc), wire.FnRecordReadings)
}

// BenchmarkRecordReadings100TypedResult is BenchmarkRecordReadings100 through
// RecordReadingsTyped: typed argument and result, validated by contract-api
// against their JSON schema.
func BenchmarkRecordReadings100TypedResult(b *testing.B) {
	cc, err := contractapi.NewChaincode(&typedContract{})
	require.NoError(b, err, "NewChaincode")
	benchRecord(b, newEnvWith(b, cc), "RecordReadingsTyped")
}

func benchRecord(b *testing.B, e *env, fn string) {
	const batchSize = 100
	op := e.actor("operator")
	var devices []*principal
	for range 5 {
		p := e.actor("patient")
		for range 4 {
			devices = append(devices, e.device(op, p))
		}
	}
	batches := make([]string, b.N)
	seq := uint64(0)
	for i := range batches {
		items := make([]wire.ReadingInput, batchSize)
		for j := range items {
			seq++
			d := devices[int(seq)%len(devices)]
			items[j] = reading(b, d, seq, "spo2", t0.Add(-time.Duration(seq)*time.Second))
		}
		batches[i] = string(testkit.MustJSON(b, wire.BatchInput{Readings: items}))
	}
	var next atomic.Int64
	b.SetParallelism(4)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := next.Add(1) - 1
			c, err := e.l.Submit(b.Context(), ledger.Proposal{Function: fn, Args: []string{batches[i]}})
			if !assert.NoError(b, err, "Submit batch %d", i) {
				return
			}
			var res wire.BatchResult
			if !assert.NoError(b, json.Unmarshal(c.Payload, &res), "result of batch %d", i) ||
				!assert.Equal(b, batchSize, res.Recorded, "readings batch %d recorded", i) {
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N*batchSize)/time.Since(start).Seconds(), "readings/s")
}
