package gateway_test

import (
	"encoding/base64"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/medprov/medprov/client"
	"github.com/medprov/medprov/internal/testkit"
	"github.com/medprov/medprov/wire"
)

// TestSignedGETNoncesFollowTheActionNonceRules: a correctly signed GET whose
// nonce is too short or outside the nonce alphabet is refused like a forged
// one, so a weak client cannot make replays likely.
func TestSignedGETNoncesFollowTheActionNonceRules(t *testing.T) {
	s := newServer(t)
	key := register(t, s, "reg", wire.RoleRegulator)
	const path = "/v1/audit/events"
	tests := []struct {
		name  string
		nonce string
		want  int
	}{
		{"a one-character nonce is refused", "x", http.StatusUnauthorized},
		{"a 15-character nonce is refused", "abcdefghijklmno", http.StatusUnauthorized},
		{"a nonce with spaces is refused", "nonce with spaces ok?", http.StatusUnauthorized},
		{"a 16-byte base64 nonce is accepted", testkit.Nonce(t), http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := wire.HTTPGetAction{ActionHeader: wire.ActionHeader{Action: wire.ActionHTTPGet, ActorID: "reg",
				IssuedAt: time.Now().UTC().Format(time.RFC3339), Nonce: tt.nonce}, Method: http.MethodGet, Path: path}
			env, err := client.SignPayload(key, p)
			require.NoError(t, err)
			hdr := base64.StdEncoding.EncodeToString(testkit.MustJSON(t, env))
			rec := call(t, s, "192.0.2.7:1234", http.MethodGet, path, nil, map[string]string{wire.SignatureHeader: hdr})
			assert.Equal(t, tt.want, rec.Code, "body: %s", rec.Body)
		})
	}
}
