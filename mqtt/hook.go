package mqtt

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"strings"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/medprov/medprov/gateway"
	"github.com/medprov/medprov/wire"
)

// hook is the broker's policy: who connects, what they may touch, and
// what a reading message goes through.
type hook struct {
	mochi.HookBase
	l *Listener
}

func (h *hook) ID() string { return "medprov" }

func (h *hook) Provides(b byte) bool {
	return bytes.Contains([]byte{
		mochi.OnConnect, mochi.OnConnectAuthenticate, mochi.OnACLCheck, mochi.OnPublish,
	}, []byte{b})
}

// OnConnect authenticates the client (see authenticate) before the broker
// goes on, and answers a refusal with a CONNACK saying why.
func (h *hook) OnConnect(cl *mochi.Client, pk packets.Packet) error {
	if !h.l.enter() {
		return h.connack(cl, packets.ErrServerShuttingDown, packets.Err3ServerUnavailable)
	}
	defer h.l.calls.Done()
	v5, v3, reason := h.l.authenticate(cl, pk)
	if reason != "" {
		h.l.m.refuse(reason)
		return h.connack(cl, v5, v3)
	}
	h.l.authed.Store(cl, struct{}{})
	return nil
}

// connack refuses the connection with the reason code of the client's
// protocol version.
func (h *hook) connack(cl *mochi.Client, v5, v3 packets.Code) error {
	code := v5
	if cl.Properties.ProtocolVersion < 5 {
		code = v3
	}
	_ = h.l.srv.SendConnack(cl, code, false, nil) //nolint:errcheck // the connection is closed next either way
	return v5
}

// OnConnectAuthenticate admits exactly the clients OnConnect authenticated.
func (h *hook) OnConnectAuthenticate(cl *mochi.Client, _ packets.Packet) bool {
	_, ok := h.l.authed.LoadAndDelete(cl)
	return ok
}

// OnACLCheck lets a device subscribe only within its own tree. Publishing
// is let through to OnPublish, which refuses a wrong topic with a PUBACK
// and an error result instead of ending the connection.
func (h *hook) OnACLCheck(cl *mochi.Client, topic string, write bool) bool {
	if write {
		return true
	}
	if maySubscribe(deviceOf(cl), topic) {
		return true
	}
	h.l.m.refuse(reasonSubscribe)
	return false
}

// OnPublish takes a device's message in. It returns only once the
// readings are durably queued (or refused): the broker writes the PUBACK
// after it returns. It answers CodeSuccessIgnore, so that the broker
// acknowledges the message but neither retains nor forwards it; for an
// MQTT 5 QoS 1 message refused whole, it writes the PUBACK with its reason
// code itself and answers ErrRejectPacket, so that the broker writes none
// (and logs no packet: its payload may be health data).
func (h *hook) OnPublish(cl *mochi.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline {
		return pk, nil // a result the listener publishes
	}
	start := time.Now()
	h.l.m.message(pk.FixedHeader.Qos)
	code := wire.CodeUnavailable // shutting down
	if h.l.enter() {
		code = h.l.take(cl, pk)
		h.l.calls.Done()
	}
	if pk.FixedHeader.Qos > 0 {
		h.l.m.puback.Observe(time.Since(start).Seconds())
	}
	return pk, h.l.ack(cl, pk, code)
}

// authenticate checks a CONNECT (see the package doc). It returns the
// refusal's reason codes and metrics reason, or reason "" to admit.
func (l *Listener) authenticate(cl *mochi.Client, pk packets.Packet) (v5, v3 packets.Code, reason string) {
	notAuthorized := packets.ErrNotAuthorized
	tc, ok := cl.Net.Conn.(*tls.Conn)
	if !ok {
		return notAuthorized, packets.Err3NotAuthorized, reasonNoCertificate
	}
	certs := tc.ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return notAuthorized, packets.Err3NotAuthorized, reasonNoCertificate
	}
	device := certs[0].Subject.CommonName
	switch {
	case !clientOf(device, pk.Connect.ClientIdentifier):
		return packets.ErrClientIdentifierNotValid, packets.Err3ClientIdentifierNotValid, reasonClientID
	case pk.Connect.WillFlag:
		return notAuthorized, packets.Err3NotAuthorized, reasonWill
	case pk.Connect.PasswordFlag:
		return packets.ErrBadUsernameOrPassword, packets.Err3NotAuthorized, reasonPassword
	}
	ctx, cancel := context.WithTimeout(l.life, 10*time.Second)
	defer cancel()
	if err := l.cfg.Gateway.AuthenticateDevice(ctx, cl.Net.Remote, device, certs[0].PublicKey); err != nil {
		code := gateway.ClientError(err).Code
		switch code {
		case wire.CodeRateLimited:
			return packets.ErrConnectionRateExceeded, packets.Err3ServerUnavailable, "connect_" + string(code)
		case wire.CodeForbidden, wire.CodeUnauthenticated:
			return notAuthorized, packets.Err3NotAuthorized, "connect_" + string(code)
		default:
			l.cfg.Logger.Warn("mqtt: device authentication failed", "code", code)
			return packets.ErrServerUnavailable, packets.Err3ServerUnavailable, "connect_" + string(code)
		}
	}
	return packets.CodeSuccess, packets.CodeSuccess, ""
}

