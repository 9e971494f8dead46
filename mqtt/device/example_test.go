package device_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"time"

	"github.com/medprov/medprov/client"
	"github.com/medprov/medprov/envelope"
	"github.com/medprov/medprov/mqtt/device"
	"github.com/medprov/medprov/wire"
)

// A device connects with a certificate for its registered key, publishes a
// signed reading at QoS 1 (the PUBACK means it is durably queued) and
// receives its outcomes: queued, then recorded.
func ExampleDial() {
	ctx := context.Background()
	key, err := envelope.GenerateKey() // in practice, the key registered for monitor-7
	if err != nil {
		log.Fatal(err)
	}
	cert, err := device.Certificate("monitor-7", key)
	if err != nil {
		log.Fatal(err)
	}
	d, err := device.Dial(ctx, device.Config{
		Addr: "gateway.hospital.example:8883", ID: "monitor-7", Certificate: cert,
		Results: func(r wire.ReadingReceipt, _ []byte) { fmt.Println(r.ReadingID, r.Status) },
	})
	if err != nil {
		log.Fatal(err)
	}
	defer d.Close()
	p, err := client.NewReading("monitor-7", 1, "heart_rate", "bpm", 72, time.Now())
	if err != nil {
		log.Fatal(err)
	}
	env, err := client.SignReading(key, p)
	if err != nil {
		log.Fatal(err)
	}
	body, err := json.Marshal(env)
	if err != nil {
		log.Fatal(err)
	}
	if err := d.Publish(ctx, body, nil); err != nil {
		log.Fatal(err) // *device.RefusedError: refused, see the results; else resend on a new connection
	}
}
