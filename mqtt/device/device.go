// Package device is a medprov device speaking MQTT 5 (eclipse/paho.golang)
// to a gateway's MQTT listener: it connects over TLS with a certificate
// for its device key, publishes signed readings at QoS 1 and receives
// their outcomes. "medprov device simulate --mqtt", "medprov bench --mqtt"
// and the tests use it.
package device

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net"
	"strconv"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"

	"github.com/medprov/medprov/mqtt"
	"github.com/medprov/medprov/wire"
)

// Certificate returns a self-signed certificate for a device: subject CN
// deviceID, key key, valid from an hour ago for ten years. The listener
// accepts it when key is the device's registered key.
func Certificate(deviceID string, key *ecdsa.PrivateKey) (tls.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("device certificate: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: deviceID},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.AddDate(10, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("device certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// Config configures Dial. Addr, ID and Certificate are required.
type Config struct {
	// Addr is the listener's host:port.
	Addr string
	// ID is the device id, the CN of Certificate.
	ID          string
	Certificate tls.Certificate
	// ClientID is the MQTT client identifier: ID (the default), or ID, '/'
	// and a suffix for another connection of the same device.
	ClientID string
	// RootCAs verifies the listener's certificate (nil: the system's);
	// Insecure skips that verification (a test or loopback listener with
	// a self-signed certificate).
	RootCAs  *x509.CertPool
	Insecure bool
	// Results, if set, subscribes to the device's results topic and
	// receives each result with the correlation data of the message it
	// answers. It is called on the client's reader: it MUST return
	// quickly and MUST NOT publish.
	Results func(r wire.ReadingReceipt, correlation []byte)
	// Timeout bounds connecting and each publish's wait for its PUBACK.
	// Default 60s.
	Timeout time.Duration
	// OnLost, if set, is called once if the connection is lost.
	OnLost func(error)
}

// Device is a connected device. Close it once.
type Device struct {
	cfg Config
	c   *paho.Client
	// up ends when the connection does: a publish waiting for its PUBACK
	// then fails at once (paho would wait for its packet timeout).
	up context.Context
}

// ErrConnectionLost reports a publish whose connection ended before its
// PUBACK arrived: the message may or may not have been taken; send it
// again on a new connection (a reading taken twice is recorded once).
var ErrConnectionLost = errors.New("mqtt: connection lost before the PUBACK")

// RefusedError is a connection or message the listener refused with an
// MQTT reason code; the message's results say why in medprov's terms.
type RefusedError struct {
	Code   byte
	Reason string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("refused by the listener: reason code 0x%02x %s", e.Code, e.Reason)
}

// Dial connects the device (MQTT 5, clean start) and, with cfg.Results,
// subscribes to its results. A refused connection fails with
// *RefusedError.
func Dial(ctx context.Context, cfg Config) (*Device, error) {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 60 * time.Second
	}
	host, _, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("mqtt address %q: %w", cfg.Addr, err)
	}
	tc := &tls.Config{
		Certificates: []tls.Certificate{cfg.Certificate}, RootCAs: cfg.RootCAs, ServerName: host,
		InsecureSkipVerify: cfg.Insecure, //nolint:gosec // asked for: a self-signed loopback listener
		MinVersion:         tls.VersionTLS12,
	}
	dctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	conn, err := (&tls.Dialer{Config: tc}).DialContext(dctx, "tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("mqtt dial: %w", err)
	}
	if cfg.ClientID == "" {
		cfg.ClientID = cfg.ID
	}
	pc := paho.ClientConfig{
		ClientID:      cfg.ClientID,
		Conn:          packets.NewThreadSafeConn(conn),
		PacketTimeout: cfg.Timeout,
	}
	if cfg.OnLost != nil {
		lost := make(chan struct{})
		report := func(err error) {
			select {
			case <-lost:
			default:
				close(lost)
				cfg.OnLost(err)
			}
		}
		pc.OnClientError = report
		pc.OnServerDisconnect = func(d *paho.Disconnect) { report(&RefusedError{Code: d.ReasonCode, Reason: reasonString(d)}) }
	}
	if cfg.Results != nil {
		pc.OnPublishReceived = []func(paho.PublishReceived) (bool, error){func(p paho.PublishReceived) (bool, error) {
			var r wire.ReadingReceipt
			if err := json.Unmarshal(p.Packet.Payload, &r); err != nil {
				return false, fmt.Errorf("undecodable result: %w", err)
			}
			var corr []byte
			if p.Packet.Properties != nil {
				corr = p.Packet.Properties.CorrelationData
			}
			cfg.Results(r, corr)
			return true, nil
		}}
	}
	c := paho.NewClient(pc)
	ca, err := c.Connect(dctx, &paho.Connect{ClientID: cfg.ClientID, KeepAlive: 30, CleanStart: true})
	if err != nil {
		conn.Close()
		if ca != nil && ca.ReasonCode >= 0x80 {
			return nil, &RefusedError{Code: ca.ReasonCode, Reason: connackReason(ca)}
		}
		return nil, fmt.Errorf("mqtt connect: %w", err)
	}
	up, down := context.WithCancel(context.Background())
	go func() { <-c.Done(); down() }()
	d := &Device{cfg: cfg, c: c, up: up}
	if cfg.Results != nil {
		if _, err := c.Subscribe(dctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: mqtt.ResultsTopic(cfg.ID), QoS: 1}}}); err != nil {
			return nil, errors.Join(fmt.Errorf("mqtt subscribe: %w", err), d.Close())
		}
	}
	return d, nil
}

// Publish sends body (a signed envelope or a batch body) to the device's
// readings topic at QoS 1 and returns once it is acknowledged: then its
// readings are durably queued or refused (see the results). A message the
// listener refused whole fails with *RefusedError. correlation, if set,
// comes back with the message's results.
func (d *Device) Publish(ctx context.Context, body, correlation []byte) error {
	p := &paho.Publish{QoS: 1, Topic: mqtt.ReadingsTopic(d.cfg.ID), Payload: body}
	if correlation != nil {
		p.Properties = &paho.PublishProperties{CorrelationData: correlation}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(d.up, cancel)()
	pr, err := d.c.Publish(ctx, p)
	if err != nil && d.up.Err() != nil {
		return fmt.Errorf("%w: %w", ErrConnectionLost, err)
	}
	if pr != nil && pr.ReasonCode >= 0x80 {
		reason := ""
		if pr.Properties != nil {
			reason = pr.Properties.ReasonString
		}
		return &RefusedError{Code: pr.ReasonCode, Reason: reason}
	}
	return err
}

// Done is closed when the connection has ended.
func (d *Device) Done() <-chan struct{} { return d.c.Done() }

// Close disconnects the device.
func (d *Device) Close() error {
	err := d.c.Disconnect(&paho.Disconnect{ReasonCode: 0})
	<-d.c.Done()
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

func connackReason(ca *paho.Connack) string {
	if ca.Properties != nil && ca.Properties.ReasonString != "" {
		return ca.Properties.ReasonString
	}
	return "connack " + strconv.Itoa(int(ca.ReasonCode))
}

func reasonString(d *paho.Disconnect) string {
	if d.Properties != nil {
		return d.Properties.ReasonString
	}
	return ""
}
