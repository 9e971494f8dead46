package wire

// Registries: who and what the ledger holds (devices, actors) and what a
// device has recorded, for the portal and for auditors. All are queries.

// Chaincode queries of the registries (all evaluate).
const (
	// FnListDevices takes operatorId and patientId ("" = any), pageSize and
	// bookmark; it answers a DevicePage.
	FnListDevices = "ListDevices"
	// FnListActors takes a role ("" = any), pageSize and bookmark; it
	// answers an ActorPage.
	FnListActors = "ListActors"
	// FnGetDeviceStats takes a device id; it answers DeviceStats.
	FnGetDeviceStats = "GetDeviceStats"
)

// Limits of the registry queries.
const (
	// MaxRegistryScan is the most device or actor records one ListDevices
	// or ListActors call examines. Those records are not indexed by
	// operator, patient or role, so a filtered page is a bounded scan: it
	// may hold fewer items than asked for, even none, and still carry a
	// bookmark.
	MaxRegistryScan = 10000
	// MaxDeviceStatsScan is the most readings GetDeviceStats counts for one
	// device; beyond it the count is reported as capped.
	MaxDeviceStatsScan = 100000
)

// DevicePage is one page of registered devices, in device id order.
// Bookmark is empty on the last page; pass it back to fetch the next one.
// A page may hold fewer than the page size asked for (even none) and still
// carry a bookmark: only an empty bookmark ends the list.
type DevicePage struct {
	Items    []Device `json:"items"`
	Bookmark string   `json:"bookmark"`
	Count    int      `json:"count"`
}

// ActorPage is one page of registered actors, in actor id order, paged as
// DevicePage is.
type ActorPage struct {
	Items    []Actor `json:"items"`
	Bookmark string  `json:"bookmark"`
	Count    int     `json:"count"`
}

// LastReading names the recorded reading of a device with the highest seq
// (devices number their readings in order, so normally the newest) and the
// transaction that recorded it.
type LastReading struct {
	ReadingID  string `json:"readingId"`
	Seq        uint64 `json:"seq"`
	MeasuredAt string `json:"measuredAt"`
	TxID       string `json:"txId"`
	TxTime     string `json:"txTime"`
}

// DeviceStats is what the ledger holds of one device's readings. Readings
// is their number, exact unless ReadingsCapped: then the device has more
// than MaxDeviceStatsScan readings and Readings is that cap. LastReading
// is absent while the device has recorded none.
type DeviceStats struct {
	DeviceID       string       `json:"deviceId"`
	Readings       int          `json:"readings"`
	ReadingsCapped bool         `json:"readingsCapped"`
	LastReading    *LastReading `json:"lastReading,omitempty" metadata:",optional"`
}

// DeviceDetail answers GET /v1/devices/{id}: the device record and the
// statistics of its readings.
type DeviceDetail struct {
	Device Device      `json:"device"`
	Stats  DeviceStats `json:"stats"`
}
