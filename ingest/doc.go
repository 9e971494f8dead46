// Package ingest turns acknowledged device readings into ledger transactions
// without losing or duplicating any.
//
// The pipeline has two halves. Queue is a durable, bounded ingest queue: a
// reading is acknowledged only after its record has been fsynced, and many
// concurrent appends share one fsync (group commit). Batcher drains the queue
// into RecordReadings transactions, many readings per transaction and several
// transactions in flight, retrying with backoff while the ledger is
// unavailable. Because the chaincode treats an identical (deviceId, seq) as
// an idempotent retry, replaying a record whose transaction outcome was
// unknown (a crash, a timeout) never records it twice.
//
// Crash recovery: on Open the queue returns every record not yet marked done;
// the batcher submits them again. A record is marked done only after the
// ledger reported its outcome.
package ingest
