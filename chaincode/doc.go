// Package chaincode is the medprov smart contract: actors, devices, signed
// readings, patient consent and access decisions for medical IoT data, with
// an audit trail of every change. NewChaincode builds it for Hyperledger
// Fabric (contract-api v2); the same chaincode runs in-process on the
// embedded ledger (ledger/embedded).
//
// # Interface
//
// Transactions and queries are methods of Contract; all arguments are
// strings. Submit: RegisterActor, RegisterDevice, RevokeDevice,
// RecordReadings, GrantConsent, RevokeConsent, RequestAccess, the
// identity lifecycle RevokeActor, RevokeOrgActor, RotateActorKey,
// ErasePatient, RecordWithheld, the passkeys' SetRelyingParty and
// RegisterPasskey, and RequestAccessByRead (a signed FHIR Observation read
// as the access request). Evaluate:
// GetActor, GetDevice, GetReading, GetConsent, GetAccessEvent, ListReadings,
// ListConsents, GetAccessLog, ListEvents, GetProvenance, GetRelyingParty,
// GetPasskey, ListPasskeys, the registries' ListDevices, ListActors and
// GetDeviceStats, and GetReadingByHash. Every refusal is an
// *Error whose text "[medprov:<code>] <message>" survives Fabric's wrapping;
// ParseError recovers it. Other errors are failures (state access), not
// decisions about the input.
//
// # Who may do what
//
// An org admin is a creator whose certificate carries OU "admin" (Fabric
// NodeOUs; the embedded ledger's local MSP issues the same). Only an admin
// may register actors; the actor's org is the creator's MSP ID.
//
// Every other change is a signed action: an envelope (package envelope)
// whose payload names action, actorId, issuedAt and nonce. The chaincode
// never trusts an id it has not authenticated: it loads actorId's key from
// the ledger, verifies the signature, requires |issuedAt - tx time| <= 5
// minutes, an active actor with the action's role, and a nonce that actor
// never used (UsedNonce keys are kept forever). Unknown payload fields are
// refused. Nonces are 16..128 characters of the base64, base64url or hex
// alphabets (they become key attributes). Consent is granted and revoked by
// the patient themself (consent.grant may carry a patientId, which must then
// be the signer); devices are registered by an operator and revoked only by
// that operator; access is requested by a researcher, or by a patient for
// its own readings, which needs no consent.
//
// A public key may belong to one actor, device or passkey only (the
// publicKey index): a shared key would let one holder sign as the other,
// and a passkey's key never verifies a plain envelope.
//
// # Passkeys
//
// People may sign with a passkey (WebAuthn, ES256) instead of a PEM key:
// the envelope carries {"payload","webauthn"} (envelope.ParseSigned) and
// authentication checks, besides the rules above, that the assertion names
// a passkey registered to actorId, that its clientDataJSON (strictly
// decoded) has type webauthn.get, challenge base64url(SHA-256(payload)) and
// an origin the ledger lists for the actor's org, that authenticatorData's
// rpIdHash is SHA-256 of the org's rpId (the one the passkey was
// registered under) with the UP and UV flags set, that the ES256 signature
// verifies over authenticatorData || SHA-256(clientDataJSON), and that the
// signature counter advanced when it or the stored one is non-zero (the
// new value is stored). A malformed assertion is invalid; every other
// failure is unauthenticated. An org admin sets the org's relying party
// (SetRelyingParty: rpId and origin allowlist, per MSP ID) and registers
// passkeys, either for an existing actor (RegisterPasskey; the actor then
// signs with either credential) or as a new actor's only credential
// (RegisterActor with "passkey" instead of "publicKey").
//
// # Identity lifecycle
//
// An actor is revoked by a signed actor.revoke of a regulator or of itself
// (RevokeActor), or by its org's admin identity (RevokeOrgActor); from then
// on authentication refuses its key. An actor replaces its key with a
// signed actor.rotate (RotateActorKey, signed with the current key); the
// old key's publicKey entry becomes "retired:actor:<id>", so it is never
// accepted or registered again. A patient erases its data with a signed
// patient.erase (ErasePatient): an Erasure record, erasedTx on its actor
// record and a PatientErased event on which gateways crypto-shred its keys.
// Afterwards access requests for the patient are denied (patient_erased),
// and its consent grants, device registrations and readings are refused;
// what is on the ledger stays as evidence. RecordWithheld lets the gateway
// record, on a granted access event, which readings it withheld and why
// (e.g. evidence_mismatch when the decrypted payload does not match the
// record). Reasons are lower-case tokens, never free text. History is kept:
// revocation, rotation and erasure only add fields to records, and the
// earlier versions stay in the key history.
//
// Readings need no actor: anyone in the org may submit a batch (in practice
// the gateway), because each item's authenticity is the device's signature
// over dataHash, verified with the registered key of an active device.
//
// # What the chaincode can and cannot verify
//
// The chaincode sees dataHash (SHA-256 of the payload the device signed) and
// the device's signature over it, never the payload or the ciphertext. So it
// proves that a registered, active device signed that hash, and that
// (deviceId, seq) and dataHash are each recorded once. It cannot check that
// the metadata beside the hash (seq, type, unit, measuredAt, cid,
// cipherHash, size) matches the signed payload or the stored ciphertext:
// the gateway claims them. They are bound to the signed payload only by the
// regulator's verify step off-chain, which re-fetches the ciphertext,
// decrypts it, recomputes both hashes and compares payload fields with the
// record. Likewise measuredAt is the device's clock, not checked against the
// transaction time. Reading checks run in the order shape, device (unknown
// or revoked: forbidden), signature, then duplicates, so an identical retry
// of a reading whose device was revoked since is refused, not "exists".
//
// # Determinism
//
// Every endorser computes the same result from the same state and proposal:
// time comes only from the transaction timestamp (GetTxTimestamp), ids from
// the transaction id (consent "cns-" and access "acc-" plus 24 hex digits),
// no randomness, and no output or write order follows map iteration (maps
// are only looked up; anything emitted from them is sorted first). Queries
// order by key or by explicit sort keys with an id tie-break.
//
// # Keys
//
// All keys are composite keys. Records hold JSON with a docType; index keys
// hold the single byte 0 (an empty value is a delete on Fabric).
//
//	actor            [actorId]                                     Actor
//	device           [deviceId]                                    Device
//	reading          [deviceId, seq (20 digits)]                   Reading
//	readingHash      [dataHash]                                    reading id
//	publicKey        [hex SHA-256 of PKIX DER]                     "actor:<id>" | "device:<id>" | "passkey:<actorId>"
//	passkey          [credentialId (base64url)]                    Passkey
//	passkeyByActor   [actorId, credentialId]
//	relyingParty     [mspId]                                       RelyingParty
//	readingByPatient [patientId, type, YYYY-MM, measuredAt, readingId]
//	readingMonth     [patientId, type, YYYY-MM]                    month marker
//	consent          [consentId]                                   Consent
//	consentByPatient [patientId, granteeId, consentId]
//	nonce            [actorId, nonce]                              tx id that used it
//	access           [accessId]                                    AccessEvent
//	erasure          [patientId]                                   Erasure
//	accessByPatient  [patientId, YYYY-MM, txTime, accessId]
//	accessMonth      [patientId, YYYY-MM]                          month marker
//	accessByReading  [readingId, accessId]
//	audit            [txId]                                        AuditEvent
//	auditBy          [dimension, value, YYYY-MM, txTime, txId]     dimension: all (value "*"), patient, actor, type
//	auditMonth       [dimension, value, YYYY-MM]                   month marker
//
// Times in keys (and txTime, registeredAt, grantedAt fields) are fixed-width
// UTC, 2006-01-02T15:04:05.000000000Z, so key order is time order.
// Time-bounded queries visit only months that have a marker, then bound by
// the time attribute. Markers are blind writes (never read in the writing
// transaction), and there is no per-device or per-patient counter, so
// concurrent batches, even of one device, never conflict on a key.
// RequestAccess reads the patient's reading index, so a batch for that
// patient committed in the same block invalidates it (phantom read) and the
// client retries.
//
// Fabric pagination is evaluate-only, so paged queries do their own:
// a bookmark is the base64url of the last returned index key, checked to
// lie under the query's own prefix; a page with no bookmark is the last.
// RequestAccess's cursor works the same way inside a submit transaction.
// The registry queries (ListDevices, ListActors, GetDeviceStats) are
// evaluate-only and scan records that have no index for their filters
// (devices by operator or patient, actors by role, readings by device
// count), so they do use Fabric's paginated reads, in bounded chunks:
// listings examine at most MaxRegistryScan records per call (a page may be
// short and still carry a bookmark) and counts stop at MaxDeviceStatsScan.
// They add no keys, so they work on ledgers written before them.
//
// # Audit and events
//
// Every state-changing transaction writes one AuditEvent (id = tx id) and
// emits exactly one chaincode event. A RecordReadings batch that records
// nothing (all items exist or are rejected) writes no audit event but still
// emits ReadingsRecorded with no ids. AuditEvent.actorId is the signing
// actor, or "org:<MSP ID>" for actor and passkey registration, the
// relying party's settings, admin revocation, reading batches and
// withheld readings. An event's payload is the record the transaction
// wrote (Actor, Device, Consent, AccessEvent, Erasure, Passkey,
// RelyingParty), except ReadingsRecorded ({"txId","readingIds"}). A
// passkey's counter update is part of the action it authenticated and
// emits nothing of its own.
//
// # Performance
//
// Per reading, RecordReadings does one ECDSA verification, two state reads
// (reading, readingHash) and three writes (reading, readingHash,
// readingByPatient); device records, keys and their patients' erasure
// markers are read once per batch.
// Its argument and result are JSON strings, not typed values, so
// contract-api does not validate them against their JSON schema
// (gojsonschema). Measured with BenchmarkRecordReadings100 and
// BenchmarkRecordReadings100TypedResult under a CPU profile: signature
// verification is about 80% of RecordReadings' CPU; schema validation of a
// typed argument and result would add about 16% more. It does not dominate,
// but strings cost nothing (the wire bytes are the same JSON), so the hot
// path keeps them. Queries return typed values.
package chaincode
