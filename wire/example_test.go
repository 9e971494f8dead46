package wire_test

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/medprov/medprov/wire"
)

// A device's reading payload marshals in the wire order; its ledger id is
// "<deviceId>:<seq>".
func ExampleReadingPayload() {
	p := wire.ReadingPayload{DeviceID: "monitor-7", Seq: 1, Type: "heart_rate", Unit: "bpm",
		Value: json.RawMessage(`72`), MeasuredAt: "2026-12-01T10:00:00Z", Nonce: "q83vEjRWeJq83vEjRWeJqw=="}
	b, err := json.Marshal(p)
	if err != nil {
		panic(err)
	}
	fmt.Println(string(b))
	fmt.Println(p.ReadingID())
	// Output:
	// {"deviceId":"monitor-7","seq":1,"type":"heart_rate","unit":"bpm","value":72,"measuredAt":"2026-12-01T10:00:00Z","nonce":"q83vEjRWeJq83vEjRWeJqw=="}
	// monitor-7:1
}

// A refusal travels through Fabric's error text and comes back with its
// code, which fixes the HTTP status.
func ExampleParseError() {
	e, ok := wire.ParseError("chaincode response 500, [medprov:conflict] duplicate seq")
	fmt.Println(ok, e.Code, e.Status(), e.Message)
	// Output: true conflict 409 duplicate seq
}

// An actor action is its header plus the action's own fields.
func ExampleConsentGrantAction() {
	a := wire.ConsentGrantAction{
		ActionHeader: wire.ActionHeader{Action: wire.ActionConsentGrant, ActorID: "pat-1",
			IssuedAt: "2026-12-01T10:00:00Z", Nonce: "3f2b8c1e6a4d4e8f9b0a1c2d3e4f5a6b"},
		GranteeID: "res-1", Purpose: "study.cardio", DataTypes: []string{"heart_rate"},
		NotBefore: "2026-12-01T00:00:00Z", NotAfter: "2027-12-01T00:00:00Z",
	}
	b, err := json.Marshal(a)
	if err != nil {
		panic(err)
	}
	fmt.Println(string(b))
	// Output: {"action":"consent.grant","actorId":"pat-1","issuedAt":"2026-12-01T10:00:00Z","nonce":"3f2b8c1e6a4d4e8f9b0a1c2d3e4f5a6b","granteeId":"res-1","purpose":"study.cardio","dataTypes":["heart_rate"],"notBefore":"2026-12-01T00:00:00Z","notAfter":"2027-12-01T00:00:00Z"}
}

// DecodeStrict refuses a payload that two JSON readers would read
// differently: encoding/json alone would take "TYPE" for "type".
func ExampleDecodeStrict() {
	signed := []byte(`{"deviceId":"monitor-7","seq":1,"type":"heart_rate","unit":"bpm","value":72,` +
		`"measuredAt":"2026-12-01T10:00:00Z","nonce":"q83vEjRWeJq83vEjRWeJqw==","TYPE":"hiv_status"}`)
	var p wire.ReadingPayload
	err := wire.DecodeStrict(signed, &p)
	fmt.Println(errors.Is(err, wire.ErrFoldedMember))
	fmt.Println(wire.JSONProblem(err))
	// Output:
	// true
	// member name differs from a field name in case ("type") at offset 147
}
