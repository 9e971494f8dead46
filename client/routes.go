package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/medprov/medprov/envelope"
	"github.com/medprov/medprov/wire"
)

// Ping checks GET /healthz and returns nil if the gateway answers 2xx.
func (c *Client) Ping(ctx context.Context) error {
	_, err := c.do(ctx, request{method: http.MethodGet, path: "/healthz"}, nil)
	return err
}

// RegisterActor registers an actor with the admin token (POST /v1/actors).
func (c *Client) RegisterActor(ctx context.Context, a wire.ActorInput) (*wire.Actor, error) {
	var out wire.Actor
	if _, err := c.do(ctx, request{method: http.MethodPost, path: "/v1/actors", body: a, admin: true}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// header returns a fresh action header signed as the client's actor.
func (c *Client) header(action string) (wire.ActionHeader, error) {
	if !c.canSign() {
		return wire.ActionHeader{}, ErrNoActor
	}
	return NewActionHeader(action, c.actorID, c.now())
}

// postSigned signs payload with the actor's key or passkey and posts the
// envelope.
func (c *Client) postSigned(ctx context.Context, path string, payload any, out any) (int, error) {
	env, err := c.sign(ctx, payload)
	if err != nil {
		return 0, err
	}
	return c.do(ctx, request{method: http.MethodPost, path: path, body: env}, out)
}

// DeviceRegistration is what an operator registers.
type DeviceRegistration struct {
	DeviceID   string
	PatientID  string
	DeviceType string
	// PublicKey is the device's PEM "PUBLIC KEY".
	PublicKey string
}

// RegisterDevice registers a device to a patient, signed by the client's
// actor, which must be an operator (POST /v1/devices).
func (c *Client) RegisterDevice(ctx context.Context, d DeviceRegistration) (*wire.Device, error) {
	h, err := c.header(wire.ActionDeviceRegister)
	if err != nil {
		return nil, err
	}
	var out wire.Device
	p := wire.DeviceRegisterAction{ActionHeader: h, DeviceID: d.DeviceID, PatientID: d.PatientID, DeviceType: d.DeviceType, PublicKey: d.PublicKey}
	if _, err := c.postSigned(ctx, "/v1/devices", p, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RevokeDevice revokes a device's key, signed by the client's actor, which
// must be the operator that registered it (POST /v1/devices/{id}/revoke).
func (c *Client) RevokeDevice(ctx context.Context, deviceID string) (*wire.Device, error) {
	h, err := c.header(wire.ActionDeviceRevoke)
	if err != nil {
		return nil, err
	}
	var out wire.Device
	p := wire.DeviceRevokeAction{ActionHeader: h, DeviceID: deviceID}
	if _, err := c.postSigned(ctx, "/v1/devices/"+seg(deviceID)+"/revoke", p, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// SubmitOption changes how SubmitReading waits.
type SubmitOption func(url.Values)

// WaitForCommit makes SubmitReading (or SubmitReadings) return only once the reading is in a
// block (?wait=commit); the receipt then has status "recorded", TxID and
// Block.
func WaitForCommit() SubmitOption { return func(q url.Values) { q.Set("wait", "commit") } }

// SubmitReading sends one device-signed reading envelope (POST
// /v1/readings). Resending the same envelope is safe: the receipt's status
// is then "exists" or "queued".
func (c *Client) SubmitReading(ctx context.Context, env envelope.Envelope, opts ...SubmitOption) (*wire.ReadingReceipt, error) {
	q := url.Values{}
	for _, o := range opts {
		o(q)
	}
	var out wire.ReadingReceipt
	if _, err := c.do(ctx, request{method: http.MethodPost, path: "/v1/readings", query: q, body: env}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// SubmitReadings sends many device-signed envelopes in one request (POST
// /v1/readings/batch). A refused item does not fail the call: inspect the
// per-item results (BatchReceipt.Failed). The error is non-nil only when
// the whole request was refused. WaitForCommit makes it return once the
// accepted readings are in blocks.
func (c *Client) SubmitReadings(ctx context.Context, envs []envelope.Envelope, opts ...SubmitOption) (*wire.BatchReceipt, error) {
	q := url.Values{}
	for _, o := range opts {
		o(q)
	}
	body := struct {
		Readings []envelope.Envelope `json:"readings"`
	}{envs}
	var out wire.BatchReceipt
	if _, err := c.do(ctx, request{method: http.MethodPost, path: "/v1/readings/batch", query: q, body: body}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// GrantConsent grants consent, signed by the client's actor, which must be
// the patient (POST /v1/consents).
func (c *Client) GrantConsent(ctx context.Context, g ConsentGrant) (*wire.ConsentReceipt, error) {
	h, err := c.header(wire.ActionConsentGrant)
	if err != nil {
		return nil, err
	}
	p := wire.ConsentGrantAction{
		ActionHeader: h, GranteeID: g.GranteeID, Purpose: g.Purpose, DataTypes: g.DataTypes,
		NotBefore: g.NotBefore.UTC().Format(time.RFC3339), NotAfter: g.NotAfter.UTC().Format(time.RFC3339),
	}
	var out wire.ConsentReceipt
	if _, err := c.postSigned(ctx, "/v1/consents", p, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RevokeConsent revokes a consent, signed by the client's actor, which must
// be its patient (POST /v1/consents/{id}/revoke).
func (c *Client) RevokeConsent(ctx context.Context, consentID string) (*wire.ConsentReceipt, error) {
	h, err := c.header(wire.ActionConsentRevoke)
	if err != nil {
		return nil, err
	}
	var out wire.ConsentReceipt
	p := wire.ConsentRevokeAction{ActionHeader: h, ConsentID: consentID}
	if _, err := c.postSigned(ctx, "/v1/consents/"+seg(consentID)+"/revoke", p, &out); err != nil {
		return nil, err
	}
	if out.ConsentID == "" {
		out.ConsentID = consentID
	}
	return &out, nil
}

// RequestAccess asks for a patient's readings, signed by the client's
// actor, which must be a researcher, or the patient itself (PatientID its
// own id), whose own readings need no consent (POST /v1/access). A denial
// is returned as an *APIError with Status 403 and the AccessID under which
// the denial was recorded.
func (c *Client) RequestAccess(ctx context.Context, r AccessRequest) (*wire.AccessGrant, error) {
	h, err := c.header(wire.ActionAccessRequest)
	if err != nil {
		return nil, err
	}
	p := wire.AccessRequestAction{
		ActionHeader: h, PatientID: r.PatientID, Purpose: r.Purpose, DataTypes: r.DataTypes,
		From: r.From.UTC().Format(time.RFC3339Nano), To: r.To.UTC().Format(time.RFC3339Nano),
		Cursor: r.Cursor, Limit: r.Limit,
	}
	var out wire.AccessGrant
	if _, err := c.postSigned(ctx, "/v1/access", p, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// getSigned sends a GET signed as the client's actor.
func (c *Client) getSigned(ctx context.Context, path string, q url.Values, out any) error {
	_, err := c.do(ctx, request{method: http.MethodGet, path: path, query: q, signed: true}, out)
	return err
}

// Consents lists a patient's consents with their history (GET
// /v1/patients/{id}/consents). Signed; the actor must be the patient or a
// regulator.
func (c *Client) Consents(ctx context.Context, patientID string) ([]wire.Consent, error) {
	var raw json.RawMessage
	if err := c.getSigned(ctx, "/v1/patients/"+seg(patientID)+"/consents", nil, &raw); err != nil {
		return nil, err
	}
	return decodeList[wire.Consent](raw)
}

// decodeList accepts a bare JSON array or an object with "items".
func decodeList[T any](raw json.RawMessage) ([]T, error) {
	var items []T
	if err := json.Unmarshal(raw, &items); err == nil {
		return items, nil
	}
	var page struct {
		Items []T `json:"items"`
	}
	if err := json.Unmarshal(raw, &page); err != nil {
		return nil, fmt.Errorf("decode list: %w", err)
	}
	return page.Items, nil
}

// AccessLog returns one page of who accessed a patient's data, oldest first
// (GET /v1/patients/{id}/access-log). Signed; the actor must be the patient
// or a regulator.
func (c *Client) AccessLog(ctx context.Context, patientID string, p PageRequest) (*wire.AccessEventPage, error) {
	var out wire.AccessEventPage
	if err := c.getSigned(ctx, "/v1/patients/"+seg(patientID)+"/access-log", pageQuery(p), &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Provenance returns a reading's record, device, covering consents and
// accesses (GET /v1/readings/{id}/provenance). Signed; the actor must be a
// regulator or the patient.
func (c *Client) Provenance(ctx context.Context, readingID string) (*wire.ProvenanceReport, error) {
	var out wire.ProvenanceReport
	if err := c.getSigned(ctx, "/v1/readings/"+seg(readingID)+"/provenance", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// EventFilter selects audit events; zero fields do not filter.
type EventFilter struct {
	PatientID string
	ActorID   string
	Type      string
	From      time.Time
	To        time.Time
}

// AuditEvents returns one page of audit events matching f (GET
// /v1/audit/events). Signed; the actor must be a regulator.
func (c *Client) AuditEvents(ctx context.Context, f EventFilter, p PageRequest) (*wire.AuditEventPage, error) {
	q := pageQuery(p)
	for k, v := range map[string]string{"patientId": f.PatientID, "actorId": f.ActorID, "type": f.Type} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if !f.From.IsZero() {
		q.Set("from", f.From.UTC().Format(time.RFC3339Nano))
	}
	if !f.To.IsZero() {
		q.Set("to", f.To.UTC().Format(time.RFC3339Nano))
	}
	var out wire.AuditEventPage
	if err := c.getSigned(ctx, "/v1/audit/events", q, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// VerifyReading asks the gateway to re-fetch a reading's ciphertext and
// check hash, CID, signature and block (GET /v1/audit/verify/{id}).
// Signed; the actor must be a regulator. A reading that fails verification
// is not an error: Verification.OK is false and Checks say why.
func (c *Client) VerifyReading(ctx context.Context, readingID string) (*wire.Verification, error) {
	var out wire.Verification
	if err := c.getSigned(ctx, "/v1/audit/verify/"+seg(readingID), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// IsDenied reports whether err is an access denial recorded on the ledger,
// and returns its access id.
func IsDenied(err error) (accessID string, ok bool) {
	var ae *APIError
	if errors.As(err, &ae) && ae.Status == http.StatusForbidden && ae.AccessID != "" {
		return ae.AccessID, true
	}
	return "", false
}
