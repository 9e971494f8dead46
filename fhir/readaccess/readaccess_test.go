package readaccess_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/medprov/medprov/fhir/readaccess"
	"github.com/medprov/medprov/wire"
)

var hash = strings.Repeat("ab", 32)

func TestParseReads(t *testing.T) {
	tests := []struct {
		name string
		path string
		want readaccess.Read
	}{
		{"a read by id", "/fhir/R4/Observation/" + hash + "?purpose=study",
			readaccess.Read{ID: hash, Purpose: "study"}},
		{"a search by _id", "/fhir/R4/Observation?_id=" + hash + "&purpose=study&_format=json",
			readaccess.Read{Search: true, ID: hash, Purpose: "study"}},
		{"a search by identifier with its system", "/fhir/R4/Observation?identifier=urn:medprov:reading%7Cdev-1:42&purpose=study",
			readaccess.Read{Search: true, ReadingID: "dev-1:42", Purpose: "study"}},
		{"a search by bare identifier", "/fhir/R4/Observation?identifier=dev_1:0&purpose=study",
			readaccess.Read{Search: true, ReadingID: "dev_1:0", Purpose: "study"}},
		{"a search by patient names LOINC codes' types", "/fhir/R4/Observation?patient=Patient/p-1&code=http://loinc.org%7C8867-4,59408-5&purpose=study",
			readaccess.Read{Search: true, PatientID: "p-1", DataTypes: []string{"heart_rate", "spo2"}, Purpose: "study",
				From: readaccess.OpenFrom, To: readaccess.OpenTo}},
		{"medprov types and bare types", "/fhir/R4/Observation?patient=p-1&code=urn:medprov:reading-type%7Cecg,heart-rate&purpose=study",
			readaccess.Read{Search: true, PatientID: "p-1", DataTypes: []string{"ecg", "heart-rate"}, Purpose: "study",
				From: readaccess.OpenFrom, To: readaccess.OpenTo}},
		{"ge and le bounds, count and cursor", "/fhir/R4/Observation?patient=p-1&code=8867-4&purpose=study&date=ge2030-01-01T10:00:00%2B01:00&date=le2030-01-02&_count=5&_cursor=abc",
			readaccess.Read{Search: true, PatientID: "p-1", DataTypes: []string{"heart_rate"}, Purpose: "study",
				From: "2030-01-01T09:00:00Z", To: "2030-01-02T23:59:59.999999999Z", Limit: 5, Cursor: "abc"}},
		{"a day without a prefix is that day", "/fhir/R4/Observation?patient=p-1&code=8867-4&purpose=study&date=2030-01-02",
			readaccess.Read{Search: true, PatientID: "p-1", DataTypes: []string{"heart_rate"}, Purpose: "study",
				From: "2030-01-02T00:00:00Z", To: "2030-01-02T23:59:59.999999999Z"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readaccess.Parse(tt.path)
			require.NoError(t, err)
			assert.Equal(t, tt.want, *got)
		})
	}
}

func TestParseRefusals(t *testing.T) {
	tests := []struct {
		name string
		path string
		want wire.Code
	}{
		{"another resource type", "/fhir/R4/Consent?patient=p", wire.CodeNotFound},
		{"an id that is no dataHash", "/fhir/R4/Observation/dev-1.42?purpose=study", wire.CodeNotFound},
		{"no purpose", "/fhir/R4/Observation/" + hash, wire.CodeInvalid},
		{"a purpose that is no token", "/fhir/R4/Observation/" + hash + "?purpose=Study", wire.CodeInvalid},
		{"a parameter on a read", "/fhir/R4/Observation/" + hash + "?purpose=study&patient=p", wire.CodeInvalid},
		{"an unknown parameter", "/fhir/R4/Observation?patient=p&code=8867-4&purpose=study&status=final", wire.CodeInvalid},
		{"a parameter twice", "/fhir/R4/Observation?patient=p&patient=q&code=8867-4&purpose=study", wire.CodeInvalid},
		{"three dates", "/fhir/R4/Observation?patient=p&code=8867-4&purpose=study&date=ge2030-01-01&date=le2030-02-01&date=2030-01-05", wire.CodeInvalid},
		{"two lower bounds", "/fhir/R4/Observation?patient=p&code=8867-4&purpose=study&date=ge2030-01-01&date=ge2030-02-01", wire.CodeInvalid},
		{"an unsupported date prefix", "/fhir/R4/Observation?patient=p&code=8867-4&purpose=study&date=gt2030-01-01", wire.CodeInvalid},
		{"a window that ends before it starts", "/fhir/R4/Observation?patient=p&code=8867-4&purpose=study&date=ge2030-02-01&date=le2030-01-01", wire.CodeInvalid},
		{"a search without patient", "/fhir/R4/Observation?code=8867-4&purpose=study", wire.CodeInvalid},
		{"a search without code", "/fhir/R4/Observation?patient=p&purpose=study", wire.CodeInvalid},
		{"an unknown LOINC code", "/fhir/R4/Observation?patient=p&code=http://loinc.org%7C1-1&purpose=study", wire.CodeInvalid},
		{"another code system", "/fhir/R4/Observation?patient=p&code=http://snomed.info/sct%7C1&purpose=study", wire.CodeInvalid},
		{"a type twice", "/fhir/R4/Observation?patient=p&code=8867-4,heart_rate&purpose=study", wire.CodeInvalid},
		{"a malformed patient", "/fhir/R4/Observation?patient=Patient/&code=8867-4&purpose=study", wire.CodeInvalid},
		{"a count too large", "/fhir/R4/Observation?patient=p&code=8867-4&purpose=study&_count=1001", wire.CodeInvalid},
		{"_id with patient", "/fhir/R4/Observation?_id=" + hash + "&patient=p&purpose=study", wire.CodeInvalid},
		{"_id and identifier", "/fhir/R4/Observation?_id=" + hash + "&identifier=d:1&purpose=study", wire.CodeInvalid},
		{"an identifier of another system", "/fhir/R4/Observation?identifier=urn:x%7Cd:1&purpose=study", wire.CodeInvalid},
		{"an identifier that is no reading id", "/fhir/R4/Observation?identifier=d:01&purpose=study", wire.CodeInvalid},
		{"an XML format", "/fhir/R4/Observation/" + hash + "?purpose=study&_format=xml", wire.CodeInvalid},
		{"an escaped path", "/fhir/R4/Observation%2F" + hash + "?purpose=study", wire.CodeInvalid},
		{"an absolute URL", "http://h/fhir/R4/Observation/" + hash + "?purpose=study", wire.CodeInvalid},
		{"a fragment", "/fhir/R4/Observation/" + hash + "?purpose=study#x", wire.CodeInvalid},
		{"a semicolon in the query", "/fhir/R4/Observation/" + hash + "?purpose=study;x=1", wire.CodeInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := readaccess.Parse(tt.path)
			var we *wire.Error
			require.True(t, errors.As(err, &we), "want a *wire.Error, got %v", err)
			assert.Equal(t, tt.want, we.Code, "%s", we.Message)
		})
	}
}

