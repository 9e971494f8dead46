package embedded_test

import (
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/medprov/medprov/internal/testkit"
	"github.com/medprov/medprov/ledger"
	"github.com/medprov/medprov/ledger/embedded"
	"github.com/medprov/medprov/wire"
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

// BenchmarkVerify measures a full Verify (every block replayed, current
// state, history and indexes compared) of a ledger holding n real medprov
// readings, recorded by the chaincode in batches of 500 as the gateway's
// batcher records them, and reports its cost per reading.
func BenchmarkVerify(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run("readings="+strconv.Itoa(n), func(b *testing.B) {
			m := newMedprov(b, b.TempDir())
			b.Cleanup(m.close)
			operator, patient := m.actor(wire.RoleOperator), m.actor(wire.RolePatient)
			dev := m.device(operator, patient)
			const batch = 500
			batches := make(chan wire.BatchInput, 4)
			go func() {
				defer close(batches)
				for seq := 1; seq <= n; seq += batch {
					batches <- readingBatch(b, dev, uint64(seq), min(batch, n-seq+1))
				}
			}()
			var wg sync.WaitGroup
			for range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for in := range batches {
						_, err := m.l.Submit(b.Context(), ledger.Proposal{Function: wire.FnRecordReadings, Args: []string{string(testkit.MustJSON(b, in))}})
						assert.NoError(b, err, "RecordReadings")
					}
				}()
			}
			wg.Wait()
			b.ReportAllocs()
			for b.Loop() {
				require.NoError(b, m.l.Verify(b.Context()), "Verify")
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/reading")
			m.close()
			rep, err := embedded.VerifyDir(b.Context(), m.dir)
			require.NoError(b, err, "VerifyDir")
			b.ReportMetric(float64(rep.Keys), "keys")
			b.ReportMetric(float64(rep.HistoryEntries), "writes")
		})
	}
}

// BenchmarkVerifySmallTransactions measures a full Verify of a ledger of
// small transactions (one key written each, committed from many callers
// as in BenchmarkSubmit) and reports its cost per transaction: where
// checking each transaction's creator signature and endorsement weighs
// most.
func BenchmarkVerifySmallTransactions(b *testing.B) {
	const n = 5_000
	l := newLedger(b)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for i := next.Add(1); i <= n; i = next.Add(1) {
				_, err := l.Submit(b.Context(), ledger.Proposal{Function: "Put", Args: []string{"k" + strconv.FormatInt(i, 10), "value"}})
				if !assert.NoError(b, err, "Submit") {
					return
				}
			}
		})
	}
	wg.Wait()
	b.ReportAllocs()
	for b.Loop() {
		require.NoError(b, l.Verify(b.Context()), "Verify")
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/tx")
	b.ReportMetric(float64(n)/float64(l.Height()-1), "tx/block")
}

// BenchmarkWriteSetHash measures what the write-set hash adds to a
// transaction, without the I/O that makes BenchmarkSubmitBulk noisy: the
// hash of one transaction writing 500 keys of 600 bytes, as in that
// benchmark. It is computed with the simulation, concurrently with others;
// the committer adds 36 bytes per transaction to the block's hash.
func BenchmarkWriteSetHash(b *testing.B) {
	tx := embedded.Transaction{Valid: true}
	for i := range 500 {
		tx.Writes = append(tx.Writes, embedded.KeyWrite{Key: "bulk-" + strconv.Itoa(100000+i), Value: make([]byte, 600)})
	}
	b.SetBytes(500 * 600)
	for b.Loop() {
		embedded.TxWriteSetHash(tx.Writes)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/500, "ns/key")
}
