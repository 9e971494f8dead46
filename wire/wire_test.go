package wire_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/medprov/medprov/wire"
)

func TestIDGrammar(t *testing.T) {
	tests := []struct {
		name  string
		check func(string) bool
		in    string
		want  bool
	}{
		{"an id of letters, digits, dot, dash and underscore is valid", wire.ValidID, "Monitor_7.a-b", true},
		{"an id of 64 characters is valid", wire.ValidID, strings.Repeat("a", 64), true},
		{"an empty id is invalid", wire.ValidID, "", false},
		{"an id of 65 characters is invalid", wire.ValidID, strings.Repeat("a", 65), false},
		{"an id with a colon is invalid (it separates reading ids)", wire.ValidID, "dev:1", false},
		{"an id with a non-ASCII letter is invalid", wire.ValidID, "patiënt", false},
		{"an id starting with a digit is valid", wire.ValidID, "7-monitor", true},
		{"dots inside an id are allowed", wire.ValidID, "a..b", true},
		{"the id . is invalid", wire.ValidID, ".", false},
		{"the id .. is invalid", wire.ValidID, "..", false},
		{"the id ... is invalid", wire.ValidID, "...", false},
		{"an id of dashes and underscores only is invalid", wire.ValidID, "-_-", false},
		{"an id starting with a dot is invalid", wire.ValidID, ".hidden", false},
		{"an id starting with a dash is invalid (it reads as a flag)", wire.ValidID, "-rf", false},
		{"an id starting with an underscore is invalid", wire.ValidID, "_x", false},
		{"a lower-case token is valid", wire.ValidToken, "heart_rate", true},
		{"a token with upper case is invalid", wire.ValidToken, "Heart", false},
		{"a unit with a degree sign is valid", wire.ValidUnit, "°C", true},
		{"a unit with a control character is invalid", wire.ValidUnit, "mg\n", false},
		{"a unit of 33 bytes is invalid", wire.ValidUnit, strings.Repeat("x", 33), false},
		{"a lower-case SHA-256 hex digest is a hash", wire.ValidHash, strings.Repeat("ab", 32), true},
		{"an upper-case digest is not (one spelling per digest)", wire.ValidHash, strings.Repeat("AB", 32), false},
		{"a UUID is an action nonce", wire.ValidNonce, "3f2b8c1e-6a4d-4e8f-9b0a-1c2d3e4f5a6b", true},
		{"15 characters are too short for an action nonce", wire.ValidNonce, strings.Repeat("a", 15), false},
		{"base64 of 16 bytes is a reading nonce", wire.ValidReadingNonce, base64.StdEncoding.EncodeToString(make([]byte, 16)), true},
		{"base64 of 15 bytes is too short for a reading nonce", wire.ValidReadingNonce, base64.StdEncoding.EncodeToString(make([]byte, 15)), false},
		{"a CIDv1 in base32 is a CID", wire.ValidCID, "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku", true},
		{"a CID with a slash is not", wire.ValidCID, "bafy/../x", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.check(tt.in))
		})
	}
}

func TestReadingIDRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		id   string
		dev  string
		seq  uint64
		ok   bool
	}{
		{"a device and a seq split back", "monitor-7:42", "monitor-7", 42, true},
		{"seq 0 is a seq", "d:0", "d", 0, true},
		{"a leading zero is another spelling and refused", "d:042", "", 0, false},
		{"a missing seq is refused", "d:", "", 0, false},
		{"a missing colon is refused", "d42", "", 0, false},
		{"an invalid device id is refused", "a b:1", "", 0, false},
		{"a dot-only device id is refused", "..:1", "", 0, false},
		{"a seq beyond uint64 is refused", "d:18446744073709551616", "", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dev, seq, ok := wire.SplitReadingID(tt.id)
			require.Equal(t, tt.ok, ok)
			assert.Equal(t, tt.dev, dev)
			assert.Equal(t, tt.seq, seq)
			if ok {
				assert.Equal(t, tt.id, wire.ReadingID(dev, seq), "ReadingID must give back the same spelling")
			}
		})
	}
}