// take runs one message of cl through the gateway and publishes its
// results. It returns the code of the message's refusal, or "" when at
// least one of its readings is queued, exists or is recorded.
func (l *Listener) take(cl *mochi.Client, pk packets.Packet) wire.Code {
	device := deviceOf(cl)
	corr := pk.Properties.CorrelationData
	refuse := func(reason string, body wire.ErrorBody) wire.Code {
		l.m.refuse(reason)
		l.publish(device, corr, wire.ReadingReceipt{Status: wire.StatusRejected, Error: &body})
		return body.Code
	}
	switch {
	case pk.FixedHeader.Retain:
		return refuse(reasonRetained, wire.ErrorBody{Code: wire.CodeInvalid, Message: "retained messages are refused"})
	case pk.TopicName != ReadingsTopic(device):
		return refuse(reasonTopic, wire.ErrorBody{Code: wire.CodeForbidden, Message: "a device publishes only to " + ReadingsTopic(device)})
	}
	watch := l.subscribed(device)
	rc, err := l.cfg.Gateway.SubmitReadings(l.life, gateway.Submission{Body: pk.Payload, Peer: cl.Net.Remote, Device: device, Watch: watch})
	if err != nil {
		body := gateway.ClientError(err)
		if body.Code.Status() >= 500 && body.Code != wire.CodeUnavailable {
			l.cfg.Logger.Error("mqtt: taking a message in failed", "code", body.Code)
		}
		return refuse("message_"+string(body.Code), body)
	}
	var refused wire.Code = wire.CodeInvalid
	accepted := false
	for _, it := range rc.Items {
		if it.Error != nil {
			l.m.refuse("reading_" + string(it.Error.Code))
			refused = it.Error.Code
		} else {
			accepted = true
		}
	}
	l.publish(device, corr, rc.Items...)
	if watch && accepted {
		l.waiters.Add(1)
		go func() {
			defer l.waiters.Done()
			ctx, cancel := context.WithTimeout(l.outcomes, l.cfg.OutcomeWait)
			defer cancel()
			l.publish(device, corr, rc.Await(ctx)...)
		}()
	}
	if accepted {
		return ""
	}
	return refused
}

// subscribed reports whether any connection of device is subscribed to
// its results: only then are ledger outcomes awaited.
func (l *Listener) subscribed(device string) bool {
	subs := l.srv.Topics.Subscribers(ResultsTopic(device))
	return len(subs.Subscriptions) > 0
}

// deviceOf returns the device cl authenticated as: its certificate's CN
// ("" for the listener's own inline client).
func deviceOf(cl *mochi.Client) string {
	tc, ok := cl.Net.Conn.(*tls.Conn)
	if !ok {
		return ""
	}
	certs := tc.ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return ""
	}
	return certs[0].Subject.CommonName
}

// clientOf reports whether clientID is one a device may connect with: its
// id, or its id, '/' and a suffix of its choice (a second connection of the
// same device, e.g. a separate subscriber; device ids hold no '/'). So no
// device can take over another device's session.
func clientOf(device, clientID string) bool {
	suffix, ok := strings.CutPrefix(clientID, device)
	return ok && (suffix == "" || len(suffix) > 1 && suffix[0] == '/')
}

// ack is what OnPublish returns for a message refused with code ("" for
// none). An MQTT 5 QoS 1 refusal gets its PUBACK here, with the reason
// code of the refusal (see the package doc); everything else is
// acknowledged by the broker as a success (QoS 2: a plain PUBREC).
func (l *Listener) ack(cl *mochi.Client, pk packets.Packet, code wire.Code) error {
	if code == "" || cl.Properties.ProtocolVersion < 5 || pk.FixedHeader.Qos != 1 {
		return packets.CodeSuccessIgnore
	}
	reason := packets.ErrImplementationSpecificError
	switch code {
	case wire.CodeForbidden, wire.CodeUnauthenticated:
		reason = packets.ErrNotAuthorized
	case wire.CodeRateLimited, wire.CodeUnavailable:
		reason = packets.ErrQuotaExceeded
	case wire.CodeInvalid, wire.CodeTooLarge:
		reason = packets.ErrPayloadFormatInvalid
	case wire.CodeInternal:
		reason = packets.ErrUnspecifiedError
	}
	_ = cl.WritePacket(packets.Packet{ //nolint:errcheck // a lost connection ends the exchange either way
		FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: pk.PacketID,
		ReasonCode: reason.Code, Properties: packets.Properties{ReasonString: reason.Reason},
	})
	return packets.ErrRejectPacket
}

// publish sends receipts to the device's results topic, one message each,
// with the publisher's correlation data (MQTT 5).
func (l *Listener) publish(device string, corr []byte, items ...wire.ReadingReceipt) {
	topic := ResultsTopic(device)
	for _, it := range items {
		b, err := json.Marshal(it)
		if err != nil {
			l.cfg.Logger.Error("mqtt: encoding a result", "err", err)
			continue
		}
		out := packets.Packet{
			FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1},
			TopicName:   topic, Payload: b, PacketID: 1,
			Properties: packets.Properties{CorrelationData: corr, ContentType: "application/json"},
		}
		if err := l.srv.InjectPacket(l.results, out); err != nil {
			l.cfg.Logger.Warn("mqtt: publishing a result", "err", err)
		}
	}
}
