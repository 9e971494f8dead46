package cli

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/medprov/medprov/mqtt/mqtttest"
)

func TestServeMQTTIsTLSOnly(t *testing.T) {
	dir := t.TempDir()
	srv := mqtttest.ServerCert(t, dir)
	tests := []struct {
		name    string
		o       serveOptions
		wantTLS bool
		usage   bool // a usage error
		fails   bool // another error
	}{
		{"without --mqtt-addr there is no listener", serveOptions{}, false, false, false},
		{"the MQTT certificate is loaded", serveOptions{mqttAddr: "127.0.0.1:8883", mqttTLSCert: srv.CertFile, mqttTLSKey: srv.KeyFile}, true, false, false},
		{"the HTTP certificate is the default", serveOptions{mqttAddr: "127.0.0.1:8883", tlsCert: srv.CertFile, tlsKey: srv.KeyFile}, true, false, false},
		{"no certificate is a usage error", serveOptions{mqttAddr: "127.0.0.1:8883"}, false, true, false},
		{"a certificate without its key is a usage error", serveOptions{mqttAddr: "127.0.0.1:8883", mqttTLSCert: srv.CertFile}, false, true, false},
		{"an unreadable certificate fails", serveOptions{mqttAddr: "127.0.0.1:8883", mqttTLSCert: filepath.Join(dir, "none.pem"), mqttTLSKey: srv.KeyFile}, false, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.o.mqttTLS()
			switch {
			case tt.usage:
				var ue usageError
				require.ErrorAs(t, err, &ue)
			case tt.fails:
				require.Error(t, err)
			default:
				require.NoError(t, err)
			}
			assert.Equal(t, tt.wantTLS, got != nil && len(got.Certificates) == 1)
		})
	}
}

func TestMQTTCAFile(t *testing.T) {
	dir := t.TempDir()
	srv := mqtttest.ServerCert(t, dir)
	notPEM := filepath.Join(dir, "not.pem")
	require.NoError(t, os.WriteFile(notPEM, []byte("hello"), 0o600))
	tests := []struct {
		name     string
		ca       string
		wantPool bool
		usage    bool
	}{
		{"no file: the system's roots", "", false, false},
		{"a PEM certificate", srv.CertFile, true, false},
		{"a file without PEM is a usage error", notPEM, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pool, err := (&mqttOptions{ca: tt.ca}).rootCAs()
			if tt.usage {
				var ue usageError
				require.ErrorAs(t, err, &ue)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.wantPool, pool != nil)
		})
	}
}
