package client

import "time"

// PageRequest selects a page. Zero values mean the server's defaults
// (first page, 100 items).
type PageRequest struct {
	PageSize int
	Bookmark string
}

// ConsentGrant is what a patient consents to.
type ConsentGrant struct {
	GranteeID string
	Purpose   string
	DataTypes []string
	NotBefore time.Time
	NotAfter  time.Time
}

// AccessRequest is what a researcher, or a patient for its own readings,
// asks for. Cursor continues a previous grant (its NextCursor); Limit caps
// the readings released (server default when zero).
type AccessRequest struct {
	PatientID string
	Purpose   string
	DataTypes []string
	From      time.Time
	To        time.Time
	Cursor    string
	Limit     int
}
