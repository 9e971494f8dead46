package web

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/medprov/medprov/wire"
)

// Researcher page: ask for access (purpose, data types, window), signed
// with the passkey; granted readings are shown with each one checked in
// the browser (SHA-256 against the ledger's dataHash, the device's ECDSA
// signature with WebCrypto), denials with their reason, which the ledger
// recorded too.

func (h *handler) registerResearcher(r gin.IRoutes) {
	r.GET("/researcher", secure, h.researcher)
}

// researcherPage is the researcher page's data.
type researcherPage struct {
	DataTypes []string
}

func (h *handler) researcher(c *gin.Context) {
	ses, ok := h.session(c, wire.RoleResearcher)
	if !ok {
		return
	}
	h.render(c, http.StatusOK, "researcher", h.data("Research access", ses, researcherPage{DataTypes: commonDataTypes}))
}
