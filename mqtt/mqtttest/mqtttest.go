// Package mqtttest holds what the MQTT listener's tests share: loopback
// addresses below the ephemeral port range, a server certificate, and a
// bare MQTT 3.1.1 client (paho.golang speaks MQTT 5 only) that can also
// send what a well-behaved client would not, such as retained messages.
package mqtttest

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/stretchr/testify/require"
)

// handedOut holds the ports FreeAddr returned in this process, which it
// never returns again: an address handed out may not be bound yet.
var handedOut = struct {
	sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

// FreeAddr returns a loopback address whose port, below 32768 (where
// Linux hands out outgoing ports), is free right now and was not returned
// before in this process.
func FreeAddr(tb testing.TB) string {
	tb.Helper()
	handedOut.Lock()
	defer handedOut.Unlock()
	start := 27200 + mrand.IntN(4000)
	for p := start; p < 32000; p++ {
		if handedOut.ports[p] {
			continue
		}
		addr := "127.0.0.1:" + strconv.Itoa(p)
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		require.NoError(tb, ln.Close())
		handedOut.ports[p] = true
		return addr
	}
	require.FailNow(tb, "no free loopback port between 27200 and 32000")
	return ""
}

// Server is a self-signed server certificate for 127.0.0.1 and
// localhost, written to CertFile and KeyFile; Pool trusts it.
type Server struct {
	CertFile, KeyFile string
	Pool              *x509.CertPool
	TLS               *tls.Config
}

// ServerCert makes a Server certificate in dir.
func ServerCert(tb testing.TB, dir string) Server {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(tb, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "medprov test MQTT listener"},
		NotBefore:    time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:    []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(tb, err)
	kder, err := x509.MarshalECPrivateKey(key)
	require.NoError(tb, err)
	s := Server{CertFile: filepath.Join(dir, "mqtt-server.pem"), KeyFile: filepath.Join(dir, "mqtt-server.key")}
	require.NoError(tb, os.WriteFile(s.CertFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	require.NoError(tb, os.WriteFile(s.KeyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600))
	cert, err := x509.ParseCertificate(der)
	require.NoError(tb, err)
	s.Pool = x509.NewCertPool()
	s.Pool.AddCert(cert)
	s.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, MinVersion: tls.VersionTLS12}
	return s
}

// V3 is a bare MQTT 3.1.1 client over TLS, for one test goroutine.
type V3 struct {
	conn net.Conn
	r    *bufio.Reader
	next uint16
	// Received holds PUBLISH packets that arrived while waiting for
	// another packet.
	Received []packets.Packet
}

// DialV3 opens a TLS connection presenting cert (none if cert is nil)
// and trusting pool. It fails when the handshake does.
func DialV3(tb testing.TB, addr string, cert *tls.Certificate, pool *x509.CertPool) (*V3, error) {
	tb.Helper()
	tc := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
	if cert != nil {
		tc.Certificates = []tls.Certificate{*cert}
	}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, tc)
	if err != nil {
		return nil, err
	}
	tb.Cleanup(func() { conn.Close() })
	return &V3{conn: conn, r: bufio.NewReader(conn), next: 1}, nil
}

// Connect sends CONNECT (clean session, keepalive 30s) with clientID,
// changed by edit if set (a password, a will), and returns the CONNACK's
// return code (0: accepted; 0xff: the listener hung up without one).
func (c *V3) Connect(tb testing.TB, clientID string, edit func(*packets.ConnectParams)) byte {
	tb.Helper()
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: 4,
		Connect: packets.ConnectParams{ProtocolName: []byte("MQTT"), Clean: true, Keepalive: 30, ClientIdentifier: clientID}}
	if edit != nil {
		edit(&pk.Connect)
	}
	if c.send(tb, pk) != nil {
		return 0xff // the listener hung up (a refused handshake)
	}
	ack, err := c.Read(10 * time.Second)
	if err != nil {
		return 0xff // the listener hung up without a CONNACK
	}
	require.Equal(tb, packets.Connack, ack.FixedHeader.Type, "the answer to CONNECT")
	return ack.ReasonCode
}

// Publish sends a PUBLISH and, for QoS 1, waits for its PUBACK; it
// reports false if the connection ended first.
func (c *V3) Publish(tb testing.TB, topic string, payload []byte, qos byte, retain bool) bool {
	tb.Helper()
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos, Retain: retain}, ProtocolVersion: 4,
		TopicName: topic, Payload: payload}
	if qos > 0 {
		pk.PacketID = c.id()
	}
	c.write(tb, pk)
	if qos == 0 {
		return true
	}
	return c.await(tb, packets.Puback, pk.PacketID) != nil
}

