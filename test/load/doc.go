// Package load measures the gateway's ingest pipeline and proves it loses
// nothing under load.
//
// Its tests drive the medprov binary (built by test/e2e) over loopback HTTP:
// TestBenchEmbedded runs "medprov bench" against the embedded default and
// checks that every acknowledged reading committed; TestCrashDuringLoad
// SIGKILLs the gateway in the middle of a load run, restarts it on the same
// data and checks, on the embedded ledger itself, that every acknowledged
// reading is recorded exactly once.
//
// BenchmarkGatewayIngest runs the gateway in-process so that its CPU can be
// profiled during the load phase only:
//
//	go test ./test/load -run '^$' -bench GatewayIngest -benchtime 300000x \
//	    -load.cpuprofile /tmp/ingest.pprof
//	go tool pprof -top -nodecount 60 /tmp/ingest.pprof
//
// No test asserts a speed; numbers are logged or reported as benchmark
// metrics.
package load
