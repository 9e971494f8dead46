package fhir

import (
	"fmt"

	r4 "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/medprov/medprov/fhir/vocab"
	"github.com/medprov/medprov/wire"
)

// issueTypes maps v1 error codes to FHIR issue types.
var issueTypes = map[wire.Code]r4.IssueType{
	wire.CodeInvalid:          r4.IssueTypeInvalid,
	wire.CodeUnauthenticated:  r4.IssueTypeLogin,
	wire.CodeForbidden:        r4.IssueTypeForbidden,
	wire.CodeNotFound:         r4.IssueTypeNotFound,
	wire.CodeConflict:         r4.IssueTypeConflict,
	wire.CodeMethodNotAllowed: r4.IssueTypeNotSupported,
	wire.CodeTooLarge:         r4.IssueTypeTooCostly,
	wire.CodeRateLimited:      r4.IssueTypeThrottled,
	wire.CodeUnavailable:      r4.IssueTypeTransient,
	wire.CodeInternal:         r4.IssueTypeException,
}

// Outcome is the OperationOutcome of an error answered with v1's code
// (which fixes the HTTP status) and message. accessID, when set, names
// the committed access decision the error reports (a denial).
func Outcome(code wire.Code, message, accessID string) *r4.OperationOutcome {
	it, ok := issueTypes[code]
	if !ok {
		it = r4.IssueTypeException
	}
	details := &r4.CodeableConcept{Coding: []r4.Coding{coding(vocab.SystemError, string(code), "")}, Text: ptr(message)}
	if accessID != "" {
		details.Coding = append(details.Coding, coding(vocab.SystemAccess, accessID, ""))
	}
	return &r4.OperationOutcome{Issue: []r4.OperationOutcomeIssue{{
		Severity: r4.IssueSeverityError, Code: it, Details: details, Diagnostics: ptr(message),
	}}}
}

// WithheldOutcome is the OperationOutcome a searchset carries for granted
// readings that were withheld (erased, evidence_mismatch,
// ciphertext_missing, unavailable): one warning per reading, recorded on
// the access event as well.
func WithheldOutcome(held []wire.Withheld) *r4.OperationOutcome {
	oo := &r4.OperationOutcome{}
	for _, w := range held {
		oo.Issue = append(oo.Issue, r4.OperationOutcomeIssue{
			Severity: r4.IssueSeverityWarning, Code: r4.IssueTypeIncomplete,
			Details:     &r4.CodeableConcept{Coding: []r4.Coding{coding(vocab.SystemWithheld, w.Reason, "")}, Text: ptr("reading " + w.ReadingID + " withheld: " + w.Reason)},
			Diagnostics: ptr("reading " + w.ReadingID + " withheld: " + w.Reason),
		})
	}
	return oo
}

// IngestOutcome is the OperationOutcome answering a reading a device
// posted as a signed FHIR Observation (POST /fhir/R4/Observation): one
// information issue naming the reading id (urn:medprov:reading), its
// status (urn:medprov:reading-status: queued, exists or recorded) and,
// once recorded, its transaction (urn:medprov:tx); the Observation's id,
// the reading's dataHash, in the diagnostics.
func IngestOutcome(r wire.ReadingReceipt) *r4.OperationOutcome {
	msg := "reading " + r.ReadingID + " " + r.Status + "; Observation/" + r.DataHash
	details := &r4.CodeableConcept{Coding: []r4.Coding{
		coding(vocab.SystemReadingStatus, r.Status, ""),
		coding(vocab.SystemReading, r.ReadingID, ""),
	}, Text: ptr(msg)}
	if r.TxID != "" {
		details.Coding = append(details.Coding, coding(vocab.SystemTx, r.TxID, ""))
		msg += fmt.Sprintf("; transaction %s, block %d", r.TxID, r.Block)
	}
	return &r4.OperationOutcome{Issue: []r4.OperationOutcomeIssue{{
		Severity: r4.IssueSeverityInformation, Code: r4.IssueTypeInformational, Details: details, Diagnostics: ptr(msg),
	}}}
}
