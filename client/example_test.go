package client_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/medprov/medprov/wire"

	"github.com/medprov/medprov/client"
	"github.com/medprov/medprov/envelope"
)

// A researcher's client: every action and GET is signed with the actor key.
func ExampleNew() {
	key, err := envelope.GenerateKey() // in practice: envelope.ParsePrivateKey(file bytes)
	if err != nil {
		log.Fatal(err)
	}
	c, err := client.New("http://127.0.0.1:8080", client.WithActor("researcher-1", key))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(c.ActorID(), c.BaseURL())
	// Output: researcher-1 http://127.0.0.1:8080
}

// A device builds, signs and submits a reading, waiting for its block.
func ExampleClient_SubmitReading() {
	ctx := context.Background()
	deviceKey, err := envelope.GenerateKey()
	if err != nil {
		log.Fatal(err)
	}
	p, err := client.NewReading("ecg-0001", 42, "heart_rate", "bpm", 72, time.Now())
	if err != nil {
		log.Fatal(err)
	}
	env, err := client.SignReading(deviceKey, p)
	if err != nil {
		log.Fatal(err)
	}
	c, err := client.New("http://127.0.0.1:8080")
	if err != nil {
		log.Fatal(err)
	}
	r, err := c.SubmitReading(ctx, env, client.WaitForCommit())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(r.ReadingID, r.Status, r.TxID, r.Block)
}

// A researcher requests data, tells a denial from other failures and
// verifies every released reading locally.
func ExampleClient_RequestAccess() {
	ctx := context.Background()
	key, err := envelope.GenerateKey()
	if err != nil {
		log.Fatal(err)
	}
	c, err := client.New("http://127.0.0.1:8080", client.WithActor("researcher-1", key))
	if err != nil {
		log.Fatal(err)
	}
	g, err := c.RequestAccess(ctx, client.AccessRequest{
		PatientID: "patient-7", Purpose: "cardio.study", DataTypes: []string{"heart_rate"},
		From: time.Now().Add(-24 * time.Hour), To: time.Now(),
	})
	if id, denied := client.IsDenied(err); denied {
		fmt.Println("denied, recorded as", id)
		return
	}
	if err != nil {
		log.Fatal(err)
	}
	devicePub := &key.PublicKey // in practice: the device's registered key
	for _, r := range g.Readings {
		v, err := client.VerifyReleasedReading(r, devicePub, nil)
		fmt.Println(r.ReadingID, v.OK, err)
	}
}

// A regulator pages through the audit trail of one patient.
func ExampleClient_AuditEvents() {
	ctx := context.Background()
	key, err := envelope.GenerateKey()
	if err != nil {
		log.Fatal(err)
	}
	c, err := client.New("http://127.0.0.1:8080", client.WithActor("regulator-1", key))
	if err != nil {
		log.Fatal(err)
	}
	page := client.PageRequest{PageSize: 100}
	for {
		p, err := c.AuditEvents(ctx, client.EventFilter{PatientID: "patient-7"}, page)
		if err != nil {
			log.Fatal(err)
		}
		for _, e := range p.Items {
			fmt.Println(e.TxTime, e.Type, e.ActorID, e.Decision)
		}
		if p.Bookmark == "" {
			return
		}
		page.Bookmark = p.Bookmark
	}
}

// An operator pages through its devices and reads each one's statistics.
// A page may be short, even empty, and still carry a bookmark: only an
// empty bookmark ends the list.
func ExampleClient_Devices() {
	ctx := context.Background()
	key, err := envelope.GenerateKey()
	if err != nil {
		log.Fatal(err)
	}
	c, err := client.New("http://127.0.0.1:8080", client.WithActor("operator-1", key))
	if err != nil {
		log.Fatal(err)
	}
	page := client.PageRequest{PageSize: 100}
	for {
		p, err := c.Devices(ctx, client.DeviceFilter{}, page) // an operator's own devices
		if err != nil {
			log.Fatal(err)
		}
		for _, d := range p.Items {
			detail, err := c.Device(ctx, d.ID)
			if err != nil {
				log.Fatal(err)
			}
			fmt.Println(d.ID, d.Status, detail.Stats.Readings, detail.Stats.ReadingsCapped)
		}
		if p.Bookmark == "" {
			return
		}
		page.Bookmark = p.Bookmark
	}
}

// Verification needs only the released bytes, the ledger's hash and the
// device's public key.
func ExampleVerifyReleasedReading() {
	deviceKey, err := envelope.GenerateKey()
	if err != nil {
		log.Fatal(err)
	}
	p, err := client.NewReading("ecg-0001", 1, "heart_rate", "bpm", 72, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	if err != nil {
		log.Fatal(err)
	}
	env, err := client.SignReading(deviceKey, p)
	if err != nil {
		log.Fatal(err)
	}
	sum := sha256.Sum256(env.Payload)
	r := wire.ReleasedReading{ReadingID: "ecg-0001:1", Payload: env.Payload, Signature: env.Signature, DataHash: hex.EncodeToString(sum[:])}

	v, err := client.VerifyReleasedReading(r, &deviceKey.PublicKey, nil)
	fmt.Println(v.OK, err)

	r.Payload[len(r.Payload)-2] ^= 1 // tamper with one byte
	v, err = client.VerifyReleasedReading(r, &deviceKey.PublicKey, nil)
	fmt.Println(v.OK, errors.Is(err, client.ErrHashMismatch))
	// Output:
	// true <nil>
	// false true
}

// A signed GET carries an http.get action for the exact path and query.
func ExampleSignedGetHeader() {
	key, err := envelope.GenerateKey()
	if err != nil {
		log.Fatal(err)
	}
	h, err := client.SignedGetHeader(key, "regulator-1", "/v1/audit/events?patientId=patient-7", time.Now())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(wire.SignatureHeader, len(h) > 0)
	// Output: X-Medprov-Signature true
}
