package e2e

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/medprov/medprov/audit"
	"github.com/medprov/medprov/client"
	"github.com/medprov/medprov/envelope"
	"github.com/medprov/medprov/fhir"
	"github.com/medprov/medprov/fhir/fhirtest"
	"github.com/medprov/medprov/internal/testkit"
	"github.com/medprov/medprov/payload"
	"github.com/medprov/medprov/wire"
)

// TestFHIREmbedded runs the FHIR story against the gateway binary on the
// embedded default.
func TestFHIREmbedded(t *testing.T) {
	g := NewGateway(t)
	g.Start(t)
	fhirStory(t, g.URL(), g.AdminToken, "emb-")
}

// fhirActor is an actor of the story: its id, key and key file.
type fhirActor struct {
	id, keyFile string
	key         *ecdsa.PrivateKey
	c           *client.Client
}

// fhirStory is the FHIR R4 view over real HTTP: a patient's device
// records readings; the patient consents to a researcher; the patient,
// the researcher, another patient and a regulator read Consents,
// AuditEvents, Provenances, Devices and Observations. It checks that
// FHIR's authorisation is v1's (a patient cannot read another patient's
// resources, a researcher cannot read AuditEvents, unsigned requests are
// refused), that an Observation read is an access decided and logged on
// the ledger first, that the Observation's signed bytes verify against
// the ledger's hash and the device key, that the offline audit bundle of
// the patient still verifies, and that "medprov audit export --format fhir"
// writes the patient's collection Bundle. Every resource and Bundle the
// gateway answers (OperationOutcomes included) is validated against HL7's
// R4 definitions (fhirtest).
func fhirStory(t *testing.T, baseURL, adminToken, prefix string) {
	ctx := t.Context()
	dir := t.TempDir()
	v := fhirtest.New(t)
	admin, err := client.New(baseURL, client.WithAdminToken(adminToken))
	require.NoError(t, err)
	actor := func(name, role string) *fhirActor {
		k := testkit.MustKey(t)
		id := prefix + "fhir-" + name
		_, err := admin.RegisterActor(ctx, wire.ActorInput{ID: id, Role: role, PublicKey: testkit.PublicPEM(t, k)})
		require.NoError(t, err, "register %s", id)
		der, err := envelope.MarshalPrivateKey(k)
		require.NoError(t, err)
		kf := filepath.Join(dir, id+".key")
		require.NoError(t, os.WriteFile(kf, der, 0o600))
		c, err := client.New(baseURL, client.WithActor(id, k))
		require.NoError(t, err)
		return &fhirActor{id: id, keyFile: kf, key: k, c: c}
	}
	pat, other := actor("pat", wire.RolePatient), actor("other", wire.RolePatient)
	res, reg, op := actor("res", wire.RoleResearcher), actor("reg", wire.RoleRegulator), actor("op", wire.RoleOperator)

	devKey := testkit.MustKey(t)
	deviceID := prefix + "fhir-dev"
	_, err = op.c.RegisterDevice(ctx, client.DeviceRegistration{DeviceID: deviceID, PatientID: pat.id, DeviceType: "pulse-oximeter", PublicKey: testkit.PublicPEM(t, devKey)})
	require.NoError(t, err)
	dev, err := client.New(baseURL)
	require.NoError(t, err)
	start := time.Now().Add(-time.Minute)
	hashes := map[string]string{} // reading id → dataHash, the Observation's id
	var envs []envelope.Envelope
	for i, r := range []struct {
		typ, unit string
		value     float64
	}{{"heart_rate", "bpm", 64}, {"heart_rate", "bpm", 66}, {"spo2", "%", 98}, {"temperature", "Cel", 36.8}} {
		p, err := client.NewReading(deviceID, uint64(i+1), r.typ, r.unit, r.value, start.Add(time.Duration(i)*time.Second))
		require.NoError(t, err)
		e, err := client.SignReading(devKey, p)
		require.NoError(t, err)
		envs = append(envs, e)
	}
	rcpt, err := dev.SubmitReadings(ctx, envs, client.WaitForCommit())
	require.NoError(t, err)
	for _, r := range rcpt.Results {
		require.Equal(t, wire.StatusRecorded, r.Status, "reading %s", r.ReadingID)
		hashes[r.ReadingID] = r.DataHash
	}
	_, err = pat.c.GrantConsent(ctx, client.ConsentGrant{GranteeID: res.id, Purpose: "study", DataTypes: []string{"heart_rate"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)})
	require.NoError(t, err)

	// get sends a FHIR GET as a (unsigned when a is nil), checks the
	// status and media type, keeps the body for validation and decodes it.
	get := func(t *testing.T, a *fhirActor, path string, want int, out any) {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, baseURL+path, nil)
		require.NoError(t, err)
		req.Header.Set("Accept", fhir.MediaType)
		if a != nil {
			h, err := client.SignedGetHeader(a.key, a.id, req.URL.RequestURI(), time.Now())
			require.NoError(t, err)
			req.Header.Set(wire.SignatureHeader, h)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		require.Equal(t, want, resp.StatusCode, "GET %s: %s", path, body)
		assert.Equal(t, fhir.MediaType, resp.Header.Get("Content-Type"), "GET %s", path)
		v.Add(t, path, body)
		if out != nil {
			require.NoError(t, json.Unmarshal(body, out), "GET %s", path)
		}
	}
	p := url.QueryEscape(pat.id)
	window := "&date=" + url.QueryEscape("ge"+time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)) +
		"&date=" + url.QueryEscape("le"+time.Now().Add(time.Minute).UTC().Format(time.RFC3339))

	t.Run("authorisation is v1's", func(t *testing.T) {
		tests := []struct {
			name string
			who  *fhirActor
			path string
			want int
		}{
			{"anyone reads the capability statement", nil, "/fhir/R4/metadata", http.StatusOK},
			{"an unsigned search is refused", nil, "/fhir/R4/AuditEvent?patient=" + p, http.StatusUnauthorized},
			{"an unsigned Observation read is refused", nil, "/fhir/R4/Observation/" + hashes[deviceID+":1"] + "?purpose=study", http.StatusUnauthorized},
			{"the patient reads its consents", pat, "/fhir/R4/Consent?patient=" + p, http.StatusOK},
			{"another patient cannot read them", other, "/fhir/R4/Consent?patient=" + p, http.StatusForbidden},
			{"another patient cannot read the patient's audit events", other, "/fhir/R4/AuditEvent?patient=" + p, http.StatusForbidden},
			{"another patient cannot read the patient's devices", other, "/fhir/R4/Device?patient=" + p, http.StatusForbidden},
			{"another patient cannot read the patient's Observations", other, "/fhir/R4/Observation/" + hashes[deviceID+":1"] + "?purpose=patrqt", http.StatusNotFound},
			{"another patient cannot search them", other, "/fhir/R4/Observation?patient=" + p + "&code=8867-4&purpose=patrqt", http.StatusForbidden},
			{"a researcher cannot read audit events", res, "/fhir/R4/AuditEvent?patient=" + p, http.StatusForbidden},
			{"a researcher cannot read consents", res, "/fhir/R4/Consent?patient=" + p, http.StatusForbidden},
			{"a regulator reads the patient's audit events", reg, "/fhir/R4/AuditEvent?patient=" + p, http.StatusOK},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				var body map[string]any
				get(t, tt.who, tt.path, tt.want, &body)
				if tt.want >= 400 {
					assert.Equal(t, "OperationOutcome", body["resourceType"], "errors are OperationOutcomes")
				}
			})
		}
	})

	t.Run("an Observation read is an access the ledger decides and logs first", func(t *testing.T) {
		var b struct {
			Total *int `json:"total"`
			Entry []struct {
				Resource json.RawMessage `json:"resource"`
			} `json:"entry"`
		}
		get(t, res, "/fhir/R4/Observation?patient="+p+"&code=http://loinc.org|8867-4&purpose=study"+window, http.StatusOK, &b)
		require.Len(t, b.Entry, 2, "the two heart rate readings")
		require.NotNil(t, b.Total)
		assert.Equal(t, 2, *b.Total)

		log, err := pat.c.AccessLog(ctx, pat.id, client.PageRequest{})
		require.NoError(t, err)
		require.NotEmpty(t, log.Items)
		last := log.Items[len(log.Items)-1]
		assert.Equal(t, [3]string{res.id, wire.DecisionGranted, "study"}, [3]string{last.ActorID, last.Decision, last.Purpose}, "the FHIR read is in the patient's access log")
		assert.ElementsMatch(t, []string{deviceID + ":1", deviceID + ":2"}, last.ReadingIDs)

		// The Observation carries what the researcher needs to check it.
		var o struct {
			ID        string `json:"id"`
			Extension []struct {
				URL       string `json:"url"`
				Extension []struct {
					URL               string `json:"url"`
					ValueBase64Binary string `json:"valueBase64Binary"`
					ValueString       string `json:"valueString"`
				} `json:"extension"`
			} `json:"extension"`
		}
		require.NoError(t, json.Unmarshal(b.Entry[0].Resource, &o))
		signed := map[string]string{}
		for _, e := range o.Extension {
			if e.URL == fhir.ExtSignedReading {
				for _, x := range e.Extension {
					signed[x.URL] = x.ValueBase64Binary + x.ValueString
				}
			}
		}
		payload, err := base64.StdEncoding.DecodeString(signed["payload"])
		require.NoError(t, err)
		sig, err := base64.StdEncoding.DecodeString(signed["signature"])
		require.NoError(t, err)
		sum := sha256.Sum256(payload)
		assert.Equal(t, o.ID, hex.EncodeToString(sum[:]), "the Observation id is the SHA-256 of the signed bytes")
		pub, err := envelope.ParsePublicKey([]byte(signed["devicePublicKey"]))
		require.NoError(t, err)
		assert.NoError(t, envelope.VerifyDigest(pub, sum[:], sig), "the device signature verifies")
		assert.True(t, devKey.PublicKey.Equal(pub), "with the registered device key")
	})

	t.Run("a read outside the consent is denied, and logged too", func(t *testing.T) {
		var oo struct {
			Issue []struct {
				Details struct {
					Coding []struct{ System, Code string }
				}
			}
		}
		get(t, res, "/fhir/R4/Observation/"+hashes[deviceID+":3"]+"?purpose=study", http.StatusForbidden, &oo)
		var accessID string
		for _, c := range oo.Issue[0].Details.Coding {
			if c.System == "urn:medprov:access" {
				accessID = c.Code
			}
		}
		require.NotEmpty(t, accessID, "the OperationOutcome names the denial's access event")
		log, err := reg.c.AccessLog(ctx, pat.id, client.PageRequest{})
		require.NoError(t, err)
		assert.True(t, slices.ContainsFunc(log.Items, func(e wire.AccessEvent) bool {
			return e.ID == accessID && e.Decision == wire.DecisionDenied && e.Reason == wire.ReasonDataTypeNotConsented
		}), "the denial is in the access log")
	})

	t.Run("the patient reads its own Observations, Devices and Provenances", func(t *testing.T) {
		var obs, devs, provs struct {
			Total *int `json:"total"`
		}
		get(t, pat, "/fhir/R4/Observation?patient="+p+"&code=8867-4,59408-5,8310-5&purpose=patrqt", http.StatusOK, &obs)
		assert.Equal(t, 4, *obs.Total)
		get(t, pat, "/fhir/R4/Device?patient="+p, http.StatusOK, &devs)
		assert.Equal(t, 1, *devs.Total)
		get(t, pat, "/fhir/R4/Provenance?target=Observation/"+hashes[deviceID+":4"], http.StatusOK, &provs)
		assert.Equal(t, 1, *provs.Total)
	})

	t.Run("audit events list the consent and every access decision", func(t *testing.T) {
		var b struct {
			Total *int `json:"total"`
			Entry []struct {
				Resource struct {
					Outcome string `json:"outcome"`
					Agent   []struct {
						Who struct {
							Identifier struct{ Value string }
						}
					}
				}
			}
		}
		get(t, reg, "/fhir/R4/AuditEvent?patient="+p+"&agent="+url.QueryEscape(res.id), http.StatusOK, &b)
		var outcomes []string
		for _, e := range b.Entry {
			assert.Equal(t, res.id, e.Resource.Agent[0].Who.Identifier.Value)
			outcomes = append(outcomes, e.Resource.Outcome)
		}
		assert.ElementsMatch(t, []string{"0", "4"}, outcomes, "the researcher's grant and denial")
		get(t, pat, "/fhir/R4/AuditEvent?patient="+p, http.StatusOK, &b)
		assert.Equal(t, 4, *b.Total, "the consent's grant, the researcher's two reads, the patient's own")
	})

	t.Run("medprov audit export --format fhir writes the patient's collection Bundle", func(t *testing.T) {
		out := filepath.Join(dir, "patient.fhir.json")
		msg, ok := medprovCLI(t, "--gateway", baseURL, "audit", "export", "--format", "fhir", "--patient", pat.id,
			"--actor", reg.id, "--key", reg.keyFile, "--out", out)
		require.True(t, ok, msg)
		b, err := os.ReadFile(out)
		require.NoError(t, err)
		v.Add(t, "audit export --format fhir", b)
		var coll struct {
			Type  string `json:"type"`
			Entry []struct {
				Resource struct{ ResourceType string } `json:"resource"`
			} `json:"entry"`
		}
		require.NoError(t, json.Unmarshal(b, &coll))
		assert.Equal(t, "collection", coll.Type)
		count := map[string]int{}
		for _, e := range coll.Entry {
			count[e.Resource.ResourceType]++
		}
		assert.Equal(t, map[string]int{"Consent": 1, "AuditEvent": 4, "Provenance": 4}, count)
		_, ok = medprovCLI(t, "--gateway", baseURL, "audit", "export", "--format", "fhir", "--patient", pat.id,
			"--actor", res.id, "--key", res.keyFile, "--out", filepath.Join(dir, "refused.json"))
		assert.False(t, ok, "a researcher cannot export a patient's audit trail")
	})

	t.Run("the patient's offline audit bundle verifies, FHIR reads re-derived", func(t *testing.T) {
		trust, bundle := filepath.Join(dir, "trust.json"), filepath.Join(dir, "bundle.tar")
		out, ok := medprovCLI(t, "--gateway", baseURL, "audit", "trust", "--actor", reg.id, "--key", reg.keyFile, "--out", trust)
		require.True(t, ok, out)
		out, ok = medprovCLI(t, "--gateway", baseURL, "audit", "export", "--actor", reg.id, "--key", reg.keyFile, "--patient", pat.id, "--out", bundle)
		require.True(t, ok, out)
		out, ok = medprovCLI(t, "--json", "audit", "verify", bundle, "--trust", trust)
		require.True(t, ok, out)
		var rep audit.Report
		require.NoError(t, json.Unmarshal([]byte(out), &rep))
		assert.True(t, rep.OK, "the FHIR reads' access events leave the bundle verifiable")
		var readDecisions int
		for _, c := range rep.Checks {
			if c.Name == "access.decision" && c.OK {
				readDecisions++
			}
		}
		assert.GreaterOrEqual(t, readDecisions, 2, "the FHIR reads' decisions are re-derived from their signed GETs")
	})

	t.Run("a reading the device signed as a FHIR Observation is posted and read back", func(t *testing.T) {
		nonce, err := client.NewNonce()
		require.NoError(t, err)
		signed, err := payload.FHIR(wire.ReadingPayload{DeviceID: deviceID, Seq: 5, Type: "spo2", Unit: "%", Value: json.RawMessage("97"),
			MeasuredAt: time.Now().Add(-time.Second).UTC().Format(time.RFC3339), Nonce: nonce})
		require.NoError(t, err)
		e, err := envelope.Sign(devKey, signed)
		require.NoError(t, err)
		body, err := json.Marshal(e)
		require.NoError(t, err)
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, baseURL+"/fhir/R4/Observation?wait=commit", bytes.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		answer, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		require.Equal(t, http.StatusCreated, resp.StatusCode, "POST /fhir/R4/Observation: %s", answer)
		assert.Equal(t, fhir.MediaType, resp.Header.Get("Content-Type"))
		v.Add(t, "POST /fhir/R4/Observation", answer)
		sum := sha256.Sum256(signed)
		hash := hex.EncodeToString(sum[:])
		loc, err := url.Parse(resp.Header.Get("Location"))
		require.NoError(t, err)
		assert.Equal(t, "/fhir/R4/Observation/"+hash, loc.Path, "Location names the Observation, whose id is the hash of the signed bytes")

		var o struct {
			ID            string `json:"id"`
			ValueQuantity struct {
				Value      json.Number `json:"value"`
				Unit, Code string
			} `json:"valueQuantity"`
			Extension []struct {
				URL       string `json:"url"`
				Extension []struct {
					URL               string `json:"url"`
					ValueBase64Binary string `json:"valueBase64Binary"`
				} `json:"extension"`
			} `json:"extension"`
		}
		get(t, pat, loc.Path+"?purpose=patrqt", http.StatusOK, &o)
		assert.Equal(t, hash, o.ID)
		assert.Equal(t, [3]string{"97", "%", "%"}, [3]string{o.ValueQuantity.Value.String(), o.ValueQuantity.Unit, o.ValueQuantity.Code})
		var released []byte
		for _, x := range o.Extension {
			for _, y := range x.Extension {
				if x.URL == fhir.ExtSignedReading && y.URL == "payload" {
					released, err = base64.StdEncoding.DecodeString(y.ValueBase64Binary)
					require.NoError(t, err)
				}
			}
		}
		assert.Equal(t, signed, released, "the Observation carries the exact bytes the device signed")
	})

	v.Check(t)
	assert.Positive(t, v.Count(), "the story validated what it saw")
}

