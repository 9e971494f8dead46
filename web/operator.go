package web

import (
	"net/http"
	"net/url"

	"github.com/gin-gonic/gin"

	"github.com/medprov/medprov/wire"
)

// Operator page: the operator's devices with their status, reading count
// and last reading (from the ledger), registering a device from its PEM
// public key, and revoking one. Both actions are signed with the
// operator's passkey.

func (h *handler) registerOperator(r gin.IRoutes) {
	r.GET("/operator", secure, h.operator)
}

// maxOperatorDevices bounds the devices one page shows with their
// statistics (each is a query of the ledger).
const maxOperatorDevices = 100

// operatorPage is the operator page's data.
type operatorPage struct {
	Devices  []wire.DeviceDetail
	NextPage string
}

func (h *handler) operator(c *gin.Context) {
	ses, ok := h.session(c, wire.RoleOperator)
	if !ok {
		return
	}
	q := url.Values{"operator": {ses.ActorID}, "pageSize": {"100"}}
	if bm := c.Query("page"); bm != "" {
		q.Set("bookmark", bm)
	}
	var devices wire.DevicePage
	if err := h.get(c, "/v1/devices?"+q.Encode(), &devices); err != nil {
		h.fail(c, err)
		return
	}
	var p operatorPage
	for _, d := range devices.Items {
		if len(p.Devices) == maxOperatorDevices {
			break
		}
		var detail wire.DeviceDetail
		if err := h.get(c, "/v1/devices/"+url.PathEscape(d.ID), &detail); err != nil {
			h.fail(c, err)
			return
		}
		p.Devices = append(p.Devices, detail)
	}
	if devices.Bookmark != "" {
		p.NextPage = "/operator?page=" + url.QueryEscape(devices.Bookmark)
	}
	h.render(c, http.StatusOK, "operator", h.data("My devices", ses, p))
}
