// Passkeys: a form marked `data-passkey` ("get" or "create") carries the WebAuthn options in
// `data-options`; on submit this asks the browser for the passkey, puts the answer (JSON,
// binary fields in base64url) into the form's hidden `credential` field and posts the form.
// A file of its own because the pages' CSP forbids inline script.
"use strict";
(() => {
  const decode = (s) => {
    const b = atob(s.replace(/-/g, "+").replace(/_/g, "/") + "=".repeat((4 - (s.length % 4)) % 4));
    return Uint8Array.from(b, (c) => c.charCodeAt(0)).buffer;
  };
  const encode = (buf) => {
    let b = "";
    for (const byte of new Uint8Array(buf)) b += String.fromCharCode(byte);
    return btoa(b).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  };
  const TRANSPORTS = ["usb", "nfc", "ble", "internal", "hybrid"];

  const create = async (options) => {
    options.user.id = decode(options.user.id);
    for (const c of options.excludeCredentials || []) c.id = decode(c.id);
    const cred = await navigator.credentials.create({ publicKey: options });
    const r = cred.response;
    const transports = (r.getTransports ? r.getTransports() : []).filter((t) => TRANSPORTS.includes(t));
    return {
      id: cred.id, rawId: encode(cred.rawId), type: cred.type, extensions: {},
      response: { attestationObject: encode(r.attestationObject), clientDataJSON: encode(r.clientDataJSON), transports },
    };
  };

  const get = async (options) => {
    for (const c of options.allowCredentials || []) c.id = decode(c.id);
    const cred = await navigator.credentials.get({ publicKey: options });
    const r = cred.response;
    return {
      id: cred.id, rawId: encode(cred.rawId), type: cred.type, extensions: {},
      response: {
        authenticatorData: encode(r.authenticatorData), clientDataJSON: encode(r.clientDataJSON),
        signature: encode(r.signature), userHandle: r.userHandle ? encode(r.userHandle) : null,
      },
    };
  };

  for (const form of document.querySelectorAll("form[data-passkey]")) {
    const show = (cls) => { const el = form.querySelector(cls); if (el) el.hidden = false; };
    if (!window.PublicKeyCredential) {
      show(".passkey-unsupported");
      continue;
    }
    form.addEventListener("submit", async (event) => {
      const field = form.elements.namedItem("credential");
      if (field.value) return;
      event.preventDefault();
      const options = JSON.parse(form.dataset.options).publicKey;
      options.challenge = decode(options.challenge);
      try {
        const answer = form.dataset.passkey === "create" ? await create(options) : await get(options);
        field.value = JSON.stringify(answer);
        form.submit();
      } catch (e) {
        show(".passkey-error");
      }
    });
  }
})();
