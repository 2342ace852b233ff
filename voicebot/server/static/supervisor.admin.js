// The Admin tab of the supervisor dashboard (admins only): users (add, set a password, remove), the audit log
// (filter by user and action, show more, open a call), and the effective configuration as a collapsible tree.
// The page's helpers come in through adminView(...), so this module holds no state of the rest of the page.
// Every text from the server goes into the page with textContent (never as HTML).

const ROLES = ["agent", "supervisor", "admin"];
const AUDIT_PAGE = 50;
// Audit actions in words (the server writes the short names; see voicebot/server/auth_routes.py and listen.py).
const ACTIONS = {
  login: "logged in",
  login_failed: "failed login",
  open_call: "opened a call",
  listen: "listened in",
  whisper: "whispered",
  user_add: "added a user",
  user_remove: "removed a user",
  password_set: "set a password",
  password_failed: "wrong current password",
};
const WARN_ACTIONS = new Set(["login_failed", "password_failed"]);

/** Wire the Admin tab. ``deps``: {h, api, $, fmtDateTime, openCall, me: () => user}. Returns {show()}. */
export function adminView({ h, api, $, fmtDateTime, openCall, me }) {
  const audit = { offset: 0, request: 0 };
  let configLoaded = false;

  /** What an API refusal means, in words, for the form next to which it is shown. */
  function explain(e, what) {
    const detail = e.message ? e.message[0].toUpperCase() + e.message.slice(1) : "";
    if (e.status === 409) return `${detail}: choose another name.`;
    if (e.status === 400) return `Not accepted: ${detail}.`;
    if (e.status === 403) return `Not allowed: only an administrator may ${what} (${e.message}).`;
    if (e.status === 404) return `${detail}: removed meanwhile? The list has been reloaded.`;
    if (e.status === 429) return `${detail}.`;
    return `Could not ${what}: ${e.message}`;
  }

  function say(node, text, ok = false) {
    node.textContent = text;
    node.classList.toggle("form-error", !!text && !ok);
    node.classList.toggle("form-ok", !!text && ok);
  }

  // ---- users ------------------------------------------------------------------------------------------

  async function loadUsers() {
    let users;
    try {
      users = (await api("/api/users")).users || [];
    } catch (e) {
      say($("users-note"), explain(e, "list the users"));
      return;
    }
    say($("users-note"), `${users.length} user${users.length === 1 ? "" : "s"}`, true);
    $("users").tBodies[0].replaceChildren(...users.flatMap(userRows));
    $("user-list").replaceChildren(...users.map((u) => h("option", { value: u.username })));
  }

  function userRows(u) {
    const self = me()?.username === u.username;
    const actions = h("td", { class: "actions" });
    const pwRow = h("tr", { class: "pw-row", hidden: true, dataset: { user: u.username } });
    const row = h("tr", { dataset: { user: u.username } },
      h("td", {}, h("strong", {}, u.username), self ? h("span", { class: "badge you" }, "you") : null),
      h("td", {}, h("span", { class: `badge role-${u.role}` }, u.role)),
      h("td", {}, u.agent_id || h("span", { class: "muted" }, "–")),
      h("td", { class: "nowrap" }, fmtDateTime(u.created)),
      h("td", { class: "nowrap" }, u.last_login ? fmtDateTime(u.last_login) : h("span", { class: "muted" }, "never")),
      actions);
    const normal = () => actions.replaceChildren(
      h("button", { type: "button", class: "btn btn-small", "aria-expanded": "false", onclick: (e) => togglePassword(u, pwRow, e.currentTarget) },
        "Set password"),
      h("button", {
        type: "button", class: "btn btn-small btn-danger-ghost", disabled: self || undefined,
        title: self ? "You cannot remove yourself" : null, onclick: () => confirmRemove(u, actions, normal),
      }, "Remove"));
    normal();
    return [row, pwRow];
  }

  function confirmRemove(u, cell, back) {
    const msg = h("span", { class: "form-msg", role: "alert" });
    const cancel = h("button", { type: "button", class: "btn btn-small", onclick: () => { back(); cell.querySelectorAll("button")[1]?.focus(); } }, "Cancel");
    const yes = h("button", {
      type: "button", class: "btn btn-small btn-danger", onclick: async () => {
        yes.disabled = true;
        try {
          await api(`/api/users/${encodeURIComponent(u.username)}`, { method: "DELETE" });
          say($("users-note"), `Removed ${u.username}; their sessions have ended.`, true);
          await loadUsers();
          $("users-h").focus();
        } catch (e) {
          yes.disabled = false;
          say(msg, explain(e, "remove users"));
          if (e.status === 404) loadUsers();
        }
      },
    }, `Yes, remove ${u.username}`);
    cell.replaceChildren(h("span", { class: "confirm" }, `Remove ${u.username}?`), yes, cancel, msg);
    cancel.focus();
  }

  function togglePassword(u, row, button) {
    const open = row.hidden;
    row.hidden = !open;
    button.setAttribute("aria-expanded", String(open));
    if (!open) { row.replaceChildren(); return; }
    const msg = h("p", { class: "form-msg", role: "alert" });
    const form = h("form", { class: "search admin-form", "aria-label": `New password for ${u.username}` },
      h("label", {}, `New password for ${u.username}`, h("input", { name: "password", type: "password", autocomplete: "new-password" })),
      h("label", {}, "Repeat", h("input", { name: "repeat", type: "password", autocomplete: "new-password" })),
      h("div", { class: "search-buttons" },
        h("button", { type: "submit", class: "btn btn-primary" }, "Save password"),
        h("button", { type: "button", class: "btn btn-ghost", onclick: () => { togglePassword(u, row, button); button.focus(); } }, "Cancel")),
      msg);
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const data = new FormData(form);
      if (data.get("password") !== data.get("repeat")) { say(msg, "The two passwords differ."); return; }
      try {
        await api(`/api/users/${encodeURIComponent(u.username)}/password`, { method: "POST", body: { password: data.get("password") } });
      } catch (err) {
        say(msg, explain(err, "set passwords"));
        if (err.status === 404) loadUsers();
        return;
      }
      togglePassword(u, row, button);
      const self = me()?.username === u.username;
      say($("users-note"), `New password set for ${u.username}; ${self ? "your other sessions" : "their sessions"} have ended.`, true);
      button.focus();
      loadAudit(0);
    });
    row.replaceChildren(h("td", { colspan: "6" }, form));
    form.querySelector("input").focus();
  }

  function roleChanged() {
    const agent = $("user-add").elements.role.value === "agent";
    $("agent-id-field").hidden = !agent;
  }

  async function addUser(e) {
    e.preventDefault();
    const form = $("user-add");
    const data = new FormData(form);
    const msg = $("user-add-msg");
    if (data.get("password") !== data.get("repeat")) { say(msg, "The two passwords differ."); return; }
    const body = { username: String(data.get("username") || "").trim(), role: data.get("role"), password: data.get("password") };
    const agentId = String(data.get("agent_id") || "").trim();
    if (body.role === "agent" && agentId) body.agent_id = agentId;
    try {
      const user = await api("/api/users", { method: "POST", body });
      say(msg, `Added ${user.username} (${user.role}${user.agent_id ? `, agent id ${user.agent_id}` : ""}).`, true);
      form.reset();
      roleChanged();
      await loadUsers();
      loadAudit(0);
    } catch (err) {
      say(msg, explain(err, "add users"));
    }
  }

  // ---- audit log --------------------------------------------------------------------------------------

  async function loadAudit(offset = 0) {
    const form = new FormData($("audit-filter"));
    const params = new URLSearchParams({ limit: String(AUDIT_PAGE), offset: String(offset) });
    for (const key of ["username", "action"]) {
      const v = String(form.get(key) || "").trim();
      if (v) params.set(key, v);
    }
    const request = ++audit.request; // a newer filter wins over one still on its way
    let rows;
    try {
      rows = (await api(`/api/audit?${params}`)).audit || [];
    } catch (e) {
      if (request === audit.request) say($("audit-note"), explain(e, "read the audit log"));
      return;
    }
    if (request !== audit.request) return;
    audit.offset = offset;
    const body = $("audit").tBodies[0];
    if (offset === 0) body.replaceChildren();
    body.append(...rows.map(auditRow));
    const n = body.rows.length;
    say($("audit-note"), n ? `${n} entr${n === 1 ? "y" : "ies"}, newest first` : "Nothing in the log matches.", true);
    $("audit-more").hidden = rows.length < AUDIT_PAGE;
  }

  function auditRow(r) {
    const call = r.call_id
      ? h("button", { type: "button", class: "btn btn-ghost btn-small link", title: "Open this call's record", onclick: () => openCall(r.call_id, "admin") }, r.call_id)
      : h("span", { class: "muted" }, "–");
    return h("tr", { class: WARN_ACTIONS.has(r.action) ? "warn" : "", dataset: { action: r.action } },
      h("td", { class: "nowrap" }, h("time", { datetime: r.at }, stamp(r.at))),
      h("td", {}, r.username),
      h("td", {}, h("span", { class: `badge act-${r.action}`, title: r.action }, ACTIONS[r.action] || r.action)),
      h("td", {}, call),
      h("td", {}, r.detail || h("span", { class: "muted" }, "–")));
  }

  function stamp(iso) {
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return String(iso);
    return d.toLocaleDateString([], { month: "short", day: "numeric" }) + " "
      + d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  }

  // ---- configuration ------------------------------------------------------------------------------------

  function itemLabel(v, i) {
    const name = v && typeof v === "object" && !Array.isArray(v) ? v.id ?? v.name ?? v.number ?? null : null;
    return name != null ? `${i + 1}. ${name}` : `${i + 1}.`;
  }

  function leaf(key, value) {
    const type = value === null ? "null" : typeof value;
    const text = value === null ? "not set" : typeof value === "string" ? (value === "" ? "(empty)" : value) : String(value);
    return h("li", { class: "cfg-leaf" }, h("span", { class: "cfg-key" }, key), h("span", { class: `cfg-val cfg-${type}` }, text));
  }

  function configNode(key, value) {
    if (value === null || typeof value !== "object") return leaf(key, value);
    const list = Array.isArray(value);
    const entries = list ? value.map((v, i) => [itemLabel(v, i), v]) : Object.entries(value);
    if (!entries.length) {
      return h("li", { class: "cfg-leaf" }, h("span", { class: "cfg-key" }, key), h("span", { class: "cfg-val cfg-null" }, list ? "none" : "empty"));
    }
    const count = list ? `${entries.length} item${entries.length === 1 ? "" : "s"}` : `${entries.length} setting${entries.length === 1 ? "" : "s"}`;
    return h("li", { class: "cfg-branch" }, h("details", { dataset: { key } },
      h("summary", {}, h("span", { class: "cfg-key" }, key), h("span", { class: "cfg-count" }, count)),
      h("ul", { class: "cfg" }, entries.map(([k, v]) => configNode(k, v)))));
  }

  async function loadConfig() {
    let config;
    try {
      config = await api("/api/config");
    } catch (e) {
      say($("config-note"), explain(e, "read the configuration"));
      return;
    }
    configLoaded = true;
    say($("config-note"), "", true);
    $("config").replaceChildren(h("ul", { class: "cfg cfg-root" }, Object.entries(config).map(([k, v]) => configNode(k, v))));
  }

  function expandConfig(open) {
    for (const d of $("config").querySelectorAll("details")) d.open = open;
  }

  // ---- wiring -------------------------------------------------------------------------------------------

  $("user-add").addEventListener("submit", addUser);
  $("user-add").elements.role.addEventListener("change", roleChanged);
  $("user-add").elements.role.replaceChildren(...ROLES.map((r) => h("option", { value: r }, r)));
  roleChanged();
  $("audit-filter").addEventListener("submit", (e) => { e.preventDefault(); loadAudit(0); });
  $("audit-filter").addEventListener("reset", () => setTimeout(() => loadAudit(0), 0));
  $("audit-filter").elements.action.append(...Object.entries(ACTIONS).map(([k, v]) => h("option", { value: k }, v)));
  $("audit-more").addEventListener("click", () => loadAudit(audit.offset + AUDIT_PAGE));
  $("config-expand").addEventListener("click", () => expandConfig(true));
  $("config-collapse").addEventListener("click", () => expandConfig(false));
  $("config-reload").addEventListener("click", loadConfig);

  return {
    /** The tab was opened: read users and the newest audit rows again (the configuration once). */
    show() {
      loadUsers();
      loadAudit(0);
      if (!configLoaded) loadConfig();
    },
  };
}
