package wire

// ActionHeader is carried by every signed actor action payload. Embed it in
// an action's payload type; its fields marshal first.
type ActionHeader struct {
	Action  string `json:"action"`
	ActorID string `json:"actorId"`
	// IssuedAt is RFC 3339; it must lie within IssuedAtWindow of the
	// ledger's transaction time.
	IssuedAt string `json:"issuedAt"`
	// Nonce is accepted once per actor, ever ([ValidNonce]).
	Nonce string `json:"nonce"`
}

// Header returns the header, so every action payload satisfies Action.
func (h *ActionHeader) Header() *ActionHeader { return h }

// Action is implemented by every action payload type (through its embedded
// ActionHeader).
type Action interface{ Header() *ActionHeader }

// DeviceRegisterAction is the payload of device.register (signer: an
// operator). PublicKey is the device's PEM "PUBLIC KEY".
type DeviceRegisterAction struct {
	ActionHeader
	DeviceID   string `json:"deviceId"`
	PatientID  string `json:"patientId"`
	DeviceType string `json:"deviceType"`
	PublicKey  string `json:"publicKey"`
}

// DeviceRevokeAction is the payload of device.revoke (signer: the operator
// that registered the device).
type DeviceRevokeAction struct {
	ActionHeader
	DeviceID string `json:"deviceId"`
}

// ConsentGrantAction is the payload of consent.grant (signer: the patient).
// PatientID is optional; when present it must name the signer.
type ConsentGrantAction struct {
	ActionHeader
	PatientID string   `json:"patientId,omitempty"`
	GranteeID string   `json:"granteeId"`
	Purpose   string   `json:"purpose"`
	DataTypes []string `json:"dataTypes"`
	NotBefore string   `json:"notBefore"`
	NotAfter  string   `json:"notAfter"`
}

// ConsentRevokeAction is the payload of consent.revoke (signer: the
// patient).
type ConsentRevokeAction struct {
	ActionHeader
	ConsentID string `json:"consentId"`
}

// AccessRequestAction is the payload of access.request (signer: a
// researcher, or a patient asking for its own readings, PatientID being
// the signer). Cursor continues a previous grant (its nextCursor); Limit
// caps the readings released (DefaultAccessLimit when zero).
type AccessRequestAction struct {
	ActionHeader
	PatientID string   `json:"patientId"`
	Purpose   string   `json:"purpose"`
	DataTypes []string `json:"dataTypes"`
	From      string   `json:"from"`
	To        string   `json:"to"`
	Cursor    string   `json:"cursor,omitempty"`
	Limit     int      `json:"limit,omitempty"`
}

// HTTPGetAction is the payload of a signed GET: the method and the request
// path with its query, exactly as sent. Its envelope travels in
// SignatureHeader.
type HTTPGetAction struct {
	ActionHeader
	Method string `json:"method"`
	Path   string `json:"path"`
}