// Subscribe subscribes to filter at QoS 1 and returns the SUBACK's code
// (0x80: refused); 0xff if the connection ended first.
func (c *V3) Subscribe(tb testing.TB, filter string) byte {
	tb.Helper()
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, ProtocolVersion: 4,
		PacketID: c.id(), Filters: packets.Subscriptions{{Filter: filter, Qos: 1}}}
	c.write(tb, pk)
	ack := c.await(tb, packets.Suback, pk.PacketID)
	if ack == nil || len(ack.ReasonCodes) != 1 {
		return 0xff
	}
	return ack.ReasonCodes[0]
}

// NextPublish returns the next PUBLISH received (acknowledging it at QoS
// 1), waiting up to d.
func (c *V3) NextPublish(tb testing.TB, d time.Duration) (packets.Packet, error) {
	tb.Helper()
	if len(c.Received) > 0 {
		pk := c.Received[0]
		c.Received = c.Received[1:]
		return pk, nil
	}
	for {
		pk, err := c.Read(d)
		if err != nil {
			return packets.Packet{}, err
		}
		if pk.FixedHeader.Type == packets.Publish {
			return pk, nil
		}
	}
}

// Read reads the next packet, waiting up to d; it acknowledges a QoS 1
// PUBLISH.
func (c *V3) Read(d time.Duration) (packets.Packet, error) {
	if err := c.conn.SetReadDeadline(time.Now().Add(d)); err != nil {
		return packets.Packet{}, err
	}
	hb, err := c.r.ReadByte()
	if err != nil {
		return packets.Packet{}, err
	}
	pk := packets.Packet{ProtocolVersion: 4}
	if err := pk.FixedHeader.Decode(hb); err != nil {
		return pk, err
	}
	n, _, err := packets.DecodeLength(c.r)
	if err != nil {
		return pk, err
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(c.r, buf); err != nil {
		return pk, err
	}
	switch pk.FixedHeader.Type {
	case packets.Connack:
		err = pk.ConnackDecode(buf)
	case packets.Puback:
		err = pk.PubackDecode(buf)
	case packets.Suback:
		err = pk.SubackDecode(buf)
	case packets.Publish:
		if err = pk.PublishDecode(buf); err == nil && pk.FixedHeader.Qos == 1 {
			ack := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, ProtocolVersion: 4, PacketID: pk.PacketID}
			var b bytes.Buffer
			if err = ack.PubackEncode(&b); err == nil {
				_, err = c.conn.Write(b.Bytes())
			}
		}
	case packets.Disconnect, packets.Pingresp:
	default:
		err = fmt.Errorf("unexpected packet type %d", pk.FixedHeader.Type)
	}
	return pk, err
}

// await reads until the ack of type typ for id, keeping PUBLISHes; nil if
// the connection ended first.
func (c *V3) await(tb testing.TB, typ byte, id uint16) *packets.Packet {
	tb.Helper()
	for {
		pk, err := c.Read(10 * time.Second)
		if err != nil {
			var ne net.Error
			require.False(tb, errors.As(err, &ne) && ne.Timeout(), "no answer within 10s")
			return nil
		}
		switch {
		case pk.FixedHeader.Type == packets.Publish:
			c.Received = append(c.Received, pk)
		case pk.FixedHeader.Type == typ && pk.PacketID == id:
			return &pk
		}
	}
}

func (c *V3) id() uint16 {
	id := c.next
	c.next++
	return id
}

func (c *V3) write(tb testing.TB, pk packets.Packet) {
	tb.Helper()
	require.NoError(tb, c.send(tb, pk))
}

// send encodes and writes pk, failing only if the connection does.
func (c *V3) send(tb testing.TB, pk packets.Packet) error {
	tb.Helper()
	var b bytes.Buffer
	var err error
	switch pk.FixedHeader.Type {
	case packets.Connect:
		err = pk.ConnectEncode(&b)
	case packets.Publish:
		err = pk.PublishEncode(&b)
	case packets.Subscribe:
		err = pk.SubscribeEncode(&b)
	}
	require.NoError(tb, err)
	_, err = c.conn.Write(b.Bytes())
	return err
}
