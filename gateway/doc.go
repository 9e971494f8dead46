// Package gateway is medprov's HTTP front door: a Gin server for device
// ingest, consent management, research access and audit.
//
// The gateway is not trusted for authenticity. Device readings and actor
// actions arrive as signed envelopes that the chaincode verifies against
// keys on the ledger; the gateway checks them too (to refuse early and to
// guard its reads) but the ledger is the authority. What the gateway is
// trusted with is confidentiality: it seals readings before they reach the
// blob store and releases plaintext to a researcher (or to a patient, its
// own readings) only after the ledger has committed the access event that
// records the release.
//
// Every API route (/v1, /healthz, /readyz, /metrics, /openapi.yaml) answers
// JSON or its declared media type; the web portal's pages (package web) are
// mounted on the same engine at / (portal sessions: session.go), and the
// FHIR R4 views of the same reads at /fhir/R4 (fhir.go: behind the same
// signedGET, answering OperationOutcome errors). Devices may also publish
// over MQTT (package mqtt), which calls the same submission path as
// POST /v1/readings (submit.go). Audit evidence for offline verification
// is exported at /v1/audit/trust and /v1/audit/bundle (evidence.go). Every
// API error is {"error":{"code","message"}} with
// a status chosen in one place (errors.go). The cause never goes to the
// client; the log gets its code and class (errKind) with the request ID,
// never its text, which may name pseudonymous IDs.
//
// The gateway holds its ground against strangers: a device's or actor's
// rate budget is charged only after its signature verifies, failed
// authentications are charged to the client address instead, every cache
// keyed by request input is bounded (Limits), the nonces of signed
// requests survive restarts (Config.NoncePath), and per-object reads
// answer the same 404 for "not yours" and "does not exist".
//
// People may sign actions and GETs with a passkey (WebAuthn) instead of a
// PEM key; the gateway checks the assertion against the credential and
// the org's relying party on the ledger before charging the actor's
// budget, and is the only checker of a passkey-signed GET, signature
// counter included (passkeys.go). People get their passkey from a
// one-time invitation of the org admin; the gateway verifies the
// registration ceremony and the ledger registers the actor with it
// (invites.go, attestation.go).
//
// Release re-checks evidence: a granted reading is released only if its
// ciphertext, decrypted payload and device signature match the ledger
// record (including deviceId, seq, type, unit and measuredAt, which the
// chaincode cannot check); otherwise it is withheld with a reason, and the
// withheld readings are recorded on the access event (RecordWithheld).
// Identity changes (lifecycle.go) drop cached keys at once here and, through
// the ledger's events, on every other gateway. A patient's erasure commits
// on the ledger before this gateway crypto-shreds the patient's keys
// (Shredder); every gateway shreds again on the PatientErased event, so an
// erasure whose shredding failed or was cut short by a crash is completed.
package gateway
