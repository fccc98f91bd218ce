// The MFA popup: shows which source and device the code is for, submits on the sixth digit
// (typed or pasted), shows the engine's error and lets the user retry. The code is the only
// value sent to the app; nothing secret comes back.
"use strict";

const invoke = window.__TAURI__.core.invoke;
const input = document.getElementById("code");
const error = document.getElementById("error");
let busy = false;

async function load() {
  const prompt = await invoke("mfa_prompt");
  const what = document.getElementById("what");
  if (!prompt) {
    what.textContent = "Nothing asks for a code any more; close this window.";
    input.disabled = true;
    return;
  }
  what.textContent = prompt.mfa_serial
    ? `Source ${prompt.source}, device ${prompt.mfa_serial}`
    : `Source ${prompt.source}`;
}

async function submit() {
  const code = input.value.replace(/\D/g, "");
  if (busy || code.length !== 6) return;
  busy = true;
  input.disabled = true;
  error.hidden = true;
  try {
    await invoke("submit_mfa_code", { code }); // the window closes on success
  } catch (e) {
    error.textContent = String(e);
    error.hidden = false;
    input.value = "";
  } finally {
    busy = false;
    input.disabled = false;
    input.focus();
  }
}

input.addEventListener("input", () => {
  input.value = input.value.replace(/\D/g, "").slice(0, 6);
  if (input.value.length === 6) submit();
});
document.getElementById("form").addEventListener("submit", (e) => {
  e.preventDefault();
  submit();
});
load().catch((e) => {
  error.textContent = String(e);
  error.hidden = false;
});
