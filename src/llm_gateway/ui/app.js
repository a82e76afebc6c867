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
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}
const $ = (selector) => document.querySelector(selector);
const fmt = (n) => (n === null || n === undefined ? "—" : Number(n).toLocaleString());
const ms = (n) => (n === null || n === undefined ? "—" : `${fmt(n)} ms`);
const when = (iso) => (iso ? new Date(iso).toLocaleString() : "—");
// A local date and time to the minute, for table cells.
const whenShort = (iso) => (iso ? new Date(iso).toLocaleString(undefined, { dateStyle: "short", timeStyle: "short" }) : "—");
// A full local time with its zone, for the detail views.
const whenFull = (iso) => (iso ? new Date(iso).toLocaleString(undefined, { year: "numeric", month: "short",
  day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit", timeZoneName: "short" }) : "—");
// The time alone when it falls today, else the date too.
const soon = (iso) => {
  if (!iso) return "—";
  const at = new Date(iso);
  return at.toDateString() === new Date().toDateString() ? at.toLocaleTimeString() : at.toLocaleString();
};
const badge = (on, yes = "active", no = "inactive") =>
  h("span", { class: `badge ${on ? "ok" : "off"}` }, on ? yes : no);
const has = (row, name) => row !== null && typeof row === "object" && name in row;
// The API sends decimals (prices, costs, budgets) as numbers or as strings of digits.
const numeric = (v) => v !== null && v !== undefined && v !== "" && Number.isFinite(Number(v));
// A USD amount: cents from a dollar up, more digits below it (a request may cost $0.000123).
const money = (v) => {
  if (!numeric(v)) return "—";
  const n = Number(v);
  const size = Math.abs(n);
  const digits = size === 0 || size >= 1 ? 2 : Math.min(8, Math.max(2, 2 - Math.floor(Math.log10(size)) + 1));
  return `$${n.toLocaleString(undefined, { minimumFractionDigits: 2, maximumFractionDigits: digits })}`;
};

// A request's outcome. `is_error` decides, not the status: a stream the upstream cut after
// its 200 began is a failure with status 200.
function statusBadge(row) {
  const failed = Boolean(row.is_error);
  const text = failed && row.status_code < 400 ? `${row.status_code} failed` : String(row.status_code);
  return h("span", { class: `badge ${failed ? "err" : "ok"}`, title: row.error_message || null,
    "data-testid": "status" }, text);
}

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

// The admin API's own description (its schemas), read once; {} if it cannot be read.
let specPromise = null;
function apiSchemas() {
  specPromise ??= api("GET", "/openapi.json").then((spec) => spec?.components?.schemas || {}, () => ({}));
  return specPromise;
}

// The fields a schema of the admin API describes (none when it cannot be read).
async function schemaFields(name) {
  return new Set(Object.keys((await apiSchemas())[name]?.properties || {}));
}

// Which of `names` this gateway knows: described in its schema, or present in rows it sent.
// Older gateways refuse fields they do not know, so the forms send only these.
async function knownFields(schema, rows, names) {
  const described = await schemaFields(schema);
  return new Set(names.filter((name) => described.has(name) || rows.some((row) => has(row, name))));
}

// Whether the API takes several deployments and fallbacks per model (routing). Read from the
// model list, else from the API's description; older gateways answer without them.
async function routingSupported(models) {
  if (models.some((m) => Array.isArray(m.deployments))) return true;
  return Object.values(await apiSchemas()).some((s) => s.properties && "deployments" in s.properties);
}

// The provider kinds the API accepts, as it describes them.
async function providerKinds() {
  const kinds = (await apiSchemas()).ProviderCreate?.properties?.kind?.enum;
  return Array.isArray(kinds) && kinds.length ? kinds : KINDS;
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
// A labelled input; `choices` are values or [value, label] pairs; `hint` is a line below.
function field(label, name, options = {}) {
  const { type = "text", value = "", required = false, placeholder = "", choices = null, min = null,
    step = null, hint = null } = options;
  let input;
  if (choices) {
    input = h("select", { name }, choices.map((c) => {
      const [v, text] = Array.isArray(c) ? c : [c, c];
      return h("option", { value: v, selected: v === (value ?? "") }, text);
    }));
  } else if (type === "checkbox") {
    input = h("input", { type, name, checked: Boolean(value) });
    return h("label", { class: "check" }, input, " ", label);
  } else {
    input = h("input", { type, name, value: value ?? "", required, placeholder, min,
      step: step ?? (type === "number" ? "any" : null) });
  }
  return h("label", {}, label, input, hint ? h("span", { class: "hint muted" }, hint) : null);
}

function openDialog(title, fields, onSubmit, okLabel = "Save", wide = false) {
  const dialog = $("#dialog");
  dialog.classList.toggle("wide", wide);
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
  $("#dialog-form").scrollTop = 0;
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
// <input type=datetime-local> holds a local time without a zone; the API takes UTC ISO 8601.
const pad2 = (n) => String(n).padStart(2, "0");
const localInputValue = (iso) => {
  if (!iso) return "";
  const d = new Date(iso);
  return `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())}T${pad2(d.getHours())}:${pad2(d.getMinutes())}`;
};
const isoFromLocalInput = (value) => (blankToNull(value) === null ? null : new Date(value).toISOString());
const LOCAL_ZONE = Intl.DateTimeFormat().resolvedOptions().timeZone || "local";

// ---- models: deployments and fallbacks ------------------------------------------------------
// A model's deployments; a gateway without routing describes its one provider at the top level.
function deploymentsOf(m) {
  if (Array.isArray(m.deployments)) return m.deployments;
  if (!m.provider_id) return [];
  return [{ provider_id: m.provider_id, provider_name: m.provider_name, provider_model_name: m.provider_model_name }];
}

function deploymentView(d, routing) {
  const state = d.status === "cooling" ? "cooling" : d.status === "healthy" ? "healthy" : "unknown";
  const tip = [
    state === "unknown" ? "health not reported" : state,
    state === "cooling" && d.cooling_until ? `until ${whenFull(d.cooling_until)}` : null,
    d.last_error ? `last error: ${d.last_error}` : null,
  ].filter(Boolean).join(" · ");
  return h("div", { class: `deployment ${state}`, title: tip, "data-testid": "deployment", "data-state": state },
    h("span", { class: "dot", role: "img", "aria-label": state }),
    h("span", {}, d.provider_name || "unknown provider"),
    h("span", { class: "muted" }, ` → ${d.provider_model_name ?? "—"}`),
    routing && d.weight !== undefined ? h("span", { class: "muted" }, ` · weight ${d.weight} · priority ${d.priority}`) : null,
    state === "cooling" ? h("div", { class: "deployment-detail" },
      `cooling until ${soon(d.cooling_until)}${d.last_error ? `: ${d.last_error}` : ""}`) : null);
}

// Editable rows: provider, provider model name and, with routing, weight and priority.
function deploymentsEditor(providers, model, routing) {
  const rows = h("div", { class: "rows" });
  const add = h("button", { type: "button", class: "small ghost", "data-testid": "add-deployment",
    onclick: () => { rows.append(row({ provider_id: providers[0]?.id })); refresh(); } }, "Add deployment");
  const refresh = () => {
    const all = rows.querySelectorAll(".deployment-row");
    for (const button of rows.querySelectorAll("button.remove")) button.disabled = all.length <= 1;
  };
  const row = (d = {}) => {
    const sameName = !d.provider_model_name || d.provider_model_name === model.name;
    const el = h("div", { class: `deployment-row${routing ? "" : " simple"}`, "data-testid": "deployment-row" },
      h("label", {}, "Provider", h("select", { "data-field": "provider_id" },
        providers.map((p) => h("option", { value: p.id, selected: p.id === d.provider_id }, p.name)))),
      h("label", {}, "Provider model name", h("input", { "data-field": "provider_model_name",
        value: sameName ? "" : d.provider_model_name, placeholder: "same as the model" })),
      routing ? h("label", { class: "num" }, "Weight", h("input", { type: "number", "data-field": "weight",
        min: 1, max: 1000, step: 1, required: true, value: d.weight ?? 1 })) : null,
      routing ? h("label", { class: "num" }, "Priority", h("input", { type: "number", "data-field": "priority",
        min: 0, max: 100, step: 1, required: true, value: d.priority ?? 0 })) : null,
      routing ? h("button", { type: "button", class: "small danger remove", title: "Remove this deployment",
        onclick: () => { el.remove(); refresh(); } }, "Remove") : null);
    return el;
  };
  const initial = deploymentsOf(model);
  for (const d of initial.length ? initial : [{ provider_id: providers[0]?.id }]) rows.append(row(d));
  refresh();
  const read = () => [...rows.querySelectorAll(".deployment-row")].map((el) => {
    const value = (name) => el.querySelector(`[data-field=${name}]`)?.value;
    const d = { provider_id: value("provider_id"), provider_model_name: blankToNull(value("provider_model_name")) };
    if (routing) Object.assign(d, { weight: Number(value("weight")), priority: Number(value("priority")) });
    return d;
  });
  const element = h("fieldset", { class: "editor", "data-testid": "deployments-editor" },
    h("legend", {}, routing ? "Deployments" : "Provider"),
    routing ? h("p", { class: "muted hint" },
      "The lowest priority number is tried first; inside it, requests are spread by weight.") : null,
    rows, routing ? add : null);
  return { element, read };
}

// An ordered list of other models, tried in order when every deployment has failed.
function fallbacksEditor(model, modelNames) {
  const choices = modelNames.filter((name) => name !== model.name);
  const rows = h("ol", { class: "rows fallbacks" });
  const refresh = () => {
    const all = [...rows.children];
    all.forEach((el, i) => {
      el.querySelector("button.up").disabled = i === 0;
      el.querySelector("button.down").disabled = i === all.length - 1;
    });
    add.disabled = choices.length === 0;
  };
  const row = (name) => {
    const el = h("li", { class: "fallback-row", "data-testid": "fallback-row" },
      h("select", { "data-field": "fallback", "aria-label": "Fallback model" },
        [...new Set([name, ...choices])].map((c) => h("option", { value: c, selected: c === name }, c))),
      h("button", { type: "button", class: "small ghost up", title: "Try earlier",
        onclick: () => { el.previousElementSibling?.before(el); refresh(); } }, "↑"),
      h("button", { type: "button", class: "small ghost down", title: "Try later",
        onclick: () => { el.nextElementSibling?.after(el); refresh(); } }, "↓"),
      h("button", { type: "button", class: "small danger", title: "Remove this fallback",
        onclick: () => { el.remove(); refresh(); } }, "Remove"));
    return el;
  };
  const add = h("button", { type: "button", class: "small ghost", "data-testid": "add-fallback", onclick: () => {
    const used = new Set([...rows.querySelectorAll("select")].map((s) => s.value));
    rows.append(row(choices.find((c) => !used.has(c)) ?? choices[0]));
    refresh();
  } }, "Add fallback");
  for (const name of model.fallbacks || []) rows.append(row(name));
  refresh();
  const element = h("fieldset", { class: "editor", "data-testid": "fallbacks-editor" },
    h("legend", {}, "Fallbacks"),
    h("p", { class: "muted hint" }, choices.length
      ? "Other models tried in this order when every deployment has failed."
      : "Create another model to use it as a fallback."),
    rows, add);
  return { element, read: () => [...rows.querySelectorAll("select")].map((s) => s.value) };
}

// A model's prices, one line each; "not priced" when it has none.
const PRICES = [["input_price_per_million", "Input", "in"],
  ["cached_input_price_per_million", "Cached input", "cached in"], ["output_price_per_million", "Output", "out"]];
function priceView(m) {
  const set = PRICES.filter(([name]) => numeric(m[name]));
  if (!set.length) return h("span", { class: "muted", "data-testid": "prices" }, "not priced");
  return h("div", { class: "prices", "data-testid": "prices" },
    set.map(([name, , short]) => h("div", { "data-field": name }, h("span", { class: "muted" }, `${short} `), money(m[name]))));
}

// ---- keys: allowed models, expiry, rate limits, budgets per period ---------------------------
const KEY_POLICY_FIELDS = ["allowed_models", "expires_at", "rpm_limit", "tpm_limit", "budget_period", "cost_budget_usd"];
const PERIODS = [["", "none: the budgets never reset"], ["daily", "daily"], ["weekly", "weekly (from Monday)"],
  ["monthly", "monthly"]];
const isExpired = (k) => Boolean(k.expires_at) && Date.parse(k.expires_at) <= Date.now();

// Model names and `*` globs as removable chips; no chip at all means every model.
function allowedModelsEditor(values, modelNames) {
  const chips = h("div", { class: "chips", "data-testid": "allowed-models" });
  const none = h("span", { class: "muted chips-empty" }, "every model");
  const current = () => [...chips.querySelectorAll(".chip")].map((el) => el.dataset.value);
  const refresh = () => { none.hidden = current().length > 0; };
  const chip = (text) => {
    const el = h("span", { class: "chip", "data-testid": "chip", "data-value": text },
      h("span", {}, text),
      h("button", { type: "button", class: "chip-remove", title: `Remove ${text}`, "aria-label": `Remove ${text}`,
        onclick: () => { el.remove(); refresh(); } }, "×"));
    return el;
  };
  const input = h("input", { list: "allowed-model-names", placeholder: "a name, or a glob such as gpt-4o*",
    "aria-label": "Model name or glob", "data-testid": "allowed-model-input" });
  const add = () => {
    for (const text of input.value.split(",").map((part) => part.trim()).filter(Boolean)) {
      if (!current().includes(text)) chips.append(chip(text));
    }
    input.value = "";
    refresh();
  };
  input.addEventListener("keydown", (event) => { if (event.key === "Enter") { event.preventDefault(); add(); } });
  chips.append(none);
  for (const value of values || []) chips.append(chip(value));
  refresh();
  const element = h("fieldset", { class: "editor" },
    h("legend", {}, "Allowed models"),
    h("p", { class: "muted hint" }, "Names or globs (* matches any text). None: every model, those added later too."),
    chips,
    h("div", { class: "chip-add" }, input,
      h("button", { type: "button", class: "small ghost", "data-testid": "add-allowed-model", onclick: add }, "Add")),
    h("datalist", { id: "allowed-model-names" }, modelNames.map((name) => h("option", { value: name }))));
  // A name typed but not added yet counts too.
  return { element, read: () => { add(); const list = current(); return list.length ? list : null; } };
}

// The key dialog's fields (those the gateway knows) and how to read them into a request body.
function keyForm(k, policy, modelNames) {
  const allowed = policy.has("allowed_models") ? allowedModelsEditor(k?.allowed_models, modelNames) : null;
  const expiry = localInputValue(k?.expires_at);
  const number = (label, name, hint) => field(label, name, { type: "number", value: k?.[name] ?? "", min: 0,
    step: name === "cost_budget_usd" ? "0.01" : "1", hint });
  const fields = [
    field("Name", "name", { value: k?.name, required: true }),
    allowed ? allowed.element : null,
    h("div", { class: "pair" },
      number("Token budget (empty: unlimited)", "token_budget"),
      policy.has("cost_budget_usd") ? number("Cost budget, USD (empty: unlimited)", "cost_budget_usd") : null),
    policy.has("budget_period") || policy.has("expires_at") ? h("div", { class: "pair" },
      policy.has("budget_period") ? field("Budget period", "budget_period", { value: k?.budget_period ?? "",
        choices: PERIODS, hint: "Budgets restart at each period's start, in UTC." }) : null,
      policy.has("expires_at") ? field("Expires (empty: never)", "expires_at", { type: "datetime-local",
        value: expiry, hint: `Your local time (${LOCAL_ZONE}).` }) : null) : null,
    policy.has("rpm_limit") || policy.has("tpm_limit") ? h("div", { class: "pair" },
      policy.has("rpm_limit") ? number("Requests per minute (empty: no limit)", "rpm_limit") : null,
      policy.has("tpm_limit") ? number("Tokens per minute (empty: no limit)", "tpm_limit") : null) : null,
    k ? field("Reset usage to zero", "reset_usage", { type: "checkbox", value: false }) : null,
  ].filter(Boolean);
  const read = (v) => {
    const body = { token_budget: numberOrNull(v.token_budget) };
    if (allowed) body.allowed_models = allowed.read();
    for (const name of ["rpm_limit", "tpm_limit", "cost_budget_usd"]) {
      if (policy.has(name)) body[name] = numberOrNull(v[name]);
    }
    if (policy.has("budget_period")) body.budget_period = blankToNull(v.budget_period);
    // Unchanged, the expiry is not sent: the input holds minutes, the API may hold seconds.
    if (policy.has("expires_at") && (!k || v.expires_at !== expiry)) body.expires_at = isoFromLocalInput(v.expires_at);
    return body;
  };
  return { fields, read };
}

// Used against a limit: a bar and "used / limit unit"; no limit, the amount used alone.
function usageBar(used, limit, show, unit, testid) {
  if (!numeric(limit)) {
    return h("div", { class: "usage-cell", "data-testid": testid },
      h("span", { class: "muted" }, `${show(used ?? 0)} / unlimited ${unit}`));
  }
  const share = Number(limit) > 0 ? Math.min(1, Number(used ?? 0) / Number(limit)) : 1;
  const level = share >= 1 ? "full" : share >= 0.8 ? "high" : "";
  return h("div", { class: "usage-cell", "data-testid": testid },
    h("div", { class: "usage", title: `${Math.round(share * 100)}%` },
      h("div", { class: level, style: `width:${share * 100}%` })),
    h("span", { class: "muted" }, `${show(used ?? 0)} / ${show(limit)} ${unit}`));
}

function keyStatus(k) {
  if (!k.is_active) return badge(false, "active", "revoked");
  if (isExpired(k)) return h("span", { class: "badge err", "data-testid": "expired" }, "expired");
  return badge(true);
}

function keyLimits(k, policy) {
  const rates = [
    numeric(k.rpm_limit) ? `${fmt(k.rpm_limit)} requests/min` : null,
    numeric(k.tpm_limit) ? `${fmt(k.tpm_limit)} tokens/min` : null,
  ].filter(Boolean);
  return h("div", { class: "limits", "data-testid": "limits" },
    policy.has("allowed_models") ? h("div", { "data-testid": "key-models" }, h("span", { class: "muted" }, "models: "),
      k.allowed_models?.length ? k.allowed_models.join(", ") : "all") : null,
    policy.has("rpm_limit") || policy.has("tpm_limit")
      ? h("div", { "data-testid": "key-rates" }, rates.length ? rates.join(" · ") : h("span", { class: "muted" }, "no rate limit"))
      : null);
}

// What resets when: the period, and its next start in local time.
function keyResets(k) {
  if (!k.budget_period) return h("div", { class: "resets muted", "data-testid": "resets" }, "budgets never reset");
  return h("div", { class: "resets", "data-testid": "resets", title: k.budget_resets_at ? whenFull(k.budget_resets_at) : null },
    `${k.budget_period}, next reset ${whenShort(k.budget_resets_at)}`);
}

function keyExpiry(k) {
  if (!k.expires_at) return h("span", { class: "muted", "data-testid": "expiry" }, "never");
  return h("span", { class: isExpired(k) ? "expired" : null, title: whenFull(k.expires_at), "data-testid": "expiry" },
    whenShort(k.expires_at));
}

// ---- dashboard: spend ------------------------------------------------------------------------
// Where /admin/stats puts spend, by the names it has used; a gateway without prices has none.
const SPEND_24H = ["total_cost_usd_24h", "cost_usd_24h", "total_cost_24h"];
const KEY_USAGE = ["key_usage", "cost_by_key"];
const COST_FIELDS = ["cost_usd", "cost", "spend_usd"];
const costOf = (row) => row[COST_FIELDS.find((name) => has(row, name))];
// The spend column's header when the rows report spend, else null (no column).
const spendColumn = (rows) => ((rows || []).some((row) => COST_FIELDS.some((name) => has(row, name))) ? "spend" : null);

// ---- pages --------------------------------------------------------------------------------
const pages = {
  async dashboard(main) {
    const stats = await api("GET", "/admin/stats");
    const tile = (label, value, hint, id) =>
      h("div", { class: "card tile", "data-testid": id ? `tile-${id}` : null },
        h("div", { class: "value" }, value), h("div", { class: "label" }, label),
        hint ? h("div", { class: "hint muted" }, hint) : null);
    const spend = SPEND_24H.find((name) => numeric(stats[name]));
    const keyUsage = KEY_USAGE.map((name) => stats[name]).find(Array.isArray);
    const charts = hourlyCharts(stats.requests_per_hour || []);
    main.append(
      h("div", { class: "toolbar" }, h("h1", {}, "Dashboard")),
      h("div", { class: "tiles" },
        tile("requests (all time)", fmt(stats.total_requests)),
        tile("requests, 24 h", fmt(stats.total_requests_24h), null, "requests-24h"),
        // is_error over every logged request: the gateway's own refusals as well as upstream failures.
        tile("failed requests, 24 h", fmt(stats.total_errors_24h),
          "any cause: upstream failures and the gateway's own refusals", "failed-24h"),
        tile("tokens, 24 h", fmt(stats.total_tokens_24h)),
        tile("avg latency, 24 h", ms(stats.avg_latency_24h)),
        spend ? tile("spend, 24 h", money(stats[spend]), "priced models only", "spend-24h") : null),
      charts.element,
      h("div", { class: "grid2" },
        h("div", { class: "card" }, h("h2", {}, "Models, 7 days"),
          table(["model", "requests", "tokens", spendColumn(stats.model_usage)], stats.model_usage,
            (m) => [m.model, fmt(m.requests), fmt(m.tokens), money(costOf(m))], { testid: "model-usage", wrap: [0] })),
        h("div", { class: "card" }, h("h2", {}, "Providers, 7 days"),
          table(["provider", "requests", "failed", spendColumn(stats.provider_usage)], stats.provider_usage,
            (p) => [p.provider, fmt(p.requests), fmt(p.errors), money(costOf(p))], { testid: "provider-usage", wrap: [0] }),
          h("p", { class: "muted hint" },
            "By the provider of each request's last attempt. Failed: the request ended in an error there "
            + "(an error answer, no answer or a cut stream); attempts that failed over to another "
            + "provider are in the logs, not counted here.")),
        keyUsage ? h("div", { class: "card" }, h("h2", {}, "Keys, 7 days"),
          table(["key", "requests", "tokens", "spend"], keyUsage, (k) => [
            k.key_name || k.name || k.key || (k.key_id ? String(k.key_id).slice(0, 8) : "—"),
            fmt(k.requests), fmt(k.tokens), money(costOf(k))], { testid: "key-usage", wrap: [0] })) : null),
    );
    main.mounted = charts.mount;
  },

  async providers(main) {
    const [providers, kinds] = await Promise.all([api("GET", "/admin/providers"), providerKinds()]);
    const form = (p = {}) => [
      field("Name", "name", { value: p.name, required: true }),
      field("Kind", "kind", { value: p.kind || "openai", choices: kinds }),
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
      table(["name", "kind", "base URL", "key", "status", ""], providers, (p) => [
        p.name, p.kind, p.base_url, p.api_key_preview, badge(p.is_active),
        h("div", { class: "row-actions" },
          h("button", { class: "small ghost", onclick: () => openDialog(`Edit ${p.name}`, form(p), save(p)) }, "Edit"),
          h("button", { class: "small ghost", onclick: () => guarded(async () => {
            await api("PUT", `/admin/providers/${p.id}`, { is_active: !p.is_active }); await render(); }) },
            p.is_active ? "Disable" : "Enable"),
          h("button", { class: "small danger", onclick: () => guarded(async () => {
            if (!confirm(`Delete provider ${p.name}?`)) return;
            await api("DELETE", `/admin/providers/${p.id}`); await render(); }) }, "Delete")),
      ], { stack: true, wrap: [2] }),
    );
  },

  async models(main) {
    const [models, providers] = await Promise.all([api("GET", "/admin/models"), api("GET", "/admin/providers")]);
    const routing = await routingSupported(models);
    const priced = await knownFields("ModelCreate", models, PRICES.map(([name]) => name));
    const open = (m) => {
      const deployments = deploymentsEditor(providers, m || {}, routing);
      const fallbacks = routing ? fallbacksEditor(m || {}, models.map((x) => x.name)) : null;
      const fields = [
        field("Name (what clients ask for)", "name", { value: m?.name, required: true }),
        deployments.element,
        fallbacks ? fallbacks.element : null,
        h("div", { class: "pair" },
          field("Input token coefficient", "input_token_coefficient", { type: "number", value: m?.input_token_coefficient ?? 1 }),
          field("Output token coefficient", "output_token_coefficient", { type: "number", value: m?.output_token_coefficient ?? 1 })),
        priced.size ? h("fieldset", { class: "editor", "data-testid": "prices-editor" },
          h("legend", {}, "Prices, USD per million tokens"),
          h("p", { class: "muted hint" }, "Without input and output prices the model is not priced: its requests "
            + "are logged without a cost. Cached input empty: billed at the input price."),
          h("div", { class: "triple" }, PRICES.filter(([name]) => priced.has(name)).map(([name, label]) =>
            field(label, name, { type: "number", value: m?.[name] ?? "", min: 0, placeholder: "—" })))) : null,
        field("Active", "is_active", { type: "checkbox", value: m ? m.is_active : true }),
      ].filter(Boolean);
      const save = async (v) => {
        const body = {
          name: v.name, is_active: v.is_active,
          input_token_coefficient: numberOrNull(v.input_token_coefficient) ?? 1,
          output_token_coefficient: numberOrNull(v.output_token_coefficient) ?? 1,
        };
        for (const name of priced) body[name] = numberOrNull(v[name]);
        const chosen = deployments.read();
        if (routing) Object.assign(body, { deployments: chosen, fallbacks: fallbacks.read() });
        else Object.assign(body, { provider_id: chosen[0].provider_id, provider_model_name: chosen[0].provider_model_name });
        if (m) await api("PUT", `/admin/models/${m.id}`, body);
        else await api("POST", "/admin/models", body);
      };
      openDialog(m ? `Edit ${m.name}` : "New model", fields, save, m ? "Save" : "Create", true);
    };
    main.append(
      h("div", { class: "toolbar" }, h("h1", {}, "Models"),
        h("button", { disabled: providers.length === 0, title: providers.length ? null : "Create a provider first",
          onclick: () => open(null) }, "New model")),
      table(["name", routing ? "deployments" : "provider", routing ? "fallbacks" : null, "in ×", "out ×",
        priced.size ? "price / 1M tokens" : null, "status", ""],
        models, (m) => [
          m.name,
          h("div", { class: "deployments" }, deploymentsOf(m).map((d) => deploymentView(d, routing))),
          routing ? (m.fallbacks?.length ? m.fallbacks.join(" → ") : "—") : null,
          m.input_token_coefficient, m.output_token_coefficient,
          priced.size ? priceView(m) : null,
          badge(m.is_active),
          h("div", { class: "row-actions" },
            h("button", { class: "small ghost", onclick: () => open(m) }, "Edit"),
            h("button", { class: "small danger", onclick: () => guarded(async () => {
              if (!confirm(`Delete model ${m.name}?`)) return;
              await api("DELETE", `/admin/models/${m.id}`); await render(); }) }, "Delete")),
        ], { stack: true, wrap: [1, 2] }),
    );
  },

  async keys(main) {
    const [keys, models] = await Promise.all([api("GET", "/admin/keys"), api("GET", "/admin/models")]);
    const policy = await knownFields("KeyCreate", keys, KEY_POLICY_FIELDS);
    const modelNames = models.map((m) => m.name);
    const open = (k) => {
      const form = keyForm(k, policy, modelNames);
      openDialog(k ? `Edit key ${k.name}` : "New key", form.fields, async (v) => {
        const body = form.read(v);
        if (!k) {
          const created = await api("POST", "/admin/keys", { name: v.name.trim(), ...body });
          return { title: `Key for ${created.name}`, key: created.key };
        }
        if (v.name.trim() !== k.name) body.name = v.name.trim();
        body.reset_usage = v.reset_usage;
        await api("PUT", `/admin/keys/${k.id}`, body);
        return null;
      }, k ? "Save" : "Create", policy.size > 0);
    };
    main.append(
      h("div", { class: "toolbar" }, h("h1", {}, "Keys"),
        h("button", { onclick: () => open(null) }, "New key")),
      table(["name", "prefix", "status", policy.size ? "limits" : null, "usage",
        policy.has("expires_at") ? "expires" : null, "created", ""], keys, (k) => [
        k.name, h("code", {}, `${k.key_prefix}…`), keyStatus(k),
        policy.size ? keyLimits(k, policy) : null,
        h("div", { class: "usage-stack" },
          usageBar(k.tokens_used, k.token_budget, (n) => `${fmt(n)}`, "tokens", "usage-tokens"),
          policy.has("cost_budget_usd") ? usageBar(k.cost_used_usd ?? 0, k.cost_budget_usd, money, "spend", "usage-spend") : null,
          policy.has("budget_period") ? keyResets(k) : null),
        policy.has("expires_at") ? keyExpiry(k) : null,
        h("span", { title: whenFull(k.created_at) }, whenShort(k.created_at)),
        k.is_active ? h("div", { class: "row-actions" },
          h("button", { class: "small ghost", onclick: () => open(k) }, "Edit"),
          h("button", { class: "small ghost", onclick: () => guarded(async () => {
            if (!confirm(`Rotate ${k.name}? The current key stops working at once.`)) return;
            const rotated = await api("POST", `/admin/keys/${k.id}/rotate`);
            showSecret(`New key for ${k.name}`, rotated.key); await render(); }) }, "Rotate"),
          h("button", { class: "small danger", onclick: () => guarded(async () => {
            if (!confirm(`Revoke ${k.name}? This cannot be undone.`)) return;
            await api("DELETE", `/admin/keys/${k.id}`); await render(); }) }, "Revoke")) : "",
      ], { stack: true, wrap: [0, 3] }),
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
    const costed = logs.data.some((r) => has(r, "cost_usd")); // null: the model had no prices
    main.append(
      h("div", { class: "toolbar" }, h("h1", {}, "Logs")),
      h("form", { class: "filters", onsubmit: apply },
        h("label", {}, "Model", h("input", { name: "model", value: state.model || "" })),
        h("label", {}, "Key", h("select", { name: "key_id" }, h("option", { value: "" }, "any"),
          keys.map((k) => h("option", { value: k.id, selected: k.id === state.key_id }, k.name)))),
        h("label", {}, "Status", h("input", { name: "status_code", value: state.status_code || "", inputmode: "numeric" })),
        h("label", {}, "Outcome", h("select", { name: "is_error" },
          [["", "any"], ["false", "succeeded"], ["true", "failed"]].map(([v, t]) =>
            h("option", { value: v, selected: v === (state.is_error || "") }, t)))),
        h("button", { type: "submit" }, "Filter")),
      table(["time", "key", "model", "status", "tokens", costed ? "cost" : null, "latency", "stream", ""], logs.data, (r) => [
        when(r.created_at), r.key_name || keyNames[r.user_key_id] || r.user_key_id.slice(0, 8),
        r.model_requested || "—", statusBadge(r),
        fmt(r.total_tokens), costed ? h("span", { "data-testid": "cost" }, money(r.cost_usd)) : null,
        ms(r.latency_ms), r.is_stream ? "yes" : "no",
        h("button", { class: "small ghost", onclick: () => guarded(() => showLog(r.id)) }, "Details"),
      ], { stack: true }),
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

// The facts of one request, with readable labels; a field the API does not send is left out.
const LOG_FACTS = [
  ["created_at", "Time", whenFull],
  ["key_name", "Key", (v, r) => v || r.user_key_id],
  ["model_requested", "Model requested"],
  ["model_served", "Model served"],
  ["provider_name", "Provider", (v, r) => (r.provider_kind ? `${v || "—"} (${r.provider_kind})` : v)],
  ["model_sent", "Provider model name"],
  ["status_code", "Status", (v, r) => statusBadge(r)],
  ["attempts", "Attempts", fmt],
  ["is_stream", "Stream", (v) => (v ? "yes" : "no")],
  ["prompt_tokens", "Prompt tokens", fmt],
  ["completion_tokens", "Completion tokens", fmt],
  ["total_tokens", "Total tokens", fmt],
  ["weighted_total_tokens", "Tokens charged to the budget", fmt],
  ["cost_usd", "Cost", (v) => (numeric(v) ? money(v) : "— (the model has no prices)")],
  ["latency_ms", "Latency", ms],
  ["ttfb_ms", "Time to first byte", ms],
  ["error_message", "Error"],
  ["gateway_request_id", "Gateway request ID"],
  ["request_id", "Upstream request ID"],
];

async function showLog(id) {
  const row = await api("GET", `/admin/logs/${id}`);
  const pretty = (text) => {
    if (!text) return h("p", { class: "muted" }, "not stored (LOG_REQUEST_BODY / LOG_RESPONSE_BODY)");
    try { return h("pre", {}, JSON.stringify(JSON.parse(text), null, 2)); } catch { return h("pre", {}, text); }
  };
  const facts = h("dl", { class: "facts", "data-testid": "log-facts" },
    LOG_FACTS.filter(([name]) => has(row, name)).map(([name, label, show]) => {
      const value = show ? show(row[name], row) : row[name];
      return [h("dt", {}, label), h("dd", { "data-field": name }, value === null || value === undefined || value === "" ? "—" : value)];
    }));
  const failed = Array.isArray(row.failed_attempts) ? row.failed_attempts : null;
  openDialog(`Request ${row.gateway_request_id}`, [
    facts,
    failed === null ? null : h("h2", {}, "Failed attempts"),
    failed === null ? null : failed.length === 0
      ? h("p", { class: "muted" }, "None.")
      : table(["provider", "status", "error", "time"], failed, (a) => [
        a.provider_name || a.provider_id || "—", a.status ?? "—", a.error ?? "—", ms(a.ms)],
      { stack: true, wrap: [2], testid: "failed-attempts" }),
    h("h2", {}, "Request body"), pretty(row.request_body),
    h("h2", {}, "Response body"), pretty(row.response_body),
  ].filter(Boolean), null, "Save", true);
}

// A table; `stack` lays each row out as a labelled card at phone width, `wrap` lists the
// columns whose text may wrap. A null header drops its column.
function table(headers, rows, cells, options = {}) {
  if (!rows.length) return h("p", { class: "muted" }, "Nothing here yet.");
  const keep = headers.map((t) => t !== null);
  const wrap = new Set(options.wrap || []);
  const element = h("table", { class: options.stack ? "stack" : null, "data-testid": options.testid || null },
    h("thead", {}, h("tr", {}, headers.filter((t, i) => keep[i]).map((t) => h("th", {}, t)))),
    h("tbody", {}, rows.map((row) => h("tr", {}, cells(row).map((c, i) => keep[i]
      ? h("td", { "data-label": headers[i], class: [wrap.has(i) ? "wrap" : "", headers[i] ? "" : "actions-cell"].join(" ").trim() || null }, c)
      : null)))));
  return h("div", { class: "scroll" }, element);
}

// ---- shell --------------------------------------------------------------------------------
let unmount = [];
async function render() {
  const page = (location.hash || "#dashboard").slice(1);
  const name = pages[page] ? page : "dashboard";
  for (const link of document.querySelectorAll("#nav a")) link.classList.toggle("active", link.dataset.page === name);
  const main = h("main", { id: "main" });
  await pages[name](main);
  for (const undo of unmount) undo();
  $("#main").replaceWith(main);
  unmount = main.mounted ? main.mounted() : [];
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
  $("#theme").onclick = () => {
    applyTheme(document.documentElement.dataset.theme === "dark" ? "light" : "dark");
    if (!$("#app").hidden) guarded(render); // the charts take their colours when drawn
  };
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