func TestParseReadingPayload(t *testing.T) {
	nonce := base64.StdEncoding.EncodeToString(make([]byte, 16))
	good := `{"deviceId":"m-7","seq":3,"type":"heart_rate","unit":"bpm","value":72,"measuredAt":"2026-12-01T10:00:00Z","nonce":"` + nonce + `"}`
	tests := []struct {
		name    string
		payload string
		wantErr string // "" when valid
	}{
		{"the wire example parses", good, ""},
		{"an array value is allowed", strings.Replace(good, `"value":72`, `"value":[1,2]`, 1), ""},
		{"a missing seq is refused, not read as 0", strings.Replace(good, `"seq":3,`, "", 1), "seq is required"},
		{"seq 0 is accepted", strings.Replace(good, `"seq":3`, `"seq":0`, 1), ""},
		{"a seq above 2^53-1 is refused", strings.Replace(good, `"seq":3`, `"seq":9007199254740992`, 1), "seq must be at most"},
		{"an unknown member is refused", strings.Replace(good, `{`, `{"extra":1,`, 1), "reading payload must be"},
		{"trailing data is refused", good + `{}`, "reading payload must be"},
		{"a string value is refused", strings.Replace(good, `"value":72`, `"value":"72"`, 1), "value must be a number"},
		{"a null value is refused", strings.Replace(good, `"value":72`, `"value":null`, 1), "value is required"},
		{"a short nonce is refused", strings.Replace(good, nonce, "AAAA", 1), "nonce must be base64"},
		{"a non-RFC 3339 time is refused", strings.Replace(good, "2026-12-01T10:00:00Z", "yesterday", 1), "measuredAt must be RFC 3339"},
		{"an upper-case type is refused", strings.Replace(good, "heart_rate", "HR", 1), "type must match"},
		{"a dot-only deviceId is refused", strings.Replace(good, `"m-7"`, `".."`, 1), "deviceId must match"},
		{"measuredAt in year 0001 is refused", strings.Replace(good, "2026-12-01T10:00:00Z", "0001-01-01T00:00:00Z", 1), "measuredAt must not be before 2000-01-01T00:00:00Z"},
		{"measuredAt of the Unix epoch is refused", strings.Replace(good, "2026-12-01T10:00:00Z", "1970-01-01T00:00:00Z", 1), "measuredAt must not be before"},
		{"measuredAt a second before 2000 is refused", strings.Replace(good, "2026-12-01T10:00:00Z", "1999-12-31T23:59:59.999Z", 1), "measuredAt must not be before"},
		{"measuredAt in 1999 in UTC is refused whatever its zone", strings.Replace(good, "2026-12-01T10:00:00Z", "2000-01-01T00:30:00+01:00", 1), "measuredAt must not be before"},
		{"measuredAt at the start of 2000 is accepted", strings.Replace(good, "2026-12-01T10:00:00Z", "2000-01-01T00:00:00Z", 1), ""},
		{"a second type in upper case is refused", strings.Replace(good, `}`, `,"TYPE":"hiv_status"}`, 1), "member name differs from a field name in case"},
		{"a second seq is refused", strings.Replace(good, `}`, `,"seq":1003}`, 1), "duplicate member name"},
		{"a lone surrogate is refused", strings.Replace(good, "bpm", `bpm\ud800`, 1), "invalid UTF-8"},
		{"invalid UTF-8 is refused", strings.Replace(good, "bpm", "bpm\xff", 1), "invalid UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, _, err := wire.ParseReadingPayload([]byte(tt.payload))
			if tt.wantErr == "" {
				require.NoError(t, err)
				assert.Equal(t, "m-7", p.DeviceID)
				return
			}
			var we *wire.Error
			require.ErrorAs(t, err, &we)
			assert.Equal(t, wire.CodeInvalid, we.Code)
			assert.Contains(t, we.Message, tt.wantErr)
		})
	}
}

func TestDecodeReadingInput(t *testing.T) {
	in := wire.ReadingInput{DeviceID: "d", Seq: 1, Type: "spo2", Unit: "%", MeasuredAt: "2026-12-01T10:00:00Z",
		DataHash: strings.Repeat("a", 64), Signature: "MEUC", CID: "bafkreiabc", CipherHash: strings.Repeat("b", 64), Size: 10}
	b, err := json.Marshal(in)
	require.NoError(t, err)
	got, _, err := wire.DecodeReadingInput(b)
	require.NoError(t, err)
	assert.Equal(t, in, got)
	assert.Equal(t, "d:1", got.ID())

	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	delete(m, "seq")
	b, err = json.Marshal(m)
	require.NoError(t, err)
	_, _, err = wire.DecodeReadingInput(b)
	var we *wire.Error
	require.ErrorAs(t, err, &we, "an item without seq must be refused, not recorded as seq 0")
	assert.Equal(t, wire.CodeInvalid, we.Code)
}

