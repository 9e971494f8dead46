// Package testnet starts real backend processes for tests: a kubo daemon
// (kubo.go) and a Fabric network (fabric.go). Each helper builds what it needs
// through the project's scripts (building only when missing), runs the
// process isolated in a temporary directory on free loopback ports, and
// stops it in the test's cleanup. A missing or unbuildable dependency is a
// test failure that says what to run, never a skip.
package testnet
