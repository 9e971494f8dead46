// portal.js: the medprov portal's only script. It does what pages cannot do
// without a script: the passkey ceremonies (enrolment, sign-in, and the
// signature of every action a person takes), and checking released
// readings in the browser (SHA-256 and the device's ECDSA signature, with
// WebCrypto) before showing them. Everything else is server-rendered.
"use strict";

(function () {
  // ---- encodings ----------------------------------------------------------
  function b64urlToBytes(s) {
    var b64 = s.replace(/-/g, "+").replace(/_/g, "/");
    while (b64.length % 4) { b64 += "="; }
    return b64ToBytes(b64);
  }
  function b64ToBytes(b64) {
    var bin = atob(b64);
    var out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) { out[i] = bin.charCodeAt(i); }
    return out;
  }
  function bytesToB64(buf) {
    var bytes = new Uint8Array(buf);
    var bin = "";
    for (var i = 0; i < bytes.length; i++) { bin += String.fromCharCode(bytes[i]); }
    return btoa(bin);
  }
  function bytesToB64url(buf) {
    return bytesToB64(buf).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  function hex(buf) {
    return Array.prototype.map.call(new Uint8Array(buf), function (b) {
      return (b < 16 ? "0" : "") + b.toString(16);
    }).join("");
  }

  // ---- talking to the API -------------------------------------------------
  // APIError is a refusal from the gateway, with its message for people.
  function APIError(message, status, body) {
    this.name = "APIError"; this.message = message; this.status = status; this.body = body;
  }

  function request(method, url, body) {
    return fetch(url, {
      method: method,
      headers: { "Content-Type": "application/json", "Accept": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      cache: "no-store"
    }).then(function (res) {
      return res.json().catch(function () { return null; }).then(function (data) {
        if (!res.ok) {
          var msg = data && data.error && data.error.message;
          throw new APIError(msg ? capitalise(msg) + "." : "The server refused the request (" + res.status + ").", res.status, data);
        }
        return data;
      });
    });
  }
  function post(url, body) { return request("POST", url, body); }

  function capitalise(s) { return s.charAt(0).toUpperCase() + s.slice(1); }

  // explain turns a failure into a sentence for the person at the device.
  function explain(err) {
    if (err instanceof APIError) { return err.message; }
    switch (err && err.name) {
      case "NotAllowedError":
        return "Nothing was signed. The request was cancelled or timed out, or your device could not confirm it was you (fingerprint, face or PIN). You can try again.";
      case "InvalidStateError":
        return "This device already holds a passkey for this invitation.";
      case "SecurityError":
        return "Passkeys cannot be used on this address. Open the portal at the address your organisation gave you.";
      case "NotSupportedError":
        return "This browser or device cannot use the kind of passkey needed. Try an up-to-date browser.";
      case "TypeError":
        return "The server could not be reached. Check your connection and try again.";
      default:
        return "Something went wrong: " + (err && err.message ? err.message : String(err));
    }
  }

  function setStatus(el, state, text) {
    el.textContent = "";
    el.setAttribute("data-state", state);
    var p = document.createElement("p");
    p.textContent = text;
    el.appendChild(p);
    return el;
  }

  function finish(el) {
    el.setAttribute("data-done", "");
    el.focus();
  }

  function needWebAuthn() {
    if (!window.PublicKeyCredential || !navigator.credentials) {
      throw { name: "NotSupportedError", message: "no WebAuthn" };
    }
  }

  // ---- enrolment ----------------------------------------------------------
  // creationOptions turns the gateway's JSON options into what
  // navigator.credentials.create takes.
  function creationOptions(json) {
    if (window.PublicKeyCredential && typeof PublicKeyCredential.parseCreationOptionsFromJSON === "function") {
      return PublicKeyCredential.parseCreationOptionsFromJSON(json);
    }
    var o = Object.assign({}, json);
    o.challenge = b64urlToBytes(json.challenge);
    o.user = Object.assign({}, json.user, { id: b64urlToBytes(json.user.id) });
    if (json.excludeCredentials) {
      o.excludeCredentials = json.excludeCredentials.map(function (c) {
        return Object.assign({}, c, { id: b64urlToBytes(c.id) });
      });
    }
    return o;
  }

  function enrol(button, status, token) {
    var base = "/v1/enrol/" + encodeURIComponent(token);
    button.disabled = true;
    status.removeAttribute("data-done");
    setStatus(status, "working", "Follow the steps your device shows…");
    post(base + "/options").then(function (json) {
      needWebAuthn();
      return navigator.credentials.create({ publicKey: creationOptions(json) });
    }).then(function (cred) {
      return post(base, {
        credentialId: bytesToB64url(cred.rawId),
        clientDataJSON: bytesToB64url(cred.response.clientDataJSON),
        attestationObject: bytesToB64url(cred.response.attestationObject)
      });
    }).then(function (receipt) {
      setStatus(status, "ok", "Your passkey is ready.");
      var who = document.createElement("p");
      who.appendChild(document.createTextNode("You are enrolled as "));
      var strong = document.createElement("strong");
      strong.id = "actor-id";
      strong.textContent = receipt.actorId;
      who.appendChild(strong);
      who.appendChild(document.createTextNode("."));
      status.appendChild(who);
      button.hidden = true;
      var after = document.getElementById("after-enrol");
      if (after) { after.hidden = false; }
    }, function (err) {
      setStatus(status, "error", explain(err));
      button.disabled = false;
    }).then(function () { finish(status); });
  }

  // ---- assertions ---------------------------------------------------------
  // assertion has the passkey sign payload (bytes): challenge =
  // SHA-256(payload), as the chaincode checks. allow lists the credential
  // ids that may sign (empty: any passkey of this site).
  function assertion(payload, allow, rpId) {
    needWebAuthn();
    return crypto.subtle.digest("SHA-256", payload).then(function (challenge) {
      var opts = {
        challenge: new Uint8Array(challenge),
        userVerification: "required",
        timeout: 120000,
        allowCredentials: allow.map(function (id) { return { type: "public-key", id: b64urlToBytes(id) }; })
      };
      if (rpId) { opts.rpId = rpId; }
      return navigator.credentials.get({ publicKey: opts });
    }).then(function (cred) {
      return {
        payload: bytesToB64(payload),
        webauthn: {
          credentialId: bytesToB64url(cred.rawId),
          authenticatorData: bytesToB64url(cred.response.authenticatorData),
          clientDataJSON: bytesToB64url(cred.response.clientDataJSON),
          signature: bytesToB64url(cred.response.signature)
        }
      };
    });
  }

  function nonce() {
    var b = new Uint8Array(18);
    crypto.getRandomValues(b);
    return bytesToB64url(b);
  }

  // signAction signs an action payload (DESIGN.md, "Actor actions") with
  // the signed-in person's passkey: header first, then the action's fields.
  function signAction(action, fields) {
    var body = document.body;
    var p = { action: action, actorId: body.getAttribute("data-actor"), issuedAt: new Date().toISOString(), nonce: nonce() };
    Object.keys(fields).forEach(function (k) { p[k] = fields[k]; });
    var creds = (body.getAttribute("data-credentials") || "").split(" ").filter(Boolean);
    return assertion(new TextEncoder().encode(JSON.stringify(p)), creds);
  }

  // ---- sign-in and sign-out -----------------------------------------------
  function signIn(button, status) {
    button.disabled = true;
    status.removeAttribute("data-done");
    setStatus(status, "working", "Follow the steps your device shows…");
    post("/v1/session/options").then(function (opts) {
      return assertion(b64ToBytes(opts.payload), [], opts.rpId);
    }).then(function (env) {
      return post("/v1/session", env);
    }).then(function () {
      var next = new URLSearchParams(location.search).get("next");
      location.assign(next && /^\/[a-z]/.test(next) ? next : "/me");
    }, function (err) {
      setStatus(status, "error", explain(err));
      button.disabled = false;
      finish(status);
    });
  }

  function signOut() {
    request("DELETE", "/v1/session").then(function () { location.assign("/"); },
      function () { location.assign("/"); });
  }

  // ---- signed forms -------------------------------------------------------
  // fieldsOf reads a signed form into the action's fields: inputs by name;
  // data-list inputs collect into an array (data-split ones are split on
  // commas); data-time="start"|"end" dates become the start or the end of
  // that day in UTC (RFC 3339); data-skip inputs are not sent; data-number
  // inputs are numbers.
  function fieldsOf(form) {
    var out = {};
    Array.prototype.forEach.call(form.elements, function (el) {
      if (!el.name || el.hasAttribute("data-skip") || el.disabled) { return; }
      if ((el.type === "checkbox" || el.type === "radio") && !el.checked) {
        if (el.hasAttribute("data-list") && !out[el.name]) { out[el.name] = []; }
        return;
      }
      var v = el.value;
      if (el.hasAttribute("data-list")) {
        var list = out[el.name] || [];
        var items = el.hasAttribute("data-split") ? v.split(/[\s,]+/) : [v];
        items.forEach(function (x) { x = x.trim(); if (x && list.indexOf(x) < 0) { list.push(x); } });
        out[el.name] = list;
        return;
      }
      var t = el.getAttribute("data-time");
      if (t && v) {
        v = v + (t === "end" ? "T23:59:59Z" : "T00:00:00Z");
      }
      if (el.hasAttribute("data-number")) { v = Number(v); }
      if (el.hasAttribute("data-optional") && v === "") { return; }
      out[el.name] = v;
    });
    return out;
  }

  // fillDefaults sets date inputs with data-default="N" to today + N days.
  function fillDefaults() {
    document.querySelectorAll("input[type=date][data-default]").forEach(function (el) {
      if (el.value) { return; }
      var d = new Date(Date.now() + Number(el.getAttribute("data-default")) * 86400000);
      el.value = d.toISOString().slice(0, 10);
    });
  }

  function submitSigned(form) {
    var status = form.querySelector(".status");
    var button = form.querySelector("button[type=submit]");
    var fields;
    status.removeAttribute("data-done");
    // Actions read files (a device's PEM key) before they are signed.
    var read = Promise.resolve();
    var file = form.querySelector("input[type=file][data-into]");
    if (file && file.files && file.files[0]) {
      read = file.files[0].text().then(function (text) {
        form.querySelector("[name=" + file.getAttribute("data-into") + "]").value = text.trim() + "\n";
      });
    }
    button.disabled = true;
    read.then(function () {
      fields = fieldsOf(form);
      setStatus(status, "working", "Confirm with your passkey…");
      return signAction(form.getAttribute("data-action"), fields);
    }).then(function (env) {
      setStatus(status, "working", "Recording on the ledger…");
      return post(form.getAttribute("data-endpoint"), env);
    }).then(function (res) {
      var done = form.getAttribute("data-done");
      if (done) {
        location.assign(location.pathname + "?done=" + encodeURIComponent(done));
        return;
      }
      return renderers[form.getAttribute("data-render")](res, form, status);
    }).catch(function (err) {
      if (err instanceof APIError && err.status === 403 && err.body && err.body.decision) {
        setStatus(status, "error", "Refused: " + err.body.reason.replace(/_/g, " ") + ". The refusal is recorded on the ledger (access " + err.body.accessId + ").");
        status.setAttribute("data-reason", err.body.reason);
        return;
      }
      setStatus(status, "error", explain(err));
    }).then(function () {
      button.disabled = false;
      finish(status);
    });
  }

  // ---- checking released readings in the browser --------------------------
  function pemToDER(pem) {
    var b64 = pem.replace(/-----[^-]+-----/g, "").replace(/\s+/g, "");
    return b64ToBytes(b64);
  }

  // derToRaw turns a DER ECDSA signature into r||s, 32 bytes each, which is
  // what WebCrypto verifies.
  function derToRaw(der) {
    var i = 2;
    if (der[0] !== 0x30) { throw new Error("not a DER signature"); }
    if (der[1] & 0x80) { i += der[1] & 0x7f; }
    function int() {
      if (der[i] !== 0x02) { throw new Error("not a DER integer"); }
      var n = der[i + 1];
      var v = der.slice(i + 2, i + 2 + n);
      i += 2 + n;
      while (v.length > 32 && v[0] === 0) { v = v.slice(1); }
      if (v.length > 32) { throw new Error("integer too long"); }
      var out = new Uint8Array(32);
      out.set(v, 32 - v.length);
      return out;
    }
    var r = int(), s = int();
    var raw = new Uint8Array(64);
    raw.set(r, 0); raw.set(s, 32);
    return raw;
  }

  // checkReading verifies a released reading: SHA-256 of the payload
  // equals the dataHash the ledger recorded, and the device's key verifies
  // the device's signature over the payload. It resolves to {hash, sig}.
  function checkReading(r) {
    var payload = b64ToBytes(r.payload);
    var hashOK = crypto.subtle.digest("SHA-256", payload).then(function (h) { return hex(h) === r.dataHash; });
    var sigOK = Promise.resolve().then(function () {
      if (!r.devicePublicKey) { return false; }
      return crypto.subtle.importKey("spki", pemToDER(r.devicePublicKey), { name: "ECDSA", namedCurve: "P-256" }, false, ["verify"])
        .then(function (key) {
          return crypto.subtle.verify({ name: "ECDSA", hash: "SHA-256" }, key, derToRaw(b64ToBytes(r.signature)), payload);
        });
    }).catch(function () { return false; });
    return Promise.all([hashOK, sigOK]).then(function (v) { return { hash: v[0], sig: v[1], payload: payload }; });
  }

  function cell(tr, text, cls) {
    var td = document.createElement("td");
    td.textContent = text;
    if (cls) { td.className = cls; }
    tr.appendChild(td);
    return td;
  }

  var renderers = {
    // readings shows an access grant's readings, each checked here.
    readings: function (grant, form, status) {
      var target = document.getElementById(form.getAttribute("data-target"));
      target.textContent = "";
      return Promise.all(grant.readings.map(checkReading)).then(function (checks) {
        var ok = checks.filter(function (c) { return c.hash && c.sig; }).length;
        setStatus(status, ok === checks.length ? "ok" : "error",
          "Access granted and recorded (access " + grant.accessId + ", transaction " + grant.txId.slice(0, 12) + "…). " +
          grant.count + " readings; " + ok + " of " + checks.length + " verified in your browser.");
        var table = document.createElement("table");
        table.id = form.getAttribute("data-target") + "-table";
        var cap = document.createElement("caption");
        cap.className = "sr-only";
        cap.textContent = "Released readings and their checks";
        table.appendChild(cap);
        var head = table.createTHead().insertRow();
        ["Reading", "Measured", "Type", "Value", "Hash", "Device signature"].forEach(function (h) {
          var th = document.createElement("th"); th.scope = "col"; th.textContent = h; head.appendChild(th);
        });
        var body = table.createTBody();
        grant.readings.forEach(function (r, i) {
          var c = checks[i];
          var v = {};
          try { v = readingFields(JSON.parse(new TextDecoder().decode(c.payload))); } catch (e) { v = {}; }
          var tr = body.insertRow();
          tr.setAttribute("data-reading", r.readingId);
          tr.setAttribute("data-verified", c.hash && c.sig ? "true" : "false");
          cell(tr, r.readingId);
          cell(tr, v.measuredAt || "");
          cell(tr, (v.type || "").replace(/_/g, " "));
          cell(tr, (v.value === undefined ? "" : v.value) + " " + (v.unit || ""));
          cell(tr, c.hash ? "✓ matches ledger" : "✗ differs", c.hash ? "good" : "bad");
          cell(tr, c.sig ? "✓ verified" : "✗ not verified", c.sig ? "good" : "bad");
        });
        var wrap = document.createElement("div");
        wrap.className = "table";
        wrap.tabIndex = 0;
        wrap.setAttribute("role", "region");
        wrap.setAttribute("aria-label", "Released readings");
        wrap.appendChild(table);
        target.appendChild(wrap);
        (grant.withheld || []).forEach(function (w) {
          var p = document.createElement("p");
          p.className = "help";
          p.textContent = "Withheld: " + w.readingId + " (" + w.reason.replace(/_/g, " ") + ")";
          target.appendChild(p);
        });
      });
    }
  };

  // readingFields reads a signed payload in either form a device signs: the
  // medprov reading JSON, or a FHIR Observation (identifier urn:medprov:seq,
  // code LOINC with the medprov type, valueQuantity), as {type, value, unit,
  // measuredAt}. The gateway checked the form; this only displays it.
  function readingFields(p) {
    if (!p || p.resourceType !== "Observation") { return p || {}; }
    var codings = (p.code && p.code.coding) || [];
    var type = "";
    codings.forEach(function (c) { if (c.system === "urn:medprov:reading-type") { type = c.code; } });
    if (!type) { type = (p.code && p.code.text) || (codings[0] && (codings[0].display || codings[0].code)) || ""; }
    var q = p.valueQuantity || {};
    return { type: type, value: q.value, unit: q.unit || q.code || "", measuredAt: p.effectiveDateTime || "" };
  }

  // ---- wiring -------------------------------------------------------------
  document.addEventListener("DOMContentLoaded", function () {
    fillDefaults();
    var status = document.getElementById("status");
    var create = document.getElementById("create-passkey");
    var m = /^\/enrol\/([^/]+)$/.exec(location.pathname);
    if (create && status && m) {
      var token = decodeURIComponent(m[1]);
      create.addEventListener("click", function () { enrol(create, status, token); });
    }
    var signin = document.getElementById("sign-in");
    if (signin && status) {
      signin.addEventListener("click", function () { signIn(signin, status); });
    }
    var out = document.getElementById("sign-out");
    if (out) { out.addEventListener("click", signOut); }
    document.querySelectorAll("form.signed").forEach(function (form) {
      form.addEventListener("submit", function (ev) {
        ev.preventDefault();
        submitSigned(form);
      });
    });
  });
})();
