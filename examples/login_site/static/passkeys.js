// Lantern's one script: the passkey buttons. A form marked data-passkey="create" (adding a
// passkey) or "get" (signing in, confirming) carries twostep's WebAuthn options as JSON in
// data-options, binary fields base64url. On submit, the browser is asked for the passkey, its
// answer goes into the form's hidden "credential" field as JSON (binary fields base64url again),
// and the form is posted like any other, with its CSRF token. The script keeps nothing and sends
// nothing anywhere else. Without it the form's hint that passkeys need JavaScript stays, and
// the form posts an empty credential, which the site answers the same; every other way to sign
// in works without it.
"use strict";

(function () {
  function toBytes(text) {
    const base64 = text.replace(/-/g, "+").replace(/_/g, "/");
    const binary = atob(base64 + "=".repeat((4 - (base64.length % 4)) % 4));
    return Uint8Array.from(binary, (c) => c.charCodeAt(0));
  }

  function toText(buffer) {
    let binary = "";
    for (const byte of new Uint8Array(buffer)) binary += String.fromCharCode(byte);
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function descriptors(list) {
    return (list || []).map((item) => Object.assign({}, item, { id: toBytes(item.id) }));
  }

  function creationOptions(json) {
    return Object.assign({}, json, {
      challenge: toBytes(json.challenge),
      user: Object.assign({}, json.user, { id: toBytes(json.user.id) }),
      excludeCredentials: descriptors(json.excludeCredentials),
    });
  }

  function requestOptions(json) {
    return Object.assign({}, json, {
      challenge: toBytes(json.challenge),
      allowCredentials: descriptors(json.allowCredentials),
    });
  }

  function credentialJSON(credential) {
    const answer = credential.response;
    const response = { clientDataJSON: toText(answer.clientDataJSON) };
    if (answer.attestationObject) {
      response.attestationObject = toText(answer.attestationObject);
      if (answer.getTransports) response.transports = answer.getTransports();
    } else {
      response.authenticatorData = toText(answer.authenticatorData);
      response.signature = toText(answer.signature);
      if (answer.userHandle) response.userHandle = toText(answer.userHandle);
    }
    const json = {
      id: credential.id,
      rawId: toText(credential.rawId),
      type: credential.type,
      response: response,
      clientExtensionResults: credential.getClientExtensionResults(),
    };
    if (credential.authenticatorAttachment) {
      json.authenticatorAttachment = credential.authenticatorAttachment;
    }
    return json;
  }

  async function ask(mode, options) {
    if (mode === "create") {
      return navigator.credentials.create({ publicKey: creationOptions(options) });
    }
    return navigator.credentials.get({ publicKey: requestOptions(options) });
  }

  function say(form, errorName) {
    const said = JSON.parse(form.dataset.errors);
    const alert = form.querySelector("[data-passkey-error]");
    alert.textContent = said[errorName] || said.other;
    alert.hidden = false;
  }

  async function submitted(event) {
    const form = event.target;
    event.preventDefault();
    const button = form.querySelector("button[type=submit]");
    form.querySelector("[data-passkey-error]").hidden = true;
    if (!window.PublicKeyCredential || !navigator.credentials) {
      say(form, "other");
      return;
    }
    button.disabled = true;
    try {
      const credential = await ask(form.dataset.passkey, JSON.parse(form.dataset.options));
      form.elements.credential.value = JSON.stringify(credentialJSON(credential));
      form.submit(); // no submit event: posted once, as a plain form
    } catch (error) {
      say(form, error && error.name);
      button.disabled = false;
    }
  }

  for (const form of document.querySelectorAll("form[data-passkey]")) {
    form.addEventListener("submit", submitted);
    form.querySelector("[data-passkey-script-off]").hidden = true; // it is on
  }
})();
