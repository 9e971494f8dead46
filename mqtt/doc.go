// Package mqtt is medprov's MQTT front door for devices: an embedded MQTT
// 3.1.1 and 5 broker (mochi-mqtt) whose only business is to take signed
// readings into the same path as POST /v1/readings and to tell each device
// what became of them.
//
// # Identity
//
// The listener speaks TLS only and requires a client certificate;
// self-signed certificates are fine, because the ledger is the registry: a
// device connects when its certificate's subject CN is its deviceId, the
// certificate's public key is the device's registered key and the device
// is active on the ledger (Gateway.AuthenticateDevice; the TLS handshake
// has proved that the client holds the private key). The MQTT client
// identifier must be the deviceId, or the deviceId, '/' and a suffix (a
// second connection of the device, e.g. a separate subscriber), so no
// client can take over another device's session; the identity is the
// certificate's either way. There are no anonymous clients and no
// passwords (a CONNECT carrying a password is refused), and no will
// messages (a will would be published outside the checks below). Failed
// connections are charged to the peer address's budget of failed
// authentications, as failed HTTP requests are.
//
// A device revoked on the ledger is disconnected as soon as this gateway
// follows the DeviceRevoked event (Gateway.WatchRevocations; from any
// gateway), and its reconnects are refused. As a backstop, every connected
// device is authenticated again every Config.Recheck.
//
// # Topics
//
// A device publishes to medprov/v1/devices/{deviceId}/readings exactly
// the body of POST /v1/readings (one signed envelope) or of POST
// /v1/readings/batch, and may subscribe to
// medprov/v1/devices/{deviceId}/results (or to its own tree with + or #).
// Each reading's outcome is published there as a [wire.ReadingReceipt]:
// first queued (or exists, or rejected with its error), then, for a device
// with a connection subscribed when it published, recorded (with txId and
// block) or rejected once the ledger decided, within Config.OutcomeWait. A refusal of the
// whole message (malformed, too large, pushback, wrong topic) is one
// receipt without readingId. An MQTT 5 publisher's correlation data is
// echoed on its results. Publishing anywhere else, subscribing outside its
// own tree, shared subscriptions and retained messages are refused;
// readings are never forwarded to other clients.
//
// # Guarantees
//
// The broker calls the publish hook on the connection's reader before it
// writes the PUBACK (mochi's processPublish acknowledges only after
// OnPublish returns), and the hook returns only after
// Gateway.SubmitReadings has returned, which is after the readings are
// durably queued. So a PUBACK'd QoS 1 reading survives a crash of the
// gateway, and is recorded once: a device that resends it (no PUBACK seen)
// gets "exists". QoS 2 is treated the same (PUBREC after the queue). A
// message that is refused still completes its QoS flow, so the device
// does not resend it forever: with MQTT 5 the PUBACK carries a reason code
// (0x87 not authorized, 0x97 quota exceeded for rate limits and pushback,
// 0x99 payload format invalid, ...), with MQTT 3.1.1 it is a plain PUBACK,
// and in both cases the error is published as a result. Readings of one
// connection are taken one message at a time, in order. QoS 0 readings go
// the same path but without acknowledgement, so one lost on the way is
// lost. Results are best effort: they are not kept across restarts.
//
// Per-device rate limits, the peer's failure budget and ingest pushback
// apply exactly as for HTTP (results rate_limited and unavailable); the
// connection stays up. Oversized and malformed messages answer an error
// result; a packet larger than the broker's maximum packet size (the batch
// limit plus 64 KiB, announced to MQTT 5 clients) ends the connection.
package mqtt
