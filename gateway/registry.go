package gateway

import (
	"context"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/medprov/medprov/wire"
)

// errNoDevice answers GET /v1/devices/{id} both for a device that does not
// exist and for one the caller may not see, so that the answer does not
// tell whether a device ID exists.
var errNoDevice = errf(wire.CodeNotFound, "device not found")

// listDevices answers a page of devices. A regulator may list any; an
// operator lists its own (operator defaults to itself and may name no
// other), a patient those bound to it (patient likewise); anyone else is
// forbidden.
func (s *Server) listDevices(c *gin.Context) {
	ps, bm, err := pageArgs(c)
	if err != nil {
		fail(c, err)
		return
	}
	page, err := s.devicePage(c, actorOf(c), trimmed(c, "operator"), trimmed(c, "patient"), ps, bm)
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, page)
}

// devicePage returns a page of the devices a may list, of operator op
// and patient pat ("" = any), under listDevices' rule. Every view of the
// device registry (v1, FHIR) reads it here.
func (s *Server) devicePage(ctx context.Context, a *actorKey, op, pat, pageSize, bookmark string) (*wire.DevicePage, error) {
	if a == nil {
		return nil, errf(wire.CodeForbidden, "only regulators, operators and patients may list devices")
	}
	switch a.Role {
	case wire.RoleRegulator:
	case wire.RoleOperator:
		if op == "" {
			op = a.ID
		}
		if op != a.ID {
			return nil, errf(wire.CodeForbidden, "an operator may list only its own devices (operator must be itself)")
		}
	case wire.RolePatient:
		if pat == "" {
			pat = a.ID
		}
		if pat != a.ID {
			return nil, errf(wire.CodeForbidden, "a patient may list only its own devices (patient must be itself)")
		}
	default:
		return nil, errf(wire.CodeForbidden, "only regulators, operators and patients may list devices")
	}
	for _, id := range []string{op, pat} {
		if id != "" && !wire.ValidID(id) {
			return nil, badRequest("operator and patient must match %s", wire.IDPattern)
		}
	}
	var page wire.DevicePage
	if err := s.chain.evaluate(ctx, &page, wire.FnListDevices, op, pat, pageSize, bookmark); err != nil {
		return nil, err
	}
	if page.Items == nil {
		page.Items = []wire.Device{}
	}
	return &page, nil
}

// mayReadDevice allows regulators, the device's operator and its patient.
func mayReadDevice(a *actorKey, d *wire.Device) bool {
	if a == nil {
		return false
	}
	switch a.Role {
	case wire.RoleRegulator:
		return true
	case wire.RoleOperator:
		return a.ID == d.OperatorID
	case wire.RolePatient:
		return a.ID == d.PatientID
	}
	return false
}

// deviceDetail answers a device and the statistics of its readings to a
// regulator, its operator and its patient; anyone else gets errNoDevice,
// as for a device that does not exist. The device is read and the caller
// checked before its readings are counted.
func (s *Server) deviceDetail(c *gin.Context) {
	d, err := s.chain.device(c, c.Param("id"))
	if err != nil && toAPIError(err).Status() != http.StatusNotFound {
		fail(c, err)
		return
	}
	if err != nil || !mayReadDevice(actorOf(c), d) {
		fail(c, errNoDevice)
		return
	}
	var st wire.DeviceStats
	if err := s.chain.evaluate(c, &st, wire.FnGetDeviceStats, d.ID); err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, wire.DeviceDetail{Device: *d, Stats: st})
}

// listActors answers a page of actors, optionally of one role, to
// regulators.
func (s *Server) listActors(c *gin.Context) {
	if !mustRole(c, wire.RoleRegulator) {
		return
	}
	role := trimmed(c, "role")
	if role != "" && !wire.ValidRole(role) {
		fail(c, badRequest("role must be patient, operator, researcher or regulator"))
		return
	}
	ps, bm, err := pageArgs(c)
	if err != nil {
		fail(c, err)
		return
	}
	var page wire.ActorPage
	if err := s.chain.evaluate(c, &page, wire.FnListActors, role, ps, bm); err != nil {
		fail(c, err)
		return
	}
	if page.Items == nil {
		page.Items = []wire.Actor{}
	}
	c.JSON(http.StatusOK, page)
}
