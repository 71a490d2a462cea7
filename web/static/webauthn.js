// Gatehouse WebAuthn client. It drives the enrol, sign-in, step-up and
// approval ceremonies: it asks the server for options (JSON over fetch),
// converts base64url fields to ArrayBuffers for navigator.credentials, and
// posts the authenticator's answer back. Every request carries the page's
// CSRF token in the X-CSRF-Token header. The page passes the endpoints in
// data- attributes; this file holds no state of its own, and the pages have
// no inline script, so the Content-Security-Policy stays default-src 'self'.
"use strict";

(function () {
  function b64urlToBuf(s) {
    if (typeof s !== "string") {
      throw new Error("The server sent a malformed value.");
    }
    s = s.replace(/-/g, "+").replace(/_/g, "/");
    while (s.length % 4 !== 0) {
      s += "=";
    }
    var bin = atob(s);
    var out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) {
      out[i] = bin.charCodeAt(i);
    }
    return out.buffer;
  }

  function bufToB64url(buf) {
    if (!buf) {
      return null;
    }
    var bytes = new Uint8Array(buf);
    var bin = "";
    for (var i = 0; i < bytes.length; i++) {
      bin += String.fromCharCode(bytes[i]);
    }
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  // post sends body as JSON and returns the parsed JSON answer. A non-2xx
  // answer becomes an Error with the server's message.
  async function post(url, csrf, body) {
    var res = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      cache: "no-store",
      redirect: "error",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body || {}),
    });
    var data = null;
    try {
      data = await res.json();
    } catch (e) {
      data = null;
    }
    if (!res.ok) {
      var msg = data && data.error ? data.error : "The server answered " + res.status + ".";
      throw new Error(msg);
    }
    return data || {};
  }

  function descriptors(list) {
    return (list || []).map(function (c) {
      var d = { type: c.type, id: b64urlToBuf(c.id) };
      if (c.transports) {
        d.transports = c.transports;
      }
      return d;
    });
  }

  function creationOptions(answer) {
    var pk = answer.publicKey;
    if (!pk) {
      throw new Error("The server sent no registration options.");
    }
    pk.challenge = b64urlToBuf(pk.challenge);
    pk.user.id = b64urlToBuf(pk.user.id);
    if (pk.excludeCredentials) {
      pk.excludeCredentials = descriptors(pk.excludeCredentials);
    }
    return pk;
  }

  function requestOptions(answer) {
    var pk = answer.publicKey;
    if (!pk) {
      throw new Error("The server sent no sign-in options.");
    }
    pk.challenge = b64urlToBuf(pk.challenge);
    if (pk.allowCredentials) {
      pk.allowCredentials = descriptors(pk.allowCredentials);
    }
    return pk;
  }

  function extensionResults(cred) {
    try {
      return cred.getClientExtensionResults();
    } catch (e) {
      return {};
    }
  }

  async function register(el, name) {
    var opts = await post(el.dataset.registerBegin, el.dataset.csrf, { name: name });
    var cred = await navigator.credentials.create({ publicKey: creationOptions(opts) });
    if (!cred) {
      throw new Error("No key was created.");
    }
    var transports = [];
    if (typeof cred.response.getTransports === "function") {
      transports = cred.response.getTransports();
    }
    var url = el.dataset.registerFinish;
    url += (url.indexOf("?") < 0 ? "?" : "&") + "name=" + encodeURIComponent(name);
    return post(url, el.dataset.csrf, {
      id: cred.id,
      rawId: bufToB64url(cred.rawId),
      type: cred.type,
      authenticatorAttachment: cred.authenticatorAttachment || undefined,
      clientExtensionResults: extensionResults(cred),
      response: {
        clientDataJSON: bufToB64url(cred.response.clientDataJSON),
        attestationObject: bufToB64url(cred.response.attestationObject),
        transports: transports,
      },
    });
  }

  async function assert(el) {
    var opts = await post(el.dataset.assertBegin, el.dataset.csrf, {});
    var cred = await navigator.credentials.get({ publicKey: requestOptions(opts) });
    if (!cred) {
      throw new Error("The security key gave no answer.");
    }
    return post(el.dataset.assertFinish, el.dataset.csrf, {
      id: cred.id,
      rawId: bufToB64url(cred.rawId),
      type: cred.type,
      authenticatorAttachment: cred.authenticatorAttachment || undefined,
      clientExtensionResults: extensionResults(cred),
      response: {
        clientDataJSON: bufToB64url(cred.response.clientDataJSON),
        authenticatorData: bufToB64url(cred.response.authenticatorData),
        signature: bufToB64url(cred.response.signature),
        userHandle: bufToB64url(cred.response.userHandle),
      },
    });
  }

  function say(text, kind) {
    var st = document.getElementById("webauthn-status");
    if (!st) {
      return;
    }
    st.textContent = text;
    st.className = kind || "";
  }

  function explain(err) {
    if (err && err.name === "NotAllowedError") {
      return "The security key request was cancelled or timed out. Try again.";
    }
    if (err && err.name === "InvalidStateError") {
      return "This security key is already registered. Use another one.";
    }
    if (err && err.name === "SecurityError") {
      return "The browser refused this site for security keys.";
    }
    return (err && err.message) || "Something went wrong. Try again.";
  }

  // go follows a redirect the server chose. Only same-origin paths and
  // https URLs are followed; the server validated them already.
  function go(answer) {
    var to = answer && answer.redirect;
    if (typeof to === "string" && (/^\/(?![\/\\])/.test(to) || /^https:\/\//.test(to))) {
      window.location.assign(to);
      return;
    }
    window.location.assign("/");
  }

  async function ceremony(el, button) {
    if (!window.PublicKeyCredential || !navigator.credentials) {
      say("This browser does not support security keys.", "error");
      return;
    }
    button.disabled = true;
    try {
      var mode = el.dataset.mode;
      var answer;
      if (mode === "enroll" || mode === "add") {
        var nameInput = document.getElementById("key-name");
        var name = nameInput ? nameInput.value.trim() : "";
        if (mode === "add") {
          say("Touch a key you already use…");
          await assert(el);
        }
        say(mode === "add" ? "Now touch the new key…" : "Touch your security key…");
        answer = await register(el, name || "Security key");
      } else {
        say("Touch your security key…");
        answer = await assert(el);
      }
      say("Done.", "ok");
      go(answer);
    } catch (err) {
      say(explain(err), "error");
      button.disabled = false;
    }
  }

  async function approve(form, button, event) {
    event.preventDefault();
    if (!window.PublicKeyCredential || !navigator.credentials) {
      say("This browser does not support security keys.", "error");
      return;
    }
    button.disabled = true;
    try {
      say("Touch your security key to approve…");
      await assert(form);
      say("Approving…", "ok");
      form.submit();
    } catch (err) {
      say(explain(err), "error");
      button.disabled = false;
    }
  }

  function start() {
    var el = document.getElementById("webauthn");
    var button = document.getElementById("webauthn-start");
    if (el && button) {
      button.addEventListener("click", function () {
        ceremony(el, button);
      });
    }
    var form = document.getElementById("approve-form");
    var approveButton = document.getElementById("approve");
    if (form && approveButton) {
      form.addEventListener("submit", function (event) {
        approve(form, approveButton, event);
      });
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