func TestRequest(t *testing.T) {
	h := wire.ActionHeader{Action: wire.ActionHTTPGet, ActorID: "r-1", IssuedAt: "2030-01-01T00:00:00Z", Nonce: "nonce-nonce-nonce-1"}
	t.Run("a search is the request it spells out", func(t *testing.T) {
		rd, err := readaccess.Parse("/fhir/R4/Observation?patient=p-1&code=8867-4&purpose=study&date=2030-01-02&_count=7&_cursor=c")
		require.NoError(t, err)
		assert.Equal(t, wire.AccessRequestAction{ActionHeader: h, PatientID: "p-1", Purpose: "study", DataTypes: []string{"heart_rate"},
			From: "2030-01-02T00:00:00Z", To: "2030-01-02T23:59:59.999999999Z", Cursor: "c", Limit: 7}, rd.Request(h, nil))
	})
	t.Run("a read of one reading asks for its patient, type and instant", func(t *testing.T) {
		rd, err := readaccess.Parse("/fhir/R4/Observation/" + hash + "?purpose=study")
		require.NoError(t, err)
		r := &wire.Reading{ID: "d:1", PatientID: "p-2", Type: "spo2", MeasuredAt: "2030-01-03T04:05:06Z"}
		assert.Equal(t, wire.AccessRequestAction{ActionHeader: h, PatientID: "p-2", Purpose: "study", DataTypes: []string{"spo2"},
			From: r.MeasuredAt, To: r.MeasuredAt}, rd.Request(h, r))
	})
}

func ExampleParse() {
	rd, err := readaccess.Parse("/fhir/R4/Observation?patient=p-1&code=http://loinc.org%7C8867-4&purpose=study&date=ge2030-01-01&date=le2030-01-31")
	if err != nil {
		panic(err)
	}
	p := rd.Request(wire.ActionHeader{ActorID: "researcher-1"}, nil)
	fmt.Println(p.PatientID, p.DataTypes, p.Purpose, p.From, p.To)
	// Output: p-1 [heart_rate] study 2030-01-01T00:00:00Z 2030-01-31T23:59:59.999999999Z
}

func TestDerive(t *testing.T) {
	h := wire.ActionHeader{Action: wire.ActionHTTPGet, ActorID: "r-1"}
	r := &wire.Reading{ID: "d:1", PatientID: "p-2", Type: "spo2", MeasuredAt: "2030-01-03T04:05:06Z"}
	find := func(dataHash, readingID string) (*wire.Reading, error) {
		if dataHash == hash || readingID == r.ID {
			return r, nil
		}
		return nil, nil
	}
	tests := []struct {
		name   string
		method string
		path   string
		want   wire.Code // "" = derived
		one    bool
	}{
		{"a read by id finds its reading", "GET", "/fhir/R4/Observation/" + hash + "?purpose=study", "", true},
		{"a search by identifier finds its reading", "GET", "/fhir/R4/Observation?identifier=d:1&purpose=study", "", true},
		{"a search by patient needs no reading", "GET", "/fhir/R4/Observation?patient=p&code=8867-4&purpose=study", "", false},
		{"an unknown reading is not found", "GET", "/fhir/R4/Observation/" + strings.Repeat("0", 64) + "?purpose=study", wire.CodeNotFound, false},
		{"another method is refused", "POST", "/fhir/R4/Observation/" + hash + "?purpose=study", wire.CodeInvalid, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, one, err := readaccess.Derive(wire.HTTPGetAction{ActionHeader: h, Method: tt.method, Path: tt.path}, find)
			if tt.want != "" {
				var we *wire.Error
				require.ErrorAs(t, err, &we)
				assert.Equal(t, tt.want, we.Code)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.one, one != nil, "one reading")
			if tt.one {
				assert.Equal(t, [2]string{"p-2", "spo2"}, [2]string{p.PatientID, p.DataTypes[0]})
			}
		})
	}
}
