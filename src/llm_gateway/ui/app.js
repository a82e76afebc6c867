// llm-gateway admin page: plain JavaScript over the admin API. Every value from the API is
// rendered as text (never as HTML). The admin key lives in sessionStorage for this tab only.
"use strict";

const KEY_STORAGE = "llm-gateway-admin-key";
const THEME_STORAGE = "llm-gateway-theme";
const KINDS = ["openai", "openrouter", "dashscope", "ark"];

// ---- small DOM helpers ------------------------------------------------------------------
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "class") el.className = value;
    else el.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}
const $ = (selector) => document.querySelector(selector);
const fmt = (n) => (n === null || n === undefined ? "—" : Number(n).toLocaleString());
const when = (iso) => (iso ? new Date(iso).toLocaleString() : "—");
const badge = (on, yes = "active", no = "inactive") =>
  h("span", { class: `badge ${on ? "ok" : "off"}` }, on ? yes : no);

// ---- API ----------------------------------------------------------------------------------
class ApiError extends Error {}

async function api(method, path, body) {
  const response = await fetch(path, {
    method,
    headers: {
      Authorization: `Bearer ${sessionStorage.getItem(KEY_STORAGE) || ""}`,
      ...(body === undefined ? {} : { "Content-Type": "application/json" }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 401) {
    signOut("The admin key was refused. Sign in again.");
    throw new ApiError("unauthorised");
  }
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) {
    const message = data && data.error ? data.error.message : `HTTP ${response.status}`;
    throw new ApiError(`${response.status}: ${message}`);
  }
  return data;
}

function flash(message) {
  const box = $("#flash");
  box.textContent = message;
  box.hidden = !message;
}

async function guarded(action) {
  try {
    flash("");
    await action();
  } catch (error) {
    if (error.message !== "unauthorised") flash(error.message);
  }
}

// ---- dialog (create / edit forms) ---------------------------------------------------------
function field(label, name, options = {}) {
  const { type = "text", value = "", required = false, placeholder = "", choices = null } = options;
  let input;
  if (choices) {
    input = h("select", { name }, choices.map((c) => h("option", { value: c, selected: c === value }, c)));
  } else if (type === "checkbox") {
    input = h("input", { type, name, checked: Boolean(value) });
    return h("label", {}, input, " ", label);
  } else {
    input = h("input", { type, name, value: value ?? "", required, placeholder, step: type === "number" ? "any" : null });
  }
  return h("label", {}, label, input);
}

function openDialog(title, fields, onSubmit, okLabel = "Save") {
  const dialog = $("#dialog");
  $("#dialog-title").textContent = title;
  $("#dialog-body").replaceChildren(...fields);
  $("#dialog-error").textContent = "";
  $("#dialog-ok").textContent = okLabel;
  $("#dialog-ok").hidden = !onSubmit;
  $("#dialog-cancel").textContent = onSubmit ? "Cancel" : "Close";
  $("#dialog-form").onsubmit = async (event) => {
    event.preventDefault();
    if (!onSubmit) return dialog.close();
    const form = new FormData($("#dialog-form"));
    const values = {};
    for (const el of $("#dialog-body").querySelectorAll("[name]")) {
      values[el.name] = el.type === "checkbox" ? el.checked : form.get(el.name);
    }
    try {
      const next = await onSubmit(values);
      if (next) showSecret(next.title, next.key);
      else dialog.close();
      await render();
    } catch (error) {
      $("#dialog-error").textContent = error.message;
    }
  };
  $("#dialog-cancel").onclick = () => dialog.close();
  if (!dialog.open) dialog.showModal();
}

function showSecret(title, key) {
  const copy = h("button", { type: "button", class: "small", onclick: async () => {
    try { await navigator.clipboard.writeText(key); copy.textContent = "Copied"; }
    catch { copy.textContent = "Select and copy"; }
  } }, "Copy");
  openDialog(title, [
    h("p", { class: "warn" }, "Copy this key now: it is shown only once and cannot be recovered."),
    h("div", { class: "secret", "data-testid": "secret" }, key),
    h("div", { class: "actions" }, copy),
  ], null);
}

const blankToNull = (v) => (v === null || String(v).trim() === "" ? null : String(v).trim());
const numberOrNull = (v) => (blankToNull(v) === null ? null : Number(v));

// ---- pages --------------------------------------------------------------------------------
const pages = {
  async dashboard(main) {
    const stats = await api("GET", "/admin/stats");
    const tile = (label, value) =>
      h("div", { class: "card tile" }, h("div", { class: "value" }, value), h("div", { class: "label" }, label));
    main.append(
      h("div", { class: "toolbar" }, h("h1", {}, "Dashboard")),
      h("div", { class: "tiles" },
        tile("requests (all time)", fmt(stats.total_requests)),
        tile("requests, 24 h", fmt(stats.total_requests_24h)),
        tile("errors, 24 h", fmt(stats.total_errors_24h)),
        tile("tokens, 24 h", fmt(stats.total_tokens_24h)),
        tile("avg latency, 24 h", `${fmt(stats.avg_latency_24h)} ms`)),
      h("div", { class: "card chart" }, h("h2", {}, "Last 24 hours"), chart(stats.requests_per_hour),
        h("div", { class: "legend" }, "bars: requests (red: errors) · line: tokens")),
      h("div", { class: "grid2" },
        h("div", { class: "card scroll" }, h("h2", {}, "Models, 7 days"),
          table(["model", "requests", "tokens"], stats.model_usage, (m) => [m.model, fmt(m.requests), fmt(m.tokens)])),
        h("div", { class: "card scroll" }, h("h2", {}, "Providers, 7 days"),
          table(["provider", "requests", "errors"], stats.provider_usage, (p) => [p.provider, fmt(p.requests), fmt(p.errors)]))),
    );
  },

  async providers(main) {
    const providers = await api("GET", "/admin/providers");
    const form = (p = {}) => [
      field("Name", "name", { value: p.name, required: true }),
      field("Kind", "kind", { value: p.kind || "openai", choices: KINDS }),
      field(p.id ? "API key (leave empty to keep)" : "API key", "api_key", { type: "password", required: !p.id }),
      field("Base URL (empty: the kind's default)", "base_url", { value: p.base_url, placeholder: "https://…" }),
      field("Active", "is_active", { type: "checkbox", value: p.id ? p.is_active : true }),
    ];
    const save = (p) => async (v) => {
      const body = { name: v.name, kind: v.kind, is_active: v.is_active, base_url: blankToNull(v.base_url) };
      if (blankToNull(v.api_key)) body.api_key = v.api_key;
      if (p) await api("PUT", `/admin/providers/${p.id}`, body);
      else await api("POST", "/admin/providers", body);
    };
    main.append(
      h("div", { class: "toolbar" }, h("h1", {}, "Providers"),
        h("button", { onclick: () => openDialog("New provider", form(), save(null), "Create") }, "New provider")),
      h("div", { class: "scroll" }, table(
        ["name", "kind", "base URL", "key", "status", ""], providers, (p) => [
          p.name, p.kind, p.base_url, p.api_key_preview, badge(p.is_active),
          h("div", { class: "row-actions" },
            h("button", { class: "small ghost", onclick: () => openDialog(`Edit ${p.name}`, form(p), save(p)) }, "Edit"),
            h("button", { class: "small ghost", onclick: () => guarded(async () => {
              await api("PUT", `/admin/providers/${p.id}`, { is_active: !p.is_active }); await render(); }) },
              p.is_active ? "Disable" : "Enable"),
            h("button", { class: "small danger", onclick: () => guarded(async () => {
              if (!confirm(`Delete provider ${p.name}?`)) return;
              await api("DELETE", `/admin/providers/${p.id}`); await render(); }) }, "Delete")),
        ])),
    );
  },

  async models(main) {
    const [models, providers] = await Promise.all([api("GET", "/admin/models"), api("GET", "/admin/providers")]);
    const names = Object.fromEntries(providers.map((p) => [p.name, p.id]));
    const form = (m = {}) => [
      field("Name (what clients ask for)", "name", { value: m.name, required: true }),
      field("Provider", "provider", { value: m.provider_name || providers[0]?.name, choices: providers.map((p) => p.name) }),
      field("Provider-side name (empty: the same)", "provider_model_name",
        { value: m.provider_model_name && m.provider_model_name !== m.name ? m.provider_model_name : "" }),
      field("Input token coefficient", "input_token_coefficient", { type: "number", value: m.input_token_coefficient ?? 1 }),
      field("Output token coefficient", "output_token_coefficient", { type: "number", value: m.output_token_coefficient ?? 1 }),
      field("Active", "is_active", { type: "checkbox", value: m.id ? m.is_active : true }),
    ];
    const save = (m) => async (v) => {
      const body = {
        name: v.name, provider_id: names[v.provider], is_active: v.is_active,
        provider_model_name: blankToNull(v.provider_model_name),
        input_token_coefficient: numberOrNull(v.input_token_coefficient) ?? 1,
        output_token_coefficient: numberOrNull(v.output_token_coefficient) ?? 1,
      };
      if (m) await api("PUT", `/admin/models/${m.id}`, body);
      else await api("POST", "/admin/models", body);
    };
    main.append(
      h("div", { class: "toolbar" }, h("h1", {}, "Models"),
        h("button", { disabled: providers.length === 0, title: providers.length ? null : "Create a provider first",
          onclick: () => openDialog("New model", form(), save(null), "Create") }, "New model")),
      h("div", { class: "scroll" }, table(
        ["name", "provider", "provider-side name", "in ×", "out ×", "status", ""], models, (m) => [
          m.name, m.provider_name, m.provider_model_name, m.input_token_coefficient, m.output_token_coefficient,
          badge(m.is_active),
          h("div", { class: "row-actions" },
            h("button", { class: "small ghost", onclick: () => openDialog(`Edit ${m.name}`, form(m), save(m)) }, "Edit"),
            h("button", { class: "small danger", onclick: () => guarded(async () => {
              if (!confirm(`Delete model ${m.name}?`)) return;
              await api("DELETE", `/admin/models/${m.id}`); await render(); }) }, "Delete")),
        ])),
    );
  },

  async keys(main) {
    const keys = await api("GET", "/admin/keys");
    const usageBar = (k) => {
      if (k.token_budget === null) return h("span", { class: "muted" }, `${fmt(k.tokens_used)} / unlimited`);
      const share = k.token_budget ? Math.min(1, k.tokens_used / k.token_budget) : 1;
      const level = share >= 1 ? "full" : share >= 0.8 ? "high" : "";
      return h("div", {}, h("div", { class: "usage", title: `${Math.round(share * 100)}%` },
        h("div", { class: level, style: `width:${share * 100}%` })),
        h("span", { class: "muted" }, `${fmt(k.tokens_used)} / ${fmt(k.token_budget)}`));
    };
    const budgetForm = (k) => [
      field("Token budget (empty: unlimited)", "token_budget", { type: "number", value: k.token_budget ?? "" }),
      field("Reset usage to zero", "reset_usage", { type: "checkbox", value: false }),
    ];
    main.append(
      h("div", { class: "toolbar" }, h("h1", {}, "Keys"),
        h("button", { onclick: () => openDialog("New key", [
          field("Name", "name", { required: true }),
          field("Token budget (empty: unlimited)", "token_budget", { type: "number" }),
        ], async (v) => {
          const created = await api("POST", "/admin/keys", { name: v.name, token_budget: numberOrNull(v.token_budget) });
          return { title: `Key for ${created.name}`, key: created.key };
        }, "Create") }, "New key")),
      h("div", { class: "scroll" }, table(
        ["name", "prefix", "status", "usage", "created", ""], keys, (k) => [
          k.name, h("code", {}, `${k.key_prefix}…`), badge(k.is_active, "active", "revoked"), usageBar(k),
          when(k.created_at),
          k.is_active ? h("div", { class: "row-actions" },
            h("button", { class: "small ghost", onclick: () => openDialog(`Budget for ${k.name}`, budgetForm(k), async (v) => {
              await api("PUT", `/admin/keys/${k.id}`, { token_budget: numberOrNull(v.token_budget), reset_usage: v.reset_usage });
            }) }, "Budget"),
            h("button", { class: "small ghost", onclick: () => guarded(async () => {
              if (!confirm(`Rotate ${k.name}? The current key stops working at once.`)) return;
              const rotated = await api("POST", `/admin/keys/${k.id}/rotate`);
              showSecret(`New key for ${k.name}`, rotated.key); await render(); }) }, "Rotate"),
            h("button", { class: "small danger", onclick: () => guarded(async () => {
              if (!confirm(`Revoke ${k.name}? This cannot be undone.`)) return;
              await api("DELETE", `/admin/keys/${k.id}`); await render(); }) }, "Revoke")) : "",
        ])),
    );
  },

  async logs(main) {
    const state = pages.logs.state;
    const params = new URLSearchParams({ page: state.page, per_page: 50 });
    for (const name of ["model", "key_id", "status_code", "is_error"]) if (state[name]) params.set(name, state[name]);
    const [logs, keys] = await Promise.all([api("GET", `/admin/logs?${params}`), api("GET", "/admin/keys")]);
    const keyNames = Object.fromEntries(keys.map((k) => [k.id, k.name]));
    const apply = (event) => {
      event.preventDefault();
      const form = new FormData(event.target);
      Object.assign(state, { page: 1, model: form.get("model").trim(), key_id: form.get("key_id"),
        status_code: form.get("status_code").trim(), is_error: form.get("is_error") });
      guarded(render);
    };
    const pagesTotal = Math.max(1, Math.ceil(logs.total / logs.per_page));
    main.append(
      h("div", { class: "toolbar" }, h("h1", {}, "Logs")),
      h("form", { class: "toolbar", onsubmit: apply },
        h("label", {}, "Model", h("input", { name: "model", value: state.model || "" })),
        h("label", {}, "Key", h("select", { name: "key_id" }, h("option", { value: "" }, "any"),
          keys.map((k) => h("option", { value: k.id, selected: k.id === state.key_id }, k.name)))),
        h("label", {}, "Status", h("input", { name: "status_code", value: state.status_code || "", size: 4 })),
        h("label", {}, "Outcome", h("select", { name: "is_error" },
          [["", "any"], ["false", "success"], ["true", "error"]].map(([v, t]) =>
            h("option", { value: v, selected: v === (state.is_error || "") }, t)))),
        h("button", { type: "submit" }, "Filter")),
      h("div", { class: "scroll" }, table(
        ["time", "key", "model", "status", "tokens", "latency", "stream", ""], logs.data, (r) => [
          when(r.created_at), keyNames[r.user_key_id] || r.user_key_id.slice(0, 8), r.model_requested || "—",
          h("span", { class: `badge ${r.is_error ? "err" : "ok"}` }, r.status_code),
          fmt(r.total_tokens), `${fmt(r.latency_ms)} ms`, r.is_stream ? "yes" : "no",
          h("button", { class: "small ghost", onclick: () => guarded(() => showLog(r.id)) }, "Details"),
        ])),
      h("div", { class: "pager" },
        h("button", { class: "ghost small", disabled: state.page <= 1,
          onclick: () => { state.page -= 1; guarded(render); } }, "Previous"),
        h("span", { class: "muted" }, `page ${logs.page} of ${pagesTotal} · ${fmt(logs.total)} requests`),
        h("button", { class: "ghost small", disabled: state.page >= pagesTotal,
          onclick: () => { state.page += 1; guarded(render); } }, "Next")),
    );
  },
};
pages.logs.state = { page: 1 };

async function showLog(id) {
  const row = await api("GET", `/admin/logs/${id}`);
  const pretty = (text) => {
    if (!text) return h("p", { class: "muted" }, "not stored (LOG_REQUEST_BODY / LOG_RESPONSE_BODY)");
    try { return h("pre", {}, JSON.stringify(JSON.parse(text), null, 2)); } catch { return h("pre", {}, text); }
  };
  const facts = ["gateway_request_id", "request_id", "model_requested", "model_sent", "provider_kind", "status_code",
    "prompt_tokens", "completion_tokens", "weighted_total_tokens", "latency_ms", "ttfb_ms", "error_message"];
  openDialog(`Request ${row.gateway_request_id}`, [
    table(["field", "value"], facts, (f) => [f, row[f] ?? "—"]),
    h("h2", {}, "Request body"), pretty(row.request_body),
    h("h2", {}, "Response body"), pretty(row.response_body),
  ], null);
}

function table(headers, rows, cells) {
  if (!rows.length) return h("p", { class: "muted" }, "Nothing here yet.");
  return h("table", {}, h("thead", {}, h("tr", {}, headers.map((t) => h("th", {}, t)))),
    h("tbody", {}, rows.map((row) => h("tr", {}, cells(row).map((c) => h("td", {}, c))))));
}

function chart(hours) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  const width = 720, height = 180, pad = 20, slot = (width - pad * 2) / Math.max(1, hours.length);
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", "requests, errors and tokens per hour");
  const maxRequests = Math.max(1, ...hours.map((x) => x.requests));
  const maxTokens = Math.max(1, ...hours.map((x) => x.tokens));
  const add = (tag, attrs) => {
    const el = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
    svg.append(el);
    return el;
  };
  const scale = height - pad * 2;
  hours.forEach((x, i) => {
    const barHeight = (x.requests / maxRequests) * scale;
    const errHeight = (x.errors / maxRequests) * scale;
    const left = pad + i * slot + 2;
    add("rect", { x: left, y: height - pad - barHeight, width: slot - 4, height: barHeight, fill: "var(--bar)", opacity: 0.75 })
      .append(Object.assign(document.createElementNS(ns, "title"), { textContent: `${x.hour}: ${x.requests} requests, ${x.errors} errors, ${x.tokens} tokens` }));
    if (errHeight) add("rect", { x: left, y: height - pad - errHeight, width: slot - 4, height: errHeight, fill: "var(--bar-err)" });
  });
  const points = hours.map((x, i) => `${pad + i * slot + slot / 2},${height - pad - (x.tokens / maxTokens) * scale}`);
  add("polyline", { points: points.join(" "), fill: "none", stroke: "var(--fg)", "stroke-width": 1.5, opacity: 0.6 });
  add("line", { x1: pad, x2: width - pad, y1: height - pad, y2: height - pad, stroke: "var(--line)" });
  return svg;
}

// ---- shell --------------------------------------------------------------------------------
async function render() {
  const page = (location.hash || "#dashboard").slice(1);
  const name = pages[page] ? page : "dashboard";
  for (const link of document.querySelectorAll("#nav a")) link.classList.toggle("active", link.dataset.page === name);
  const main = h("main", { id: "main" });
  await pages[name](main);
  $("#main").replaceWith(main);
}

function signOut(message = "") {
  sessionStorage.removeItem(KEY_STORAGE);
  $("#app").hidden = true;
  $("#signin").hidden = false;
  $("#signin-error").textContent = message;
}

function applyTheme(theme) {
  document.documentElement.dataset.theme = theme;
  localStorage.setItem(THEME_STORAGE, theme);
}

document.addEventListener("DOMContentLoaded", () => {
  const preferred = localStorage.getItem(THEME_STORAGE)
    || (matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light");
  applyTheme(preferred);
  $("#theme").onclick = () => applyTheme(document.documentElement.dataset.theme === "dark" ? "light" : "dark");
  $("#signout").onclick = () => signOut();
  $("#signin-form").onsubmit = async (event) => {
    event.preventDefault();
    sessionStorage.setItem(KEY_STORAGE, $("#signin-key").value.trim());
    $("#signin-key").value = "";
    try {
      await api("GET", "/admin/providers");
      $("#signin").hidden = true;
      $("#app").hidden = false;
      await guarded(render);
    } catch (error) {
      if (error.message !== "unauthorised") $("#signin-error").textContent = error.message;
    }
  };
  addEventListener("hashchange", () => guarded(render));
  if (sessionStorage.getItem(KEY_STORAGE)) {
    $("#signin").hidden = true;
    $("#app").hidden = false;
    guarded(render);
  } else {
    signOut();
  }
});