// readmeBlock returns the shell block between <!-- name:begin --> and
// <!-- name:end --> in the README.
func readmeBlock(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(RepoRoot(t), "README.md"))
	require.NoError(t, err)
	_, after, ok := strings.Cut(string(b), "<!-- "+name+":begin -->")
	require.True(t, ok, "README has no %s:begin marker", name)
	block, _, ok := strings.Cut(after, "<!-- "+name+":end -->")
	require.True(t, ok, "README has no %s:end marker", name)
	block = strings.TrimSpace(block)
	return strings.TrimSuffix(strings.TrimPrefix(block, "```sh"), "```")
}

// TestFHIRReadme runs the README's FHIR examples, as written, after its
// quickstart (whose patient, device and reading they read), against the
// gateway binary: each answers the resource it names, valid R4, and no
// OperationOutcome.
func TestFHIRReadme(t *testing.T) {
	for _, tool := range []string{"openssl", "curl", "base64", "sha256sum"} {
		_, err := exec.LookPath(tool)
		require.NoError(t, err, "the README's FHIR examples need %s on PATH", tool)
	}
	g := NewGateway(t)
	g.Start(t)
	script := quickstart(t) + "\necho\n" + readmeBlock(t, "fhir")
	cmd := exec.CommandContext(t.Context(), "bash", "-euo", "pipefail", "-c", script)
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(),
		"PATH="+filepath.Dir(Binary(t))+string(os.PathListSeparator)+os.Getenv("PATH"),
		"MEDPROV_GATEWAY="+g.URL(), "MEDPROV_ADMIN_TOKEN="+g.AdminToken)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "the README's FHIR examples failed:\n%s", out)
	v := fhirtest.New(t)
	var types []string
	for i, line := range strings.Split(string(out), "\n") {
		if !strings.HasPrefix(line, "{") || !strings.Contains(line, `"resourceType"`) {
			continue
		}
		var r struct {
			ResourceType string `json:"resourceType"`
			Total        *int   `json:"total"`
		}
		require.NoError(t, json.Unmarshal([]byte(line), &r), "line %d: %s", i, line)
		types = append(types, r.ResourceType)
		if r.Total != nil && !strings.Contains(line, "/fhir/R4/Consent?") { // the quickstart grants no consent
			assert.Positive(t, *r.Total, "line %d finds something: %s", i, line)
		}
		v.Add(t, "readme line", []byte(line))
	}
	assert.Equal(t, []string{"CapabilityStatement", "Bundle", "Bundle", "Observation", "Bundle", "Bundle", "Bundle", "Bundle"}, types,
		"what the examples answer:\n%s", out)
}
