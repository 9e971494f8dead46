package embedded_test

import (
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/medprov/medprov/ledger"
)

// BenchmarkSubmit measures committed transactions per second for a small
// transaction (one key written), from 16 concurrent callers per core so that
// blocks carry several transactions.
func BenchmarkSubmit(b *testing.B) {
	l := newLedger(b)
	var n atomic.Int64
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			k := strconv.FormatInt(n.Add(1), 10)
			_, err := l.Submit(b.Context(), ledger.Proposal{Function: "Put", Args: []string{"k" + k, "value"}})
			if !assert.NoError(b, err, "Submit") {
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tx/s")
	b.ReportMetric(float64(b.N)/float64(l.Height()-1), "tx/block")
}

// BenchmarkSubmitSequential measures one caller submitting small
// transactions one after another (one block, one fsync per transaction).
func BenchmarkSubmitSequential(b *testing.B) {
	l := newLedger(b)
	for i := range b.N {
		_, err := l.Submit(b.Context(), ledger.Proposal{Function: "Put", Args: []string{"k" + strconv.Itoa(i), "value"}})
		require.NoError(b, err, "Submit")
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tx/s")
}

// BenchmarkSubmitBulk measures keys committed per second when each
// transaction writes 500 keys of 600 bytes (a batch of readings without
// the chaincode's signature checks), from 4 concurrent callers per core.
func BenchmarkSubmitBulk(b *testing.B) {
	const keys = 500
	l := newLedger(b)
	var n atomic.Int64
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			p := strconv.FormatInt(n.Add(1), 10)
			_, err := l.Submit(b.Context(), ledger.Proposal{Function: "Bulk", Args: []string{p, strconv.Itoa(keys), "600"}})
			if !assert.NoError(b, err, "Submit") {
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N*keys)/b.Elapsed().Seconds(), "keys/s")
}
