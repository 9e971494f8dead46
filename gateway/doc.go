// Package gateway is medprov's HTTP front door: a Gin server for device
// ingest, consent management, research access and audit.
//
// The gateway is not trusted for authenticity. Device readings and actor
// actions arrive as signed envelopes that the chaincode verifies against
// keys on the ledger; the gateway checks them too (to refuse early and to
// guard its reads) but the ledger is the authority. What the gateway is
// trusted with is confidentiality: it seals readings before they reach the
// blob store and releases plaintext to a researcher only after the ledger
// has committed the access event that records the release.
//
// Every route answers JSON; every error is {"error":{"code","message"}} with
// a status chosen in one place (errors.go), and the real cause goes to the
// log, never to the client.
package gateway
