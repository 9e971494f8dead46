// Package fhirtest validates, in tests, the FHIR JSON the gateway emits
// against HL7's official R4 definitions with validators medprov did not
// write (scripts/fhir-validate.sh: @medplum/core over the R4
// StructureDefinitions, ajv over the R4 JSON Schema), offline once
// installed.
//
// A Validator collects documents as a test sees them and validates them
// all in one run of the validator (loading the definitions takes about a
// second): when Check is called, and once more when the test ends.
package fhirtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// EnvValidator names the validator command (scripts/test.sh exports it);
// without it the repository's scripts/fhir-validate.sh is run, which
// installs the pinned packages into the cache on first use.
const EnvValidator = "MEDPROV_FHIR_VALIDATOR"

// Validator collects FHIR documents to validate. It is safe for
// concurrent use.
type Validator struct {
	dir     string
	mu      sync.Mutex
	pending []string
	n       int
}

// New returns a Validator whose pending documents are validated when the
// test ends.
func New(tb testing.TB) *Validator {
	tb.Helper()
	v := &Validator{dir: tb.TempDir()}
	tb.Cleanup(func() { v.Check(tb) })
	return v
}

// Add records doc, one FHIR resource (a Bundle's entries included) the
// test received, under a name that says where it came from.
func (v *Validator) Add(tb testing.TB, name string, doc []byte) {
	tb.Helper()
	v.mu.Lock()
	defer v.mu.Unlock()
	v.n++
	safe := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' {
			return r
		}
		return '_'
	}, name)
	p := filepath.Join(v.dir, fmt.Sprintf("%04d-%.80s.json", v.n, safe))
	require.NoError(tb, os.WriteFile(p, doc, 0o600), "keep %s for validation", name)
	v.pending = append(v.pending, p)
}

// Count returns how many documents were added.
func (v *Validator) Count() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.n
}

// Check validates the documents added since the last Check and fails the
// test with the validator's report if any has an error.
func (v *Validator) Check(tb testing.TB) {
	tb.Helper()
	v.mu.Lock()
	files := v.pending
	v.pending = nil
	v.mu.Unlock()
	if len(files) == 0 {
		return
	}
	cmd := exec.Command(Command(tb), files...)
	out, err := cmd.CombinedOutput()
	assert.NoError(tb, err, "FHIR R4 validation of %d documents:\n%s", len(files), out)
}

// Command returns the validator command: $MEDPROV_FHIR_VALIDATOR, else
// the repository's scripts/fhir-validate.sh.
func Command(tb testing.TB) string {
	tb.Helper()
	if c := os.Getenv(EnvValidator); c != "" {
		return c
	}
	_, file, _, ok := runtime.Caller(0)
	require.True(tb, ok, "cannot locate the repository")
	return filepath.Join(filepath.Dir(file), "..", "..", "scripts", "fhir-validate.sh")
}
