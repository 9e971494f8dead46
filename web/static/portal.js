// portal.js: the medprov portal's script. It runs the passkey enrolment
// ceremony on /enrol/{token}: it asks the gateway for creation options,
// lets the browser create the passkey, and sends the result back.
"use strict";

(function () {
  function b64urlToBytes(s) {
    var b64 = s.replace(/-/g, "+").replace(/_/g, "/");
    while (b64.length % 4) { b64 += "="; }
    var bin = atob(b64);
    var out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) { out[i] = bin.charCodeAt(i); }
    return out;
  }

  function bytesToB64url(buf) {
    var bytes = new Uint8Array(buf);
    var bin = "";
    for (var i = 0; i < bytes.length; i++) { bin += String.fromCharCode(bytes[i]); }
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

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

  // APIError is a refusal from the gateway, with its message for people.
  function APIError(message) { this.name = "APIError"; this.message = message; }

  function post(url, body) {
    return fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json", "Accept": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      cache: "no-store"
    }).then(function (res) {
      return res.json().catch(function () { return null; }).then(function (data) {
        if (!res.ok) {
          var msg = data && data.error && data.error.message;
          throw new APIError(msg ? capitalise(msg) + "." : "The server refused the request (" + res.status + ").");
        }
        return data;
      });
    });
  }

  function capitalise(s) { return s.charAt(0).toUpperCase() + s.slice(1); }

  // explain turns a failure into a sentence for the person at the device.
  function explain(err) {
    if (err instanceof APIError) { return err.message; }
    switch (err && err.name) {
      case "NotAllowedError":
        return "No passkey was created. The request was cancelled or timed out, or your device could not confirm it was you (fingerprint, face or PIN). You can try again.";
      case "InvalidStateError":
        return "This device already holds a passkey for this invitation.";
      case "SecurityError":
        return "Passkeys cannot be created on this address. Open the invitation link exactly as you received it.";
      case "NotSupportedError":
        return "This browser or device cannot create the kind of passkey needed. Try an up-to-date browser.";
      case "TypeError":
        return "The server could not be reached. Check your connection and try again.";
      default:
        return "Something went wrong: " + (err && err.message ? err.message : String(err));
    }
  }

  function setStatus(el, state, text, actorId) {
    el.textContent = "";
    el.setAttribute("data-state", state);
    var p = document.createElement("p");
    p.textContent = text;
    el.appendChild(p);
    if (actorId) {
      var who = document.createElement("p");
      who.appendChild(document.createTextNode("You are enrolled as "));
      var strong = document.createElement("strong");
      strong.id = "actor-id";
      strong.textContent = actorId;
      who.appendChild(strong);
      who.appendChild(document.createTextNode("."));
      el.appendChild(who);
    }
  }

  function enrol(button, status, token) {
    var base = "/v1/enrol/" + encodeURIComponent(token);
    button.disabled = true;
    status.removeAttribute("data-done");
    setStatus(status, "working", "Follow the steps your device shows…");
    post(base + "/options").then(function (json) {
      if (!window.PublicKeyCredential || !navigator.credentials) {
        throw { name: "NotSupportedError", message: "no WebAuthn" };
      }
      return navigator.credentials.create({ publicKey: creationOptions(json) });
    }).then(function (cred) {
      return post(base, {
        credentialId: bytesToB64url(cred.rawId),
        clientDataJSON: bytesToB64url(cred.response.clientDataJSON),
        attestationObject: bytesToB64url(cred.response.attestationObject)
      });
    }).then(function (receipt) {
      setStatus(status, "ok", "Your passkey is ready.", receipt.actorId);
      button.hidden = true;
    }, function (err) {
      setStatus(status, "error", explain(err));
      button.disabled = false;
    }).then(function () {
      status.setAttribute("data-done", "");
      status.focus();
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var button = document.getElementById("create-passkey");
    var status = document.getElementById("status");
    var m = /^\/enrol\/([^/]+)$/.exec(location.pathname);
    if (!button || !status || !m) { return; }
    var token = decodeURIComponent(m[1]);
    button.addEventListener("click", function () { enrol(button, status, token); });
  });
})();
