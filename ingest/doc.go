// Package ingest owns medprov's reading path, from a verified reading to
// its ledger outcome, without losing or duplicating any reading.
//
// [Pipeline] is the whole path behind one small API (Submit, Await, Lookup,
// Lag, Pending): it seals each reading under its patient's key, stores the
// ciphertext (concurrent submissions share one blob-store write), appends
// the ledger record to the durable [Queue] and only then acknowledges it;
// the [Batcher] cuts queued records into RecordReadings transactions (many
// readings per transaction, several in flight), retries with backoff while
// the ledger is unavailable and reports each reading's outcome.
//
// Durability: a reading is acknowledged only after its queue record has
// been fsynced; many concurrent appends share one fsync (group commit).
// Crash recovery: Open replays every record not yet marked done. A record
// is marked done only after the ledger reported its outcome, and the
// chaincode answers "exists" for a reading it already holds, so a replay
// never records a reading twice.
//
// Ledger loss: a record done as recorded is retained for a while (see
// QueueConfig.RetainFor and RetainMax), and the queue remembers the block
// of every reading it saw recorded. When it opens, the pipeline checks
// that the ledger still holds the highest block the queue saw (one lookup
// when nothing was lost); if not, it finds the blocks the ledger lost,
// resubmits the retained readings it lacks, names every missing reading in
// a report file and logs the counts (see [Reconciliation]). Batching starts
// once the check is done; readings are accepted meanwhile. A node
// restored from a backup relies on this: Queue.Backup copies the queue
// while it runs, and a queue kept across the restore of an older ledger
// resubmits what that ledger lacks.
//
// The caller (the gateway) authenticates readings before Submit; the
// chaincode checks every device signature again on the ledger.
package ingest
