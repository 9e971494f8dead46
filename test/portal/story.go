// Package portal is the portal's story in a real browser: four people
// (an operator, a patient, a researcher and a regulator) are invited,
// create passkeys, sign in and do their part through the pages of a
// running gateway, and every step is checked on the pages and through the
// API. test/e2e runs it against the medprov binary on the embedded default
// and on Fabric with kubo, like the scenario suite.
package portal

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/medprov/medprov/client"
	"github.com/medprov/medprov/envelope"
	"github.com/medprov/medprov/internal/browser"
	"github.com/medprov/medprov/internal/testkit"
	"github.com/medprov/medprov/wire"
)

// Env is the gateway the story runs against.
type Env struct {
	// URL is the portal's origin as people reach it, http://localhost:PORT
	// (a secure context without TLS, and the relying party's origin).
	URL string
	// AdminToken is the gateway's admin token: it sets the relying party
	// and issues the invitations.
	AdminToken string
	// Prefix makes actor and device IDs unique on a shared ledger.
	Prefix string
	// Screenshots, if set, is the directory the README's screenshots are
	// written to (one per role).
	Screenshots string
}

// person is one of the story's people: a browser profile of their own
// (cookies), with a virtual platform authenticator holding their passkey.
type person struct {
	id   string
	role string
	page *browser.Page
	auth *browser.Authenticator
}

