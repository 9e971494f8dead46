package client

import (
	"context"

	"github.com/medprov/medprov/wire"
)

// DeviceFilter selects devices; zero fields do not filter. The gateway
// fills in what the signer may see: an operator's OperatorID and a
// patient's PatientID default to itself and may name no one else.
type DeviceFilter struct {
	OperatorID string
	PatientID  string
}

// Devices returns one page of registered devices in id order (GET
// /v1/devices). Signed; the actor must be a regulator, or an operator or
// patient listing its own. A page may hold fewer devices than asked for,
// even none, and still carry a bookmark: only an empty Bookmark ends the
// list.
func (c *Client) Devices(ctx context.Context, f DeviceFilter, p PageRequest) (*wire.DevicePage, error) {
	q := pageQuery(p)
	if f.OperatorID != "" {
		q.Set("operator", f.OperatorID)
	}
	if f.PatientID != "" {
		q.Set("patient", f.PatientID)
	}
	var out wire.DevicePage
	if err := c.getSigned(ctx, "/v1/devices", q, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Device returns a device and the statistics of its readings (GET
// /v1/devices/{id}). Signed; the actor must be a regulator, the device's
// operator or its patient. A device the actor may not see is ErrNotFound,
// as a missing one is.
func (c *Client) Device(ctx context.Context, deviceID string) (*wire.DeviceDetail, error) {
	var out wire.DeviceDetail
	if err := c.getSigned(ctx, "/v1/devices/"+seg(deviceID), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Actors returns one page of registered actors in id order, of role when
// it is not empty (GET /v1/actors). Signed; the actor must be a regulator.
// Pages work as in Devices.
func (c *Client) Actors(ctx context.Context, role string, p PageRequest) (*wire.ActorPage, error) {
	q := pageQuery(p)
	if role != "" {
		q.Set("role", role)
	}
	var out wire.ActorPage
	if err := c.getSigned(ctx, "/v1/actors", q, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