func TestDecodeReadingInputRefuses(t *testing.T) {
	good := wire.ReadingInput{DeviceID: "d", Seq: 1, Type: "spo2", Unit: "%", MeasuredAt: "2026-12-01T10:00:00Z",
		DataHash: strings.Repeat("a", 64), Signature: "MEUC", CID: "bafkreiabc", CipherHash: strings.Repeat("b", 64), Size: 10}
	raw, err := json.Marshal(good)
	require.NoError(t, err)
	year1 := good
	year1.MeasuredAt = "0001-01-01T00:00:00Z"
	dots := good
	dots.DeviceID = ".."
	tests := []struct {
		name    string
		item    any
		wantErr string
	}{
		{"measuredAt in year 0001 is refused", year1, "measuredAt must not be before 2000-01-01T00:00:00Z"},
		{"a dot-only deviceId is refused", dots, "deviceId must match"},
		{"a second dataHash is refused", strings.Replace(string(raw), `}`, `,"dataHash":"`+strings.Repeat("c", 64)+`"}`, 1), "duplicate member name"},
		{"a case-folded member is refused", strings.Replace(string(raw), `"cid"`, `"CID"`, 1), "member name differs from a field name in case"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, ok := tt.item.(string)
			in := []byte(b)
			if !ok {
				var err error
				in, err = json.Marshal(tt.item)
				require.NoError(t, err)
			}
			_, _, err := wire.DecodeReadingInput(in)
			var we *wire.Error
			require.ErrorAs(t, err, &we)
			assert.Equal(t, wire.CodeInvalid, we.Code)
			assert.Contains(t, we.Message, tt.wantErr)
		})
	}
}

func TestCodeStatus(t *testing.T) {
	tests := []struct {
		code wire.Code
		want int
	}{
		{wire.CodeInvalid, http.StatusBadRequest},
		{wire.CodeUnauthenticated, http.StatusUnauthorized},
		{wire.CodeForbidden, http.StatusForbidden},
		{wire.CodeNotFound, http.StatusNotFound},
		{wire.CodeMethodNotAllowed, http.StatusMethodNotAllowed},
		{wire.CodeConflict, http.StatusConflict},
		{wire.CodeTooLarge, http.StatusRequestEntityTooLarge},
		{wire.CodeRateLimited, http.StatusTooManyRequests},
		{wire.CodeInternal, http.StatusInternalServerError},
		{wire.CodeUnavailable, http.StatusServiceUnavailable},
		{wire.Code("made_up"), http.StatusInternalServerError},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s answers %d", tt.code, tt.want), func(t *testing.T) {
			assert.Equal(t, tt.want, tt.code.Status())
		})
	}
}

func TestParseError(t *testing.T) {
	tests := []struct {
		name     string
		msg      string
		ok       bool
		wantCode wire.Code
		wantMsg  string
	}{
		{"a bare refusal is recovered", "[medprov:forbidden] device revoked", true, wire.CodeForbidden, "device revoked"},
		{"a refusal wrapped by Fabric is recovered", "chaincode response 500, [medprov:forbidden] device d revoked", true, wire.CodeForbidden, "device d revoked"},
		{"the first known marker wins over an unknown one", "[medprov:bogus] x [medprov:conflict] duplicate seq", true, wire.CodeConflict, "duplicate seq"},
		{"a gateway-only code is not a chaincode refusal", "[medprov:unavailable] down", false, "", ""},
		{"a message without a marker is not a refusal", "endorsement failure", false, "", ""},
		{"an unterminated marker is not a refusal", "[medprov:forbidden", false, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, ok := wire.ParseError(tt.msg)
			require.Equal(t, tt.ok, ok)
			if ok {
				assert.Equal(t, tt.wantCode, e.Code)
				assert.Equal(t, tt.wantMsg, e.Message)
			}
		})
	}
	t.Run("an error's text parses back to itself", func(t *testing.T) {
		e := wire.Errorf(wire.CodeUnauthenticated, "bad signature for %s", "d-1")
		got, ok := wire.ParseError("wrapped: " + e.Error())
		require.True(t, ok)
		assert.Equal(t, e, got)
		assert.Equal(t, 401, got.Status())
	})
}

func TestDecodeStrict(t *testing.T) {
	var h wire.ActionHeader
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"a known object decodes", `{"action":"http.get","actorId":"a","issuedAt":"2026-12-01T10:00:00Z","nonce":"n"}`, true},
		{"an unknown member is refused", `{"action":"x","extra":true}`, false},
		{"trailing data is refused", `{"action":"x"} {}`, false},
		{"a wrong type is refused", `{"action":1}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := wire.DecodeStrict([]byte(tt.in), &h)
			if tt.ok {
				assert.NoError(t, err)
			} else {
				assert.Error(t, err)
				assert.NotContains(t, wire.JSONProblem(err), "true", "problems never echo input values")
			}
		})
	}
}
