// The Settings window: shows the config's settings, the login entry and every source and
// profile with its state; each change is applied at once through the app, which writes the
// config file through Rolecall's core (the CLI's checks and messages). A refused value stays in
// its field with the message below it; the file is unchanged then. Nothing secret comes here.
"use strict";

const invoke = window.__TAURI__.core.invoke;
const $ = (id) => document.getElementById(id);

const fields = {
  startAtLogin: $("start-at-login"),
  endOnQuit: $("end-sessions-on-quit"),
  active: $("active"),
  refreshBefore: $("refresh-before"),
  notifyBefore: $("notify-before"),
};
let savedTimer = 0;

// "47 min", "3 h 5 min", "40 s", as the tray writes them
function left(seconds) {
  if (seconds < 60) return `${seconds} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min`;
  return `${Math.floor(seconds / 3600)} h ${Math.floor((seconds % 3600) / 60)} min`;
}

function describe(p) {
  switch (p.state) {
    case "needs-mfa": return "needs an MFA code";
    case "error": return "error";
    case "missing": return "not started";
    case "expired": return "expired";
    default: return p.seconds_left == null ? p.state : `${left(p.seconds_left)} left`;
  }
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text != null) e.textContent = text;
  return e;
}

function listRow(title, detail, badge, badgeClass, note, tag) {
  const li = el("li", "row");
  const text = el("span", "text");
  const head = el("span", "title", title);
  if (tag) head.append(el("span", "tag", tag));
  text.append(head);
  if (detail) text.append(el("span", "hint", detail));
  if (note) text.append(el("span", "hint note", note));
  li.append(text);
  if (badge) li.append(el("span", `badge ${badgeClass}`, badge));
  return li;
}

function empty(list, text) {
  list.replaceChildren(el("li", "row empty", text));
}

function showError(id, message) {
  const p = $(id);
  p.textContent = message || "";
  p.hidden = !message;
}

function saved() {
  const s = $("saved");
  s.textContent = "Saved";
  clearTimeout(savedTimer);
  savedTimer = setTimeout(() => { s.textContent = ""; }, 2500);
}

// the fields the user is editing or that hold a refused value are left as they are
function settable(input) {
  return document.activeElement !== input && input.getAttribute("aria-invalid") !== "true";
}

function render(v) {
  fields.startAtLogin.checked = v.start_at_login;
  fields.endOnQuit.checked = v.end_sessions_on_quit;
  if (settable(fields.refreshBefore)) fields.refreshBefore.value = v.refresh_before;
  if (settable(fields.notifyBefore)) fields.notifyBefore.value = v.notify_before;

  const select = fields.active;
  const options = [];
  if (!v.active) {
    const none = el("option", null, "None");
    none.value = "";
    none.disabled = true;
    options.push(none);
  }
  for (const p of v.profiles) {
    const o = el("option", null, p.profile);
    o.value = p.profile;
    options.push(o);
  }
  select.replaceChildren(...options);
  select.value = v.active || "";
  select.disabled = v.profiles.length === 0;

  const profiles = $("profile-list");
  if (v.status_error) {
    empty(profiles, v.status_error);
  } else if (v.profiles.length === 0) {
    empty(profiles, "No profiles yet: add one to the config file");
  } else {
    profiles.replaceChildren(...v.profiles.map((p) => {
      // `upstream` reads "source NAME" or "profile NAME"
      const from = `from ${p.upstream}`;
      return listRow(p.profile, p.role_arn ? `${p.role_arn}, ${from}` : from,
        // what failed; a session waiting for a code says so in its badge (the tray's
        // "Enter MFA code…" takes it)
        describe(p), `state-${p.state}`, p.state === "error" ? p.message : null,
        p.active ? "active" : null);
    }));
  }

  const sources = $("source-list");
  if (v.sources.length === 0) {
    empty(sources, "No sources yet: run “rolecall keys add NAME”");
  } else {
    sources.replaceChildren(...v.sources.map((s) => {
      const mine = v.profiles.filter((p) => p.source === s.name);
      const needs = mine.some((p) => p.state === "needs-mfa");
      const detail = [s.kind, s.mfa_serial ? `MFA ${s.mfa_serial}` : "no MFA", s.region]
        .filter(Boolean).join(", ");
      const count = mine.length === 1 ? "1 profile" : `${mine.length} profiles`;
      return listRow(s.name, detail, needs ? "needs an MFA code" : count,
        needs ? "state-needs-mfa" : "state-neutral");
    }));
  }

  $("where").textContent = `${v.config_file}${v.hosted ? "" : "  ·  attached to a running rolecall daemon"}`;
}

// runs a change; on success shows the new state, else the message in `errorId`
async function apply(errorId, command, args, invalid) {
  try {
    const v = await invoke(command, args);
    if (invalid) invalid.removeAttribute("aria-invalid");
    // another field of the group may still hold a refused value
    const group = $(errorId).parentElement;
    if (!group.querySelector("[aria-invalid=\"true\"]")) showError(errorId, null);
    render(v);
    saved();
  } catch (e) {
    showError(errorId, String(e));
    if (invalid) {
      invalid.setAttribute("aria-invalid", "true");
    } else {
      load(); // a switch or a choice the app refused goes back to what is in force
    }
  }
}

async function load() {
  try {
    render(await invoke("read_settings"));
  } catch (e) {
    showError("general-error", String(e));
  }
}

fields.startAtLogin.addEventListener("change", () =>
  apply("general-error", "set_start_at_login", { on: fields.startAtLogin.checked }));
fields.endOnQuit.addEventListener("change", () =>
  apply("general-error", "change_settings",
    { change: { end_sessions_on_quit: fields.endOnQuit.checked } }));
fields.active.addEventListener("change", () => {
  if (fields.active.value) {
    apply("general-error", "switch_profile", { profile: fields.active.value });
  }
});
for (const [input, key] of [
  [fields.refreshBefore, "refresh_before"],
  [fields.notifyBefore, "notify_before"],
]) {
  input.addEventListener("change", () =>
    apply("renewal-error", "change_settings", { change: { [key]: input.value } }, input));
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter") input.blur();
  });
}
// states and time left move on: read them again when the window comes back, and each minute
window.addEventListener("focus", load);
setInterval(load, 60000);
load();
