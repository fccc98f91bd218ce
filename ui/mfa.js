// The MFA popup: shows which source and device the code is for, submits on the sixth digit
// (typed or pasted), shows the engine's error and lets the user retry. The code is the only
// value sent to the app; nothing secret comes back.
"use strict";

const invoke = window.__TAURI__.core.invoke;
const input = document.getElementById("code");
const error = document.getElementById("error");
const hint = document.getElementById("hint");
const HINT = hint.textContent;
let busy = false;

// "Source NAME" and "Device ARN" as two labelled rows; text only, never HTML
function row(what, label, value, cls) {
  const l = document.createElement("span");
  l.className = "label";
  l.textContent = label;
  const v = document.createElement("span");
  v.className = cls;
  v.textContent = value;
  what.append(l, " ", v, " ");
}

async function load() {
  const prompt = await invoke("mfa_prompt");
  const what = document.getElementById("what");
  if (!prompt) {
    what.textContent = "Nothing asks for a code any more; close this window.";
    what.classList.add("plain");
    input.disabled = true;
    return;
  }
  what.textContent = "";
  row(what, "Source", prompt.source, "source");
  if (prompt.mfa_serial) row(what, "Device", prompt.mfa_serial, "device");
}

async function submit() {
  const code = input.value.replace(/\D/g, "");
  if (busy || code.length !== 6) return;
  busy = true;
  input.disabled = true;
  error.hidden = true;
  hint.hidden = false;
  hint.textContent = "Checking the code…";
  try {
    await invoke("submit_mfa_code", { code }); // the window closes on success
  } catch (e) {
    error.textContent = String(e);
    error.hidden = false;
    hint.hidden = true;
    input.value = "";
  } finally {
    hint.textContent = HINT;
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
  hint.hidden = true;
});
