// Package wire is medprov's wire contract: the words that the device, the
// gateway, the chaincode and every client share, defined once.
//
// It holds the payloads that are signed (a device's [ReadingPayload], an
// actor's action payloads built on [ActionHeader]), the ledger records the
// chaincode writes and returns ([Actor], [Device], [Reading], [Consent],
// [AccessEvent], [AuditEvent]), the HTTP receipts the gateway answers with,
// the names of roles, statuses, actions, decisions, audit types, events and
// chaincode functions (those of the identity lifecycle, actor.revoke,
// actor.rotate and patient.erase, in lifecycle.go; those of passkeys, with
// the [Passkey] and [RelyingParty] records and the grammar of credential
// ids, rpIds and origins, in passkey.go; the HTTP bodies of invitations
// and passkey enrolment in enrol.go), the error codes with their HTTP statuses ([Code],
// [Error]), and the identifier grammar ([ValidID], [IDPattern], [ReadingID]).
//
// Signed bytes and envelopes are decoded with [DecodeStrict], one strict
// reading shared by gateway and chaincode: duplicate member names, names
// that match a field only case-insensitively, unknown members, trailing
// data, invalid UTF-8 and lone surrogates are refused, so every party that
// parses a signed payload, with any JSON library, reads the same values.
//
// The package depends on the standard library only, so device SDKs and
// clients can use it without pulling in Fabric. The `metadata` struct tags
// are read by Fabric's contract API when these types cross the chaincode
// boundary; they cost nothing elsewhere.
package wire
