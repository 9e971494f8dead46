package web

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/medprov/medprov/wire"
)

// Patient pages: my devices, my consents with their history (grant,
// revoke), who accessed my data (with CSV and JSON downloads), my own
// readings (released through a passkey-signed access request of my own,
// logged on the ledger like any other) and erasure.

// commonDataTypes are the data types the consent form offers as boxes;
// others can be typed.
var commonDataTypes = []string{"heart_rate", "spo2", "glucose", "blood_pressure", "temperature", "ecg"}

func (h *handler) registerPatient(r gin.IRoutes) {
	r.GET("/patient", secure, h.patient)
	r.GET("/patient/access-log.json", secure, h.patientAccessLog)
	r.GET("/patient/access-log.csv", secure, h.patientAccessLog)
}

// patientPage is the patient page's data.
type patientPage struct {
	Devices   []wire.Device
	Consents  []wire.Consent
	Access    []wire.AccessEvent
	NextPage  string // link to the next page of the access log, if any
	DataTypes []string
}

func (h *handler) patient(c *gin.Context) {
	ses, ok := h.session(c, wire.RolePatient)
	if !ok {
		return
	}
	me := url.PathEscape(ses.ActorID)
	var p patientPage
	p.DataTypes = commonDataTypes
	var devices wire.DevicePage
	if err := h.get(c, "/v1/devices?patient="+url.QueryEscape(ses.ActorID)+"&pageSize=100", &devices); err != nil {
		h.fail(c, err)
		return
	}
	p.Devices = devices.Items
	var consents wire.ConsentList
	if err := h.get(c, "/v1/patients/"+me+"/consents", &consents); err != nil {
		h.fail(c, err)
		return
	}
	p.Consents = consents.Items
	q := url.Values{"pageSize": {"50"}}
	if bm := c.Query("log"); bm != "" {
		q.Set("bookmark", bm)
	}
	var log wire.AccessEventPage
	if err := h.get(c, "/v1/patients/"+me+"/access-log?"+q.Encode(), &log); err != nil {
		h.fail(c, err)
		return
	}
	p.Access = log.Items
	if log.Bookmark != "" && len(log.Items) == 50 {
		p.NextPage = "/patient?log=" + url.QueryEscape(log.Bookmark) + "#access"
	}
	h.render(c, http.StatusOK, "patient", h.data("My data", ses, p))
}

// maxExport bounds the access events one download holds.
const maxExport = 10_000

// patientAccessLog answers the signed-in patient's access log as a
// download, JSON (the API's access events) or CSV (one row per event).
func (h *handler) patientAccessLog(c *gin.Context) {
	ses, ok := h.session(c, wire.RolePatient)
	if !ok {
		return
	}
	var all []wire.AccessEvent
	bm := ""
	for len(all) < maxExport {
		q := url.Values{"pageSize": {strconv.Itoa(wire.MaxPageSize)}}
		if bm != "" {
			q.Set("bookmark", bm)
		}
		var page wire.AccessEventPage
		if err := h.get(c, "/v1/patients/"+url.PathEscape(ses.ActorID)+"/access-log?"+q.Encode(), &page); err != nil {
			h.fail(c, err)
			return
		}
		all = append(all, page.Items...)
		if page.Bookmark == "" || len(page.Items) < wire.MaxPageSize {
			break
		}
		bm = page.Bookmark
	}
	if all == nil {
		all = []wire.AccessEvent{}
	}
	if strings.HasSuffix(c.Request.URL.Path, ".json") {
		b, err := json.MarshalIndent(all, "", "  ")
		if err != nil {
			h.fail(c, err)
			return
		}
		c.Header("Content-Disposition", `attachment; filename="access-log.json"`)
		c.Data(http.StatusOK, "application/json", append(b, '\n'))
		return
	}
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	_ = w.Write([]string{"time", "accessId", "actorId", "purpose", "dataTypes", "from", "to", "decision", "reason", "consentId", "readingCount", "readingIds", "withheld", "txId"})
	for _, e := range all {
		var held []string
		for _, wh := range e.Withheld {
			held = append(held, wh.ReadingID+":"+wh.Reason)
		}
		_ = w.Write([]string{e.TxTime, e.ID, csvSafe(e.ActorID), e.Purpose, strings.Join(e.DataTypes, " "), e.From, e.To,
			e.Decision, e.Reason, e.ConsentID, strconv.Itoa(e.Count), strings.Join(e.ReadingIDs, " "), strings.Join(held, " "), e.TxID})
	}
	w.Flush()
	c.Header("Content-Disposition", `attachment; filename="access-log.csv"`)
	c.Data(http.StatusOK, "text/csv; charset=utf-8", buf.Bytes())
}

// csvSafe keeps a cell from being read as a formula by a spreadsheet.
// IDs cannot start with these characters today; this holds if that
// changes.
func csvSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@", rune(s[0])) {
		return "'" + s
	}
	return s
}