// Run tells the story. Its subtests depend on each other in order.
func Run(t *testing.T, env Env) {
	began := time.Now()
	admin, err := client.New(env.URL, client.WithAdminToken(env.AdminToken))
	require.NoError(t, err)
	_, err = admin.SetRelyingParty(t.Context(), "localhost", []string{env.URL})
	require.NoError(t, err)

	b := browser.Start(t)
	axe := browser.LoadAxe(t, browser.AxePath())
	id := func(s string) string { return env.Prefix + s }
	people := map[string]*person{}
	for _, p := range []struct{ id, role string }{
		{id("operator-1"), wire.RoleOperator},
		{id("patient-1"), wire.RolePatient},
		{id("researcher-1"), wire.RoleResearcher},
		{id("regulator-1"), wire.RoleRegulator},
	} {
		page := b.NewProfilePage(t)
		people[p.role] = &person{id: p.id, role: p.role, page: page, auth: page.VirtualAuthenticator()}
	}
	// Each subtest uses the people's tabs, which live as long as the story.
	step := func(t *testing.T) {
		for _, p := range people {
			p.page.Use(t)
		}
	}
	op, pat, res, reg := people[wire.RoleOperator], people[wire.RolePatient], people[wire.RoleResearcher], people[wire.RoleRegulator]
	shot := func(t *testing.T, p *browser.Page, name string) {
		t.Helper()
		if env.Screenshots == "" {
			return
		}
		require.NoError(t, os.MkdirAll(env.Screenshots, 0o755))
		p.Screenshot(filepath.Join(env.Screenshots, name))
	}
	// open loads path in p's browser and checks the page: status 200,
	// accessible, no script error or CSP violation.
	open := func(t *testing.T, p *person, path string) {
		t.Helper()
		require.Equal(t, http.StatusOK, p.page.Navigate(env.URL+path), path)
		p.page.WaitVisible("h1")
		p.page.RequireAccessible(axe)
		assert.Empty(t, unexpected(p.page.Errors()), path)
	}
	// act submits the signed form sel and returns its status element's
	// state and text once the action is done. Actions with data-done
	// reload the page: the outcome is the fixed sentence at its top.
	act := func(t *testing.T, p *person, sel string) (string, string) {
		t.Helper()
		reloads := p.page.Attribute(sel, "data-done") != ""
		p.page.Click(sel + ` button[type="submit"]`)
		if reloads {
			p.page.WaitVisible(`#flash, ` + sel + ` .status[data-done]`)
			if browser.Eval[bool](p.page, `!!document.getElementById("flash")`) {
				return "ok", p.page.Text("#flash")
			}
		} else {
			p.page.WaitVisible(sel + ` .status[data-done]`)
		}
		return p.page.Attribute(sel+" .status", "data-state"), p.page.Text(sel + " .status")
	}
	setValue := func(p *person, sel, v string) {
		browser.Eval[bool](p.page, fmt.Sprintf(`(function(){var e=document.querySelector(%q);e.value=%q;return true})()`, sel, v))
	}

	t.Run("each person enrols a passkey from an invitation and signs in", func(t *testing.T) {
		step(t)
		for _, p := range []*person{op, pat, res, reg} {
			inv, err := admin.Invite(t.Context(), wire.InviteRequest{ID: p.id, Role: p.role})
			require.NoError(t, err)
			open(t, p, inv.Path)
			assert.Contains(t, p.page.Text("main"), p.id, "the invitation says whom it enrols")
			p.page.Click("#create-passkey")
			p.page.WaitVisible("#status[data-done]")
			require.Equal(t, "ok", p.page.Attribute("#status", "data-state"), p.page.Text("#status"))
			require.Len(t, p.auth.Credentials(), 1)

			open(t, p, "/signin")
			p.page.Click("#sign-in")
			p.page.WaitVisible("#signed-in-as")
			assert.Equal(t, p.id, p.page.Text("#signed-in-as"))
			assert.Equal(t, env.URL+"/"+p.role, p.page.Location(), "sign-in leads to the role's page")
			p.page.RequireAccessible(axe)
		}
	})

	t.Run("a used invitation link says so on load", func(t *testing.T) {
		step(t)
		inv, err := admin.Invite(t.Context(), wire.InviteRequest{ID: id("patient-x"), Role: wire.RolePatient})
		require.NoError(t, err)
		p := b.NewProfilePage(t)
		p.VirtualAuthenticator()
		require.Equal(t, http.StatusOK, p.Navigate(env.URL+inv.Path))
		p.Click("#create-passkey")
		p.WaitVisible("#status[data-done]")
		require.Equal(t, "ok", p.Attribute("#status", "data-state"))
		assert.Equal(t, http.StatusNotFound, p.Navigate(env.URL+inv.Path))
		p.WaitVisible("#invite-invalid")
		assert.Zero(t, browser.Eval[int](p, `document.querySelectorAll("#create-passkey").length`), "no button to press")
	})

	devKey := testkit.MustKey(t)
	deviceID := id("oximeter-1")
	t.Run("the operator registers a device from its PEM key file", func(t *testing.T) {
		step(t)
		pemBytes, err := envelope.MarshalPublicKey(&devKey.PublicKey)
		require.NoError(t, err)
		keyFile := filepath.Join(t.TempDir(), "oximeter-1.pub.pem")
		require.NoError(t, os.WriteFile(keyFile, pemBytes, 0o600))
		open(t, op, "/operator")
		op.page.SendKeys("#device-id", deviceID)
		op.page.SendKeys("#device-type", "pulse-oximeter")
		op.page.SendKeys("#device-patient", pat.id)
		_, err = chromedp.Run(op.page.Context(), chromedp.SetUploadFiles(chromedp.CSS("#device-key-file"), []string{keyFile}))
		require.NoError(t, err)
		state, text := act(t, op, "#register-form")
		require.Equal(t, "ok", state, text)
		row := fmt.Sprintf(`#devices-table tr[data-device=%q]`, deviceID)
		assert.Contains(t, op.page.Text(row), "active")
		assert.Equal(t, "0", op.page.Attribute(row+" td[data-count]", "data-count"))
	})

	const readings = 3
	t.Run("the device sends readings and the operator sees them counted", func(t *testing.T) {
		step(t)
		dev, err := client.New(env.URL)
		require.NoError(t, err)
		for seq := uint64(1); seq <= readings; seq++ {
			r, err := client.NewReading(deviceID, seq, "heart_rate", "bpm", 60+float64(seq), time.Now())
			require.NoError(t, err)
			e, err := client.SignReading(devKey, r)
			require.NoError(t, err)
			rec, err := dev.SubmitReading(t.Context(), e, client.WaitForCommit())
			require.NoError(t, err)
			require.Equal(t, wire.StatusRecorded, rec.Status)
		}
		open(t, op, "/operator")
		row := fmt.Sprintf(`#devices-table tr[data-device=%q]`, deviceID)
		assert.Equal(t, fmt.Sprint(readings), op.page.Attribute(row+" td[data-count]", "data-count"))
		assert.Contains(t, op.page.Text(row), "seq 3")
		shot(t, op.page, "portal-operator.png")
	})

	today := time.Now().UTC()
	t.Run("the patient sees the device and grants the researcher consent", func(t *testing.T) {
		step(t)
		open(t, pat, "/patient")
		assert.Contains(t, pat.page.Text("#devices"), deviceID)
		// With the keyboard alone: Tab to the form, type, Space ticks a box,
		// dates are typed as a person types them, Enter submits.
		p := pat.page
		tabTo := func(id string) {
			for range 80 {
				if p.Focused() == id {
					return
				}
				p.Keys(kb.Tab)
			}
			require.Equal(t, id, p.Focused(), "Tab reaches #%s", id)
		}
		tabTo("grantee")
		p.Keys(res.id)
		p.Keys(kb.Tab)
		require.Equal(t, "purpose", p.Focused(), "the purpose follows the researcher in the focus order")
		p.Keys("study.cardio")
		for range 3 {
			p.Keys(kb.Tab)
			if browser.Eval[string](p, `document.activeElement.value`) == "heart_rate" {
				break
			}
		}
		require.Equal(t, "heart_rate", browser.Eval[string](p, `document.activeElement.value`), "Tab reaches the data types")
		p.Keys(" ")
		require.True(t, browser.Eval[bool](p, `document.querySelector('#grant-form input[value="heart_rate"]').checked`), "Space ticks the box")
		typeDate := func(id string, d time.Time) {
			tabTo(id)
			p.Keys(d.Format("01022006")) // the date field's own order (en-US: month, day, year)
			require.Equal(t, d.Format("2006-01-02"), p.Value("#"+id), "typed date in #%s", id)
		}
		typeDate("not-before", today.AddDate(0, 0, -1))
		typeDate("not-after", today.AddDate(0, 1, 0))
		tabTo("grant-submit")
		p.Keys(kb.Enter)
		p.WaitVisible(`#flash, #grant-form .status[data-done]`)
		state, text := "error", p.Text("#grant-form .status")
		if browser.Eval[bool](p, `!!document.getElementById("flash")`) {
			state, text = "ok", p.Text("#flash")
		}
		require.Equal(t, "ok", state, text)
		assert.Contains(t, text, "consent was recorded")
		assert.Contains(t, pat.page.Text("#consent-table"), res.id)
		assert.Contains(t, pat.page.Text("#consent-table"), "active")
	})

	// within asks for the readings measured since the consent began.
	within := func(p *person) {
		setValue(p, "#from", today.AddDate(0, 0, -1).Format("2006-01-02"))
		setValue(p, "#to", today.Format("2006-01-02"))
	}
	t.Run("the researcher is granted the readings and the browser verifies each", func(t *testing.T) {
		step(t)
		open(t, res, "/researcher")
		res.page.SendKeys("#patient", pat.id)
		res.page.SendKeys("#purpose", "study.cardio")
		res.page.Click(`#access-form input[value="heart_rate"]`)
		within(res)
		state, text := act(t, res, "#access-form")
		require.Equal(t, "ok", state, text)
		assert.Contains(t, text, fmt.Sprintf("%d of %d verified in your browser", readings, readings))
		assert.Equal(t, readings, browser.Eval[int](res.page, `document.querySelectorAll('#access-result-table tr[data-verified="true"]').length`))
		res.page.RequireAccessible(axe)
		shot(t, res.page, "portal-researcher.png")

		t.Run("a request beyond the consent is denied, with the reason", func(t *testing.T) {
			step(t)
			step(t)
			open(t, res, "/researcher")
			res.page.SendKeys("#patient", pat.id)
			res.page.SendKeys("#purpose", "study.cardio")
			res.page.Click(`#access-form input[value="glucose"]`)
			within(res)
			state, text := act(t, res, "#access-form")
			assert.Equal(t, "error", state)
			assert.Contains(t, text, "data type not consented")
			assert.Equal(t, wire.ReasonDataTypeNotConsented, res.page.Attribute("#access-form .status", "data-reason"))
		})
	})

	t.Run("the patient sees who accessed the data and downloads the log", func(t *testing.T) {
		step(t)
		open(t, pat, "/patient")
		log := pat.page.Text("#access-table")
		assert.Contains(t, log, res.id)
		assert.Contains(t, log, wire.DecisionGranted)
		assert.Contains(t, log, wire.DecisionDenied)
		csv := browser.Eval[string](pat.page, `fetch("/patient/access-log.csv").then(r => r.text())`)
		assert.True(t, strings.HasPrefix(csv, "time,accessId,actorId,"), csv)
		assert.Contains(t, csv, res.id)
		assert.Equal(t, 2, strings.Count(strings.TrimSpace(csv), "\n"), "a header and two events")
		var events []wire.AccessEvent
		raw := browser.Eval[string](pat.page, `fetch("/patient/access-log.json").then(r => r.text())`)
		require.NoError(t, json.Unmarshal([]byte(raw), &events))
		require.Len(t, events, 2)
		assert.Len(t, events[0].ReadingIDs, readings)

		t.Run("and reads their own readings, which is logged too", func(t *testing.T) {
			step(t)
			step(t)
			state, text := act(t, pat, "#readings-form")
			require.Equal(t, "ok", state, text)
			assert.Equal(t, readings, browser.Eval[int](pat.page, `document.querySelectorAll('#readings-result-table tr[data-verified="true"]').length`))
			shot(t, pat.page, "portal-patient.png")
			open(t, pat, "/patient")
			assert.Equal(t, 3, browser.Eval[int](pat.page, `document.querySelectorAll("#access-table tbody tr").length`))
			assert.Contains(t, pat.page.Text("#access-table"), pat.id, "the patient's own access is in the log")
		})
	})

	var readingID string
	t.Run("the regulator audits, looks a reading up and verifies it end to end", func(t *testing.T) {
		step(t)
		open(t, reg, "/regulator?patientId="+pat.id)
		assert.Positive(t, browser.Eval[int](reg.page, `document.querySelectorAll("#audit-table tbody tr").length`))
		assert.Positive(t, browser.Eval[int](reg.page, `document.querySelectorAll('#audit-table tr[data-type="`+wire.AuditAccessGranted+`"]').length`))
		assert.Contains(t, reg.page.Text("#actors-table"), pat.id)
		assert.Contains(t, reg.page.Text("#devices-table"), deviceID)
		shot(t, reg.page, "portal-regulator.png")

		readingID = wire.ReadingID(deviceID, 2)
		open(t, reg, "/regulator/readings/"+readingID)
		assert.Contains(t, reg.page.Text("main"), deviceID)
		open(t, reg, "/regulator/readings/"+readingID+"?verify=1")
		checks := browser.Eval[map[string]string](reg.page, `Object.fromEntries([...document.querySelectorAll("#verify-table tr[data-check]")].map(r => [r.dataset.check, r.dataset.ok]))`)
		for _, name := range []string{"transaction_committed", "device_signature", "ciphertext_cid", "ciphertext_hash", "plaintext_hash"} {
			assert.Equal(t, "true", checks[name], name)
		}
		shot(t, reg.page, "portal-verify.png")
	})

	t.Run("tampered passkey assertions are refused and nothing is recorded", func(t *testing.T) {
		step(t)
		for _, tc := range []struct {
			name   string
			tamper browser.Tamper
			want   string
		}{
			{"a bogus signature", browser.Tamper{BogusSignature: true}, "signature does not verify"},
			{"the user-verified flag cleared", browser.Tamper{ClearUV: true}, "user verification"},
			{"the user-present flag cleared", browser.Tamper{ClearUP: true}, "user presence"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				step(t)
				open(t, pat, "/patient")
				before := browser.Eval[int](pat.page, `document.querySelectorAll("#consent-table tbody tr").length`)
				pat.auth.SetTamper(tc.tamper)
				defer pat.auth.SetTamper(browser.Tamper{})
				pat.page.SendKeys("#grantee", res.id)
				pat.page.SendKeys("#purpose", "study.sleep")
				pat.page.Click(`#grant-form input[value="spo2"]`)
				setValue(pat, "#not-before", today.Format("2006-01-02"))
				setValue(pat, "#not-after", today.AddDate(0, 1, 0).Format("2006-01-02"))
				state, text := act(t, pat, "#grant-form")
				assert.Equal(t, "error", state)
				assert.Contains(t, strings.ToLower(text), tc.want)
				open(t, pat, "/patient")
				assert.Equal(t, before, browser.Eval[int](pat.page, `document.querySelectorAll("#consent-table tbody tr").length`))
			})
		}
	})

	t.Run("the patient withdraws consent and the researcher is refused", func(t *testing.T) {
		step(t)
		open(t, pat, "/patient")
		state, text := act(t, pat, "#consent-table form.signed")
		require.Equal(t, "ok", state, text)
		assert.Contains(t, pat.page.Text("#consent-table"), wire.StatusRevoked)

		open(t, res, "/researcher")
		res.page.SendKeys("#patient", pat.id)
		res.page.SendKeys("#purpose", "study.cardio")
		res.page.Click(`#access-form input[value="heart_rate"]`)
		within(res)
		state, _ = act(t, res, "#access-form")
		assert.Equal(t, "error", state)
		assert.Equal(t, wire.ReasonConsentRevoked, res.page.Attribute("#access-form .status", "data-reason"))
	})

	t.Run("the operator revokes the device", func(t *testing.T) {
		step(t)
		open(t, op, "/operator")
		row := fmt.Sprintf(`#devices-table tr[data-device=%q]`, deviceID)
		state, text := act(t, op, row+" form.signed")
		require.Equal(t, "ok", state, text)
		assert.Contains(t, op.page.Text(row), wire.StatusRevoked)
	})

	t.Run("the patient erases their data", func(t *testing.T) {
		step(t)
		open(t, pat, "/patient")
		pat.page.Click("#erase-confirm")
		state, text := act(t, pat, "#erase-form")
		require.Equal(t, "ok", state, text)
		assert.Contains(t, text, "erased")
		open(t, reg, "/regulator/readings/"+readingID+"?verify=1")
		assert.Equal(t, "false", reg.page.Attribute(`#verify-table tr[data-check="plaintext_hash"]`, "data-ok"), "the plaintext is gone")
		assert.Equal(t, "true", reg.page.Attribute(`#verify-table tr[data-check="device_signature"]`, "data-ok"), "the evidence remains")
	})

	t.Run("a person signs out and the pages ask to sign in again", func(t *testing.T) {
		step(t)
		open(t, res, "/researcher")
		res.page.Click("#sign-out")
		res.page.WaitVisible(".brand")
		require.Eventually(t, func() bool { return res.page.Location() == env.URL+"/" }, 10*time.Second, 50*time.Millisecond)
		res.page.Navigate(env.URL + "/researcher")
		assert.True(t, strings.HasPrefix(res.page.Location(), env.URL+"/signin"), res.page.Location())
	})

	t.Run("a page for another role is refused", func(t *testing.T) {
		step(t)
		assert.Equal(t, http.StatusForbidden, pat.page.Navigate(env.URL+"/regulator"))
		assert.Contains(t, pat.page.Text("main"), "not for your role")
	})
	t.Logf("the portal story took %s", time.Since(began).Round(time.Millisecond))
}

// unexpected leaves out of msgs the browser's network lines about API
// refusals (4xx from /v1/): the story provokes those, and the pages show
// them as sentences. Script errors, CSP violations and failures of pages
// or assets stay.
func unexpected(msgs []browser.ConsoleMessage) []browser.ConsoleMessage {
	var out []browser.ConsoleMessage
	for _, m := range msgs {
		if m.Source == "network" && strings.Contains(m.URL, "/v1/") && strings.Contains(m.Text, "status of 4") {
			continue
		}
		out = append(out, m)
	}
	return out
}
