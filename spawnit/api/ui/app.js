// SpawnIt web UI: catalog, deploy form generated from each service's JSON Schema,
// the Proxmox cluster's nodes and free resources, my instances with live status and drift, live job logs (EventSource), cancel and destroy;
// every change reviewed before it is applied: the plan's diff and its policy gate, overrides, drift and its two remedies.
// Login: OpenID Connect authorization code flow with PKCE, against the realm the API names.
"use strict";

const state = { config: null, token: null, client: null, service: null, schema: null, jobStream: null, clientStream: null, currentJob: null, review: null };
const $ = (selector) => document.querySelector(selector);

// ---- Authentication (authorization code + PKCE) --------------------------------------------
function base64url(bytes) {
  return btoa(String.fromCharCode(...new Uint8Array(bytes))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function randomString() {
  return base64url(crypto.getRandomValues(new Uint8Array(32)));
}

async function challengeFor(verifier) {
  return base64url(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)));
}

function claims(token) {
  const payload = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
  return JSON.parse(atob(payload));
}

async function login() {
  const verifier = randomString();
  const stateValue = randomString();
  sessionStorage.setItem("pkce_verifier", verifier);
  sessionStorage.setItem("oidc_state", stateValue);
  sessionStorage.setItem("return_hash", location.hash); // a #job= link survives the round trip to the realm
  const url = new URL(state.config.authorization_endpoint);
  url.search = new URLSearchParams({
    client_id: state.config.client_id,
    response_type: "code",
    scope: "openid",
    redirect_uri: location.origin + "/",
    state: stateValue,
    code_challenge: await challengeFor(verifier),
    code_challenge_method: "S256",
  });
  location.assign(url.toString());
}

async function finishLogin(params) {
  if (params.get("state") !== sessionStorage.getItem("oidc_state")) throw new Error("login: state mismatch");
  const response = await fetch(state.config.token_endpoint, {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({
      grant_type: "authorization_code",
      client_id: state.config.client_id,
      code: params.get("code"),
      redirect_uri: location.origin + "/",
      code_verifier: sessionStorage.getItem("pkce_verifier"),
    }),
  });
  if (!response.ok) throw new Error("login: the token endpoint answered " + response.status);
  const tokens = await response.json();
  sessionStorage.setItem("access_token", tokens.access_token);
  history.replaceState(null, "", "/" + (sessionStorage.getItem("return_hash") || ""));
  sessionStorage.removeItem("return_hash");
}

async function authenticate() {
  state.config = await (await fetch("/api/config")).json();
  if (state.config.auth === "off") {
    state.client = state.config.local_client;
    $("#who").textContent = "local (no login)";
    return true;
  }
  const params = new URLSearchParams(location.search);
  if (params.has("code")) await finishLogin(params);
  state.token = sessionStorage.getItem("access_token");
  if (!state.token || claims(state.token).exp * 1000 < Date.now()) {
    await login();
    return false;
  }
  const who = claims(state.token);
  state.client = who.sub;
  $("#who").textContent = who.preferred_username || who.sub;
  $("#logout").hidden = false;
  return true;
}

// The clients the caller belongs to and its role on each (GET /api/me): a picker when there are several,
// and the page shows only what the role may do (the API refuses the rest anyway).
async function loadGrants() {
  state.me = await api("GET", "/api/me");
  const clients = Object.keys(state.me.grants);
  const saved = sessionStorage.getItem("client");
  if (saved && clients.includes(saved)) state.client = saved;
  else if (!clients.includes(state.client) && clients.length) state.client = clients[0];
  const select = $("#client");
  select.replaceChildren(...clients.map((name) => new Option(`${name} (${state.me.admin ? "admin" : state.me.grants[name]})`, name)));
  select.value = state.client;
  $("#client-choice").hidden = clients.length < 2;
  showRole();
}

function showRole() {
  const role = state.me.admin ? "admin" : state.me.grants[state.client] || "none";
  document.body.dataset.role = role;
  $("#role").textContent = role;
}

async function switchClient() {
  state.client = $("#client").value;
  sessionStorage.setItem("client", state.client);
  showRole();
  if (state.clientStream) state.clientStream.close();
  for (const section of ["#instance-section", "#review-section", "#drift-section", "#jobs-section", "#log-section"]) $(section).hidden = true;
  await showInstances();
  watchClient();
}

async function api(method, path, body) {
  const headers = { "Content-Type": "application/json" };
  if (state.token) headers.Authorization = "Bearer " + state.token;
  const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw Object.assign(new Error(data.error || response.statusText), { status: response.status, fields: data.fields || {} });
  return data;
}

// An event stream that stays open: EventSource cannot send the bearer token, so each connection opens
// with a short-lived ticket for this path only (the token never goes in a URL). When the browser gives
// up on a connection (a ticket expired, a replica restarted), a new one resumes after the last event seen.
function eventSource(path, listeners) {
  let lastId = null;
  let closed = false;
  let current = null;
  const open = async () => {
    const url = new URL(path, location.origin);
    if (state.token) url.searchParams.set("ticket", (await api("POST", "/api/stream-tickets", { path })).ticket);
    if (lastId !== null) url.searchParams.set("last_event_id", lastId);
    if (closed) return;
    current = new EventSource(url);
    for (const [kind, listener] of Object.entries(listeners)) {
      current.addEventListener(kind, (event) => { lastId = event.lastEventId || lastId; listener(event); });
    }
    current.onerror = () => {
      if (current.readyState === EventSource.CLOSED && !closed) setTimeout(() => open().catch(() => {}), 2000);
    };
  };
  open().catch(() => {});
  return { close() { closed = true; if (current) current.close(); } };
}

// ---- Catalog and deploy form -----------------------------------------------------------------
async function showCatalog() {
  const catalog = await api("GET", "/api/catalog");
  state.catalog = Object.fromEntries(catalog.services.map((service) => [service.name, service]));
  const byCategory = {};
  const labels = {};
  for (const service of catalog.services) {
    (byCategory[service.category] ||= []).push(service);
    labels[service.category] = service.category_label || service.category;
  }
  const root = $("#catalog");
  root.replaceChildren();
  for (const category of Object.keys(byCategory).sort()) {
    const group = document.createElement("div");
    group.className = "category";
    group.innerHTML = `<h3></h3><div class="cards"></div>`;
    group.querySelector("h3").textContent = labels[category];
    group.dataset.category = category;
    for (const service of byCategory[category]) {
      const card = document.createElement("button");
      card.className = "card";
      card.dataset.service = service.name;
      card.innerHTML = "<strong></strong><span></span>";
      card.querySelector("strong").textContent = service.name;
      const version = document.createElement("small");
      version.textContent = service.version;  // the version a new instance gets
      card.querySelector("strong").append(" ", version);
      card.querySelector("span").textContent = service.description;
      card.addEventListener("click", () => openForm(service));
      group.querySelector(".cards").append(card);
    }
    root.append(group);
  }
  // A broken template is left out of the catalog and said here, with its problems (GET /api/catalog "broken").
  const broken = $("#catalog-broken");
  broken.replaceChildren();
  for (const item of catalog.broken || []) {
    const line = document.createElement("li");
    line.dataset.source = item.source;
    line.textContent = `Template ${item.source} is left out of the catalog: ${item.problems.join("; ")}`;
    broken.append(line);
  }
  broken.hidden = !(catalog.broken || []).length;
}

// Browsers compile the pattern attribute with the "v" flag, where a class must escape - (outside a range),
// ( ) [ ] { } / and |. The schema's patterns are ordinary regexes: rewrite their classes, and leave out a
// pattern that still does not compile (the API checks every value anyway).
function htmlPattern(pattern) {
  const body = pattern.replace(/^\^/, "").replace(/\$$/, "");
  const rewritten = body.replace(/\[(\^?)((?:\\.|[^\]\\])*)\]/g, (whole, negate, inner) => {
    const tokens = inner.match(/\\.|./gs) || [];
    let out = "";
    for (let i = 0; i < tokens.length; i++) {
      const token = tokens[i];
      const isRange = token === "-" && i > 0 && i < tokens.length - 1;
      if (isRange) out += "-";
      else if (token.length === 1 && "-()[]{}/|".includes(token)) out += "\\" + token;
      else out += token;
    }
    return "[" + negate + out + "]";
  });
  try {
    new RegExp("^(?:" + rewritten + ")$", "v");
    return rewritten;
  } catch {
    return null;
  }
}

function inputFor(name, property, required) {
  let input;
  const type = property.type || (property.anyOf || []).map((option) => option.type).find((t) => t && t !== "null");
  if (property.enum) {
    input = document.createElement("select");
    for (const value of property.enum) input.add(new Option(value, value));
  } else if (type === "boolean") {
    input = document.createElement("input");
    input.type = "checkbox";
  } else if (type === "integer" || type === "number") {
    input = document.createElement("input");
    input.type = "number";
    if (property.minimum !== undefined) input.min = property.minimum;
    if (property.maximum !== undefined) input.max = property.maximum;
    input.step = type === "integer" ? "1" : "any";
  } else if (type === "array") {
    input = document.createElement("input");
    input.placeholder = "comma-separated";
  } else {
    input = document.createElement(property.maxLength > 1000 ? "textarea" : "input");
    const pattern = property.pattern || ((property.anyOf || []).find((option) => option.pattern) || {}).pattern;
    const usable = pattern && htmlPattern(pattern);
    if (usable) input.pattern = usable;
    if (property.minLength) input.minLength = property.minLength;
    if (property.maxLength) input.maxLength = property.maxLength;
  }
  input.name = name;
  input.id = "field-" + name;
  input.required = required && type !== "boolean";
  const initial = property.default;
  if (initial !== undefined && initial !== null) {
    if (type === "boolean") input.checked = initial;
    else input.value = Array.isArray(initial) ? initial.join(",") : initial;
  }
  return { input, type };
}

// One labelled field with its help and the place its error is shown; ids are prefixed per form.
function fieldRow(name, property, required, prefix) {
  const row = document.createElement("div");
  row.className = "field";
  const label = document.createElement("label");
  const { input, type } = inputFor(name, property, required);
  input.id = prefix ? `${prefix}field-${name}` : input.id;
  input.dataset.type = type || "string";
  label.htmlFor = input.id;
  label.textContent = (property.title || name) + (input.required ? " *" : "");
  const help = document.createElement("small");
  help.textContent = property.description || "";
  const error = document.createElement("span");
  error.className = "error";
  error.id = prefix ? `${prefix}error-${name}` : "error-" + name;
  input.addEventListener("input", () => { error.textContent = input.validity.valid ? "" : input.validationMessage; });
  if (property["x-target"]) row.dataset.target = property["x-target"];
  row.append(label, input, help, error);
  return row;
}

function inputValue(input) {
  const type = input.dataset.type;
  if (type === "boolean") return input.checked;
  if (input.value === "") return undefined;
  if (type === "integer" || type === "number") return Number(input.value);
  if (type === "array") return input.value.split(",").map((item) => item.trim()).filter(Boolean);
  return input.value;
}

function openForm(service) {
  state.service = service.name;
  state.schema = service.parameters;
  $("#deploy-service").textContent = service.name;
  $("#deploy-version").textContent = `Version ${service.version}, maintained by ${service.maintainer}.`;
  const fields = $("#fields");
  fields.replaceChildren();
  const required = new Set(state.schema.required || []);
  const rule = state.config.instance_name;  // the API's own rule for a name (GET /api/config)
  const instance = { title: "Instance name", type: "string", pattern: rule.pattern, description: `Optional: ${rule.rule}.` };
  const properties = { instance, ...state.schema.properties };
  for (const [name, property] of Object.entries(properties)) fields.append(fieldRow(name, property, required.has(name), ""));
  const target = $("#field-target");
  if (target) target.addEventListener("change", showTargetFields);
  showTargetFields();
  $("#form-error").textContent = "";
  $("#estimate").textContent = "";
  $("#deploy-section").hidden = false;
  history.replaceState(null, "", "#service=" + service.name);
  $("#deploy-section").scrollIntoView({ block: "start" });
}

// Settings of one target (aws_*, proxmox_*, docker_*) show only while that target is chosen; hidden ones are not sent.
function showTargetFields() {
  const chosen = ($("#field-target") || {}).value || "docker";
  for (const row of $("#fields").querySelectorAll(".field[data-target]")) {
    row.hidden = row.dataset.target !== chosen;
    for (const input of row.querySelectorAll("input, select, textarea")) input.disabled = row.hidden;
  }
}

function formValues() {
  const parameters = {};
  let instance = null;
  for (const input of $("#fields").querySelectorAll("input:enabled, select:enabled, textarea:enabled")) {
    if (input.name === "instance") { instance = input.value || null; continue; }
    const value = inputValue(input);
    if (value !== undefined) parameters[input.name] = value;
  }
  const target = parameters.target || "docker";
  delete parameters.target;
  return { instance, target, parameters };
}

async function deploy(event) {
  event.preventDefault();
  const form = $("#deploy-form");
  let valid = true;
  for (const input of form.querySelectorAll("input:enabled, select:enabled, textarea:enabled")) {
    $("#error-" + input.name).textContent = input.validity.valid ? "" : input.validationMessage;
    valid = valid && input.validity.valid;
  }
  if (!valid) return;
  const { instance, target, parameters } = formValues();
  try {
    const created = await api("POST", `/api/clients/${state.client}/instances`, { service: state.service, target, parameters, instance });
    const job = await api("POST", `/api/clients/${state.client}/instances/${created.instance}/apply`); // a plan, for review
    $("#deploy-section").hidden = true;
    watchJob(job.job, { review: true });
    await showInstances();
  } catch (error) {
    showErrors(error, "error-", $("#form-error"));
  }
}

// A refusal's problems go beside the fields they name (the API's "fields"); the rest under the form.
function showErrors(error, prefix, general) {
  const unplaced = [];
  for (const [field, message] of Object.entries(error.fields || {})) {
    const beside = document.getElementById(prefix + field);
    if (beside && !beside.closest("[hidden]")) beside.textContent = message;
    else unplaced.push(message);
  }
  const placed = Object.keys(error.fields || {}).length - unplaced.length;
  general.textContent = placed ? unplaced.join("\n") : error.message;
}

// ---- Proxmox cluster: nodes and what is free on them ---------------------------------------------
async function showProxmox() {
  const table = $("#proxmox-nodes");
  const message = $("#proxmox-message");
  try {
    const { endpoint, nodes } = await api("GET", "/api/targets/proxmox/resources");
    message.textContent = endpoint;
    const body = table.querySelector("tbody");
    body.replaceChildren();
    for (const node of nodes) {
      const row = body.insertRow();
      row.dataset.node = node.node;
      row.insertCell().textContent = node.node;
      row.insertCell().append(badge(node.online ? "online" : "offline"));
      row.insertCell().textContent = node.online ? node.cores : "-";
      row.insertCell().textContent = node.online ? `${Math.round(node.cpu_usage * 100)} %` : "-";
      row.insertCell().textContent = node.online ? `${(node.free_memory_mb / 1024).toFixed(1)} / ${(node.memory_mb / 1024).toFixed(1)} GB` : "-";
      row.insertCell().textContent = node.storages.map((s) => `${s.storage} ${s.free_gb} / ${s.total_gb} GB`).join(", ") || "-";
      row.insertCell().textContent = node.guests;
    }
    table.hidden = false;
  } catch (error) {
    table.hidden = true;
    message.textContent = error.message;
  }
}

// ---- Instances and logs ----------------------------------------------------------------------
function badge(text) {
  const span = document.createElement("span");
  span.className = "badge " + (text || "");
  span.textContent = text || "-";
  return span;
}

async function showInstances() {
  const { instances } = await api("GET", `/api/clients/${state.client}/instances`);
  const body = $("#instances tbody");
  body.replaceChildren();
  if (!instances.length) {
    const cell = body.insertRow().insertCell();
    cell.colSpan = 7;
    cell.className = "empty";
    cell.textContent = "No instance yet: choose a service in the catalog above to deploy one.";
  }
  for (const item of instances) {
    const row = body.insertRow();
    row.dataset.instance = item.instance;
    row.insertCell().append(button(item.instance, "link instance-open", () => openInstance(item.instance).catch(alertError)));
    row.insertCell().textContent = item.service;
    row.insertCell().textContent = item.target;
    const status = item.last_job ? `${item.last_job.action} ${item.last_job.status}` : "created";
    row.insertCell().append(badge(item.last_job ? item.last_job.status : ""));
    row.cells[3].title = status;
    const live = row.insertCell(); // what the target reports now (docker: each container's state and health)
    live.append(badge(item.live ? item.live.status : ""));
    if (item.live && item.live.containers) live.title = item.live.containers.map((c) => `${c.name}: ${c.state}${c.health ? " (" + c.health + ")" : ""}`).join("\n");
    const drift = row.insertCell();
    if (item.drift === "drifted") {
      const open = button("", "link drift-open", () => openDrift(item.instance));
      open.append(badge(item.drift));
      open.setAttribute("aria-label", `Drift of ${item.instance}: see what changed`);
      drift.append(open);
    } else drift.append(badge(item.drift));
    if (item.drift_resources && item.drift_resources.length) drift.title = "Changed: " + item.drift_resources.join(", ");
    if (item.drift_check && item.drift_check.status !== "succeeded") drift.title = `Last drift check ${item.drift_check.status}`;
    const actions = row.insertCell();
    const logs = button("Logs", "logs", () => watchJob(item.last_job.id));
    logs.disabled = !item.last_job;
    const plan = button("Plan", "plan needs-operator", async () => {
      try { watchJob((await api("POST", `/api/clients/${state.client}/instances/${item.instance}/plan`)).job, { review: true }); }
      catch (error) { alertError(error); }
    });
    actions.append(plan);
    const last = item.last_job;
    if (last && last.action === "plan" && last.status === "succeeded" && last.plan) {
      actions.append(button("Review", "review", () => openReview(last.id)));
    }
    const destroy = button("Destroy", "destroy needs-operator", async () => {
      if (!confirm(`Destroy ${item.instance}?`)) return;
      try { watchJob((await api("DELETE", `/api/clients/${state.client}/instances/${item.instance}`)).job); }
      catch (error) { alertError(error); }
    });
    actions.append(logs, destroy);
  }
}

function button(text, className, onClick) {
  const element = document.createElement("button");
  element.type = "button";
  element.textContent = text;
  element.className = className;
  element.addEventListener("click", onClick);
  return element;
}

// A refusal (409: another job holds the instance, a stale or blocked plan) is shown, never an unhandled rejection.
function alertError(error) {
  const notice = $("#notice");
  notice.textContent = error.message;
  notice.hidden = false;
  notice.scrollIntoView({ block: "nearest" });
}

function watchJob(jobId, { review = false } = {}) {
  if (state.jobStream) state.jobStream.close();
  state.currentJob = jobId;
  history.replaceState(null, "", "#job=" + jobId); // a link to this log
  $("#cancel-job").disabled = false;
  $("#log-section").hidden = false;
  $("#log-job").textContent = jobId;
  $("#log").textContent = "";
  const status = $("#log-status");
  status.className = "badge";
  status.textContent = "connecting";
  const stream = eventSource(`/api/jobs/${jobId}/events`, {
    line: (event) => {
      const log = $("#log");
      log.textContent += event.data + "\n";
      log.scrollTop = log.scrollHeight;
    },
    status: (event) => {
      status.className = "badge " + event.data;
      status.textContent = event.data;
      if (["succeeded", "failed", "cancelled", "interrupted"].includes(event.data)) {
        $("#cancel-job").disabled = true;
        stream.close();
        showInstances();
        if (review && event.data === "succeeded") {
          api("GET", `/api/jobs/${jobId}`).then((record) => { if (record.plan) openReview(jobId); else $("#log").textContent += "No changes: nothing to review.\n"; }).catch(() => {});
        }
      }
    },
  });
  state.jobStream = stream;
}

// ---- Review: the plan's diff and its policy gate, then apply exactly that plan ----------------------------------
const ACTION_TITLES = { delete: "Delete", replace: "Replace", update: "Update in place", create: "Create", read: "Read",
  "deleted outside": "Deleted outside SpawnIt", "changed outside": "Changed outside SpawnIt" };
const shownValue = (value) => (value === null || value === undefined ? "(none)" : typeof value === "string" ? value : JSON.stringify(value));

function renderDiff(root, entries) {
  root.replaceChildren();
  const groups = {};
  for (const entry of entries) (groups[entry.action] ||= []).push(entry);
  for (const [action, items] of Object.entries(groups)) {
    const group = document.createElement("div");
    group.className = "group " + action.replace(" ", "-");
    group.dataset.action = action;
    const heading = document.createElement("h3");
    heading.textContent = `${["delete", "replace", "deleted outside"].includes(action) ? "⚠ " : ""}${ACTION_TITLES[action] || action} (${items.length})`;
    group.append(heading);
    for (const entry of items) {
      const box = document.createElement("div");
      box.className = "resource " + action.replace(" ", "-");
      box.dataset.address = entry.address;
      const name = document.createElement("code");
      name.textContent = entry.address;
      box.append(name);
      if (entry.forced_by && entry.forced_by.length) {
        const forced = document.createElement("div");
        forced.className = "forced";
        forced.textContent = "replaced because of: " + entry.forced_by.join(", ");
        box.append(forced);
      }
      if (entry.attributes && entry.attributes.length) {
        const table = document.createElement("table");
        table.innerHTML = "<thead><tr><th>Attribute</th><th>Before</th><th>After</th></tr></thead><tbody></tbody>";
        for (const attribute of entry.attributes) {
          const row = table.tBodies[0].insertRow();
          for (const value of [attribute.attribute, shownValue(attribute.before), shownValue(attribute.after)]) row.insertCell().textContent = value;
        }
        box.append(table);
      }
      group.append(box);
    }
    root.append(group);
  }
}

function renderGate(root, jobId, gate) {
  root.replaceChildren();
  if (!gate) return;
  const overridden = new Set((gate.overrides || []).map((item) => item.check));
  for (const check of gate.checks) {
    const box = document.createElement("div");
    const verdict = check.passed ? "passed" : overridden.has(check.name) ? "overridden" : "blocked";
    box.className = "check " + verdict;
    box.dataset.check = check.name;
    const title = document.createElement("strong");
    title.textContent = `${check.name === "security" ? "Security (Checkov)" : "Monthly cost"}: ${verdict}`;
    box.append(title);
    const list = document.createElement("ul");
    const line = (text) => { const item = document.createElement("li"); item.textContent = text; list.append(item); };
    if (check.name === "cost") {
      if (check.after_usd === null) line(check.note || "not priced");
      else line(`${check.before_usd.toFixed(2)} → ${check.after_usd.toFixed(2)} USD a month (${check.delta_usd >= 0 ? "+" : ""}${check.delta_usd.toFixed(2)}); ` +
        (check.budget_usd === null ? "no budget set" : `the client's total ${check.client_total_usd.toFixed(2)} of ${check.budget_usd.toFixed(2)} USD`));
    }
    for (const reason of check.reasons) line(reason);
    for (const finding of check.findings || []) if (finding.accepted) line(`accepted: ${finding.check} on ${finding.resource}: ${finding.accepted}`);
    for (const item of gate.overrides || []) if (item.check === check.name) line(`overridden by ${item.by} at ${item.at}: ${item.reason}`);
    box.append(list);
    if (verdict === "blocked") {
      const form = document.createElement("form");
      form.className = "override needs-admin";
      form.noValidate = true;
      const label = document.createElement("label");
      label.textContent = "Override (admin), reason:";
      label.htmlFor = `override-${check.name}`;
      const reason = document.createElement("input");
      reason.id = `override-${check.name}`;
      reason.required = true;
      reason.minLength = 10;
      reason.placeholder = "at least 10 characters, recorded";
      const submit = document.createElement("button");
      submit.textContent = `Override ${check.name}`;
      form.append(label, reason, submit);
      form.addEventListener("submit", async (event) => {
        event.preventDefault();
        try {
          await api("POST", `/api/jobs/${jobId}/gate/overrides`, { check: check.name, reason: reason.value });
          await openReview(jobId);
        } catch (error) { $("#review-error").textContent = error.message; }
      });
      box.append(form);
    }
    root.append(box);
  }
}

// ---- One instance: facts, parameters (edited through a reviewed plan), outputs, secrets, history --------------
function fact(list, term, value) {
  const dt = document.createElement("dt");
  dt.textContent = term;
  const dd = document.createElement("dd");
  if (term) dd.dataset.fact = term;
  if (value instanceof Node) dd.append(value); else dd.textContent = value;
  list.append(dt, dd);
}

async function openInstance(name) {
  const [item, secrets, history] = await Promise.all([
    api("GET", `/api/clients/${state.client}/instances/${name}`),
    api("GET", `/api/clients/${state.client}/instances/${name}/secrets`),
    api("GET", `/api/clients/${state.client}/instances/${name}/jobs`),
  ]);
  history_(name);
  $("#instance-name").textContent = name;
  const facts = $("#instance-facts");
  facts.replaceChildren();
  fact(facts, "Service", item.service);
  fact(facts, "Version", versionControl(item));
  fact(facts, "Target", item.target);
  fact(facts, "Deployed", item.deployed_at || "not yet");
  fact(facts, "Drift", badge(item.drift));
  fact(facts, "Monthly cost", item.monthly_cost_usd === null || item.monthly_cost_usd === undefined ? "not deployed" : `${item.monthly_cost_usd.toFixed(2)} USD`);
  fact(facts, "Footprint", footprintText(item));
  fact(facts, "Expires", expiryControl(item));
  if (item.live) fact(facts, "Live", badge(item.live.status));

  // The instance's own version's parameters: it is synthesized from that version until it is upgraded.
  const service = item.service_version
    ? { parameters: await api("GET", `/api/catalog/${item.service}?version=${encodeURIComponent(item.service_version)}`) }
    : state.catalog[item.service];
  const fields = $("#edit-fields");
  fields.replaceChildren();
  const required = new Set(service.parameters.required || []);
  for (const [field, property] of Object.entries(service.parameters.properties)) {
    if (field === "target" || (property["x-target"] && property["x-target"] !== item.target)) continue;
    const current = item.parameters[field];
    fields.append(fieldRow(field, { ...property, default: current === undefined ? property.default : current }, required.has(field), "edit-"));
  }
  $("#edit-error").textContent = "";
  $("#edit-form").onsubmit = (event) => saveParameters(event, item);

  const outputs = $("#instance-outputs");
  outputs.replaceChildren();
  const entries = Object.entries(item.outputs || {});
  if (!entries.length) fact(outputs, "", Object.assign(document.createElement("span"), { className: "empty", textContent: "No outputs yet: they appear after an apply." }));
  for (const [key, value] of entries) fact(outputs, key, shownValue(value));

  const secretRows = $("#instance-secrets tbody");
  secretRows.replaceChildren();
  for (const secret of secrets.secrets) {
    const row = secretRows.insertRow();
    row.dataset.secret = secret.name;
    row.insertCell().textContent = secret.name + (secret.pending ? " (rotation pending)" : "");
    const value = row.insertCell();
    value.textContent = "••••••••";
    row.insertCell().append(button("Reveal", "reveal needs-operator", async () => {
      try {
        const revealed = await api("POST", `/api/clients/${state.client}/instances/${name}/secrets/${secret.name}/reveal`);
        const code = document.createElement("code");
        code.textContent = revealed.value;
        value.replaceChildren(code);
      } catch (error) { alertError(error); }
    }));
  }
  if (!secrets.secrets.length) secretRows.insertRow().insertCell().textContent = "This service has no secrets.";

  const jobRows = $("#instance-history tbody");
  jobRows.replaceChildren();
  for (const job of history.jobs) {
    const row = jobRows.insertRow();
    row.dataset.job = job.id;
    row.insertCell().textContent = job.created_at.replace("T", " ").replace("Z", "");
    jobCells(row, job);
  }
  if (!history.jobs.length) jobRows.insertRow().insertCell().textContent = "No job yet.";
  $("#instance-section").hidden = false;
  $("#instance-section").scrollIntoView({ block: "start" });
}

function describeJob(job) {
  const kind = job.refresh_only ? "plan (refresh-only)" : job.applies_plan ? "apply (reviewed plan)" : job.auto_approved ? "apply (plan-and-apply)" : job.action;
  return kind + (job.plan ? ` — ${job.plan.summary}` : "") + (job.gate && !job.gate.passed ? " — gate blocked" : "");
}

function jobCells(row, job) {
  row.insertCell().textContent = describeJob(job);
  row.insertCell().append(badge(job.status));
  row.insertCell().textContent = job.requested_by || "-";
  const actions = row.insertCell();
  actions.append(button("Logs", "logs", () => watchJob(job.id)));
  if (job.plan && job.status === "succeeded") actions.append(button("Review", "review", () => openReview(job.id).catch(alertError)));
}

async function openJobs() {
  const { jobs } = await api("GET", `/api/clients/${state.client}/jobs`);
  history.replaceState(null, "", "#jobs");
  const body = $("#jobs tbody");
  body.replaceChildren();
  for (const job of jobs) {
    const row = body.insertRow();
    row.dataset.job = job.id;
    row.insertCell().textContent = job.created_at.replace("T", " ").replace("Z", "");
    row.insertCell().append(button(job.instance, "link instance-open", () => openInstance(job.instance).catch(alertError)));
    jobCells(row, job);
  }
  if (!jobs.length) {
    const cell = body.insertRow().insertCell();
    cell.colSpan = 6;
    cell.className = "empty";
    cell.textContent = "No job yet: deploy a service from the catalog.";
  }
  $("#jobs-section").hidden = false;
  $("#jobs-section").scrollIntoView({ block: "start" });
}

// ---- Audit trail: filters, older pages, CSV ------------------------------------------------------
function auditQuery() {
  const query = new URLSearchParams({ client: state.client, limit: "50" });
  for (const input of $("#audit-filters").querySelectorAll("input, select")) {
    if (!input.value) continue;
    query.set(input.name, input.type === "datetime-local" ? new Date(input.value).toISOString() : input.value);
  }
  return query;
}

async function openAudit({ more = false } = {}) {
  const query = auditQuery();
  if (more && state.auditCursor) query.set("cursor", state.auditCursor);
  $("#audit-error").textContent = "";
  let page;
  try { page = await api("GET", "/api/audit?" + query); }
  catch (error) { $("#audit-error").textContent = error.message; return; }
  history.replaceState(null, "", "#audit");
  const body = $("#audit tbody");
  if (!more) body.replaceChildren();
  for (const record of page.records) {
    const row = body.insertRow();
    row.dataset.action = record.action;
    row.insertCell().textContent = record.at.replace("T", " ").replace("Z", "");
    row.insertCell().append(badge(record.outcome));
    row.insertCell().textContent = record.action;
    row.insertCell().textContent = record.subject || "?";
    row.insertCell().textContent = record.instance || "";
    row.insertCell().textContent = record.job ? record.job.slice(0, 8) : "";
    row.insertCell().textContent = record.address || "";
    row.title = Object.entries(record.details || {}).map(([key, value]) => `${key}: ${value}`).join("\n");
  }
  if (!body.rows.length) {
    const cell = body.insertRow().insertCell();
    cell.colSpan = 7;
    cell.className = "empty";
    cell.textContent = "No record matches these filters.";
  }
  state.auditCursor = page.next_cursor;
  $("#audit-more").hidden = !page.next_cursor;
  $("#audit-section").hidden = false;
  if (!more) $("#audit-section").scrollIntoView({ block: "start" });
}

async function exportAudit() {
  const query = auditQuery();
  query.set("format", "csv");
  query.delete("limit");
  const headers = state.token ? { Authorization: "Bearer " + state.token } : {};
  const response = await fetch("/api/audit?" + query, { headers });
  if (!response.ok) { $("#audit-error").textContent = (await response.json().catch(() => ({}))).error || response.statusText; return; }
  const link = document.createElement("a");
  link.href = URL.createObjectURL(await response.blob());
  link.download = `spawnit-audit-${state.client}.csv`;
  document.body.append(link);
  link.click();
  link.remove();
}

async function estimateCost() {
  const { target, parameters } = formValues();
  const shown = $("#estimate");
  shown.textContent = "Estimating…";
  try {
    const estimate = await api("POST", `/api/catalog/${state.service}/estimate`, { target, parameters });
    shown.textContent = !estimate.priced ? "Not priced: no offline price table for this region."
      : estimate.monthly_usd === 0 ? "0.00 USD a month from the cloud: it runs on your own host."
      : `About ${estimate.monthly_usd.toFixed(2)} USD a month (offline list prices, before the first plan).`;
  } catch (error) {
    shown.textContent = error.message;
  }
}

// When the instance is destroyed, and (for an operator) a way to move it, within the client's limits.
function expiryControl(item) {
  const box = document.createElement("span");
  box.className = "expiry";
  const when = document.createElement("span");
  when.className = "expires-at";
  when.textContent = item.expires_at ? item.expires_at.replace("T", " ").replace("Z", " UTC") : "never";
  const form = document.createElement("form");
  form.className = "expiry-form needs-operator";
  form.noValidate = true;
  const hours = document.createElement("input");
  hours.type = "number";
  hours.min = "1";
  hours.step = "1";
  hours.id = "expiry-hours";
  hours.setAttribute("aria-label", "Expire in hours");
  hours.placeholder = "hours";
  const save = document.createElement("button");
  save.textContent = item.expires_at ? "Extend" : "Set expiry";
  const error = document.createElement("span");
  error.className = "error";
  error.id = "expiry-error";
  form.append(hours, save, error);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    try {
      const answer = await api("PUT", `/api/clients/${state.client}/instances/${item.instance}/expiry`, { expires_in_hours: Number(hours.value) });
      when.textContent = answer.expires_at ? answer.expires_at.replace("T", " ").replace("Z", " UTC") : "never";
    } catch (failure) { error.textContent = failure.message; }
  });
  box.append(when, form);
  return box;
}

// The applied configuration's monthly footprint (Boavizta), or why there is none.
function footprintText(item) {
  const footprint = item.footprint;
  if (!item.deployed_at || !footprint) return "not deployed";
  if (footprint.total_kg === null) return footprint.note;
  const left = footprint.not_estimated.length ? `; not estimated: ${footprint.not_estimated.length} managed resource(s)` : "";
  const problems = footprint.problems.length ? `; unknown: ${footprint.problems.join(", ")}` : "";
  return `${footprint.total_kg.toFixed(2)} kgCO2e a month (Boavizta${left}${problems})`;
}

function history_(name) { history.replaceState(null, "", "#instance=" + name); }

// The instance's version, the newer ones it may move to (each through a reviewed plan) and its upgrade policy.
function versionControl(item) {
  const box = document.createElement("span");
  box.className = "version";
  const current = document.createElement("span");
  current.textContent = item.service_version || "1.0.0";
  box.append(current);
  if (item.service_deprecated) {
    const note = document.createElement("small");
    note.className = "deprecated";
    note.textContent = ` deprecated: ${item.service_deprecated}`;
    box.append(note);
  }
  const newest = (item.upgrades || []).at(-1);
  if (newest) {
    const note = document.createElement("strong");
    note.className = "upgrade-available";
    note.textContent = ` upgrade available: ${newest} `;
    box.append(note, button(`Upgrade to ${newest}`, "upgrade needs-operator", async () => {
      try {
        const job = await api("POST", `/api/clients/${state.client}/instances/${item.instance}/upgrade`, { version: newest });
        $("#instance-section").hidden = true;
        watchJob(job.job, { review: true });
      } catch (error) { alertError(error); }
    }));
  }
  const policy = document.createElement("select");
  policy.className = "upgrade-policy needs-operator";
  policy.setAttribute("aria-label", "Upgrade policy");
  for (const [value, text] of [["pinned", "pinned: upgrade by hand"], ["minor", "follow minor versions when safe"]]) {
    policy.append(new Option(text, value, false, (item.upgrade_policy || "pinned") === value));
  }
  policy.addEventListener("change", () => api("PUT", `/api/clients/${state.client}/instances/${item.instance}/upgrade-policy`, { policy: policy.value }).catch(alertError));
  box.append(" ", policy);
  if (item.auto_upgrade) {
    const auto = document.createElement("small");
    auto.className = "auto-upgrade";
    auto.textContent = ` automatic upgrade to ${item.auto_upgrade.version}: ${item.auto_upgrade.status}${item.auto_upgrade.reasons ? " (" + item.auto_upgrade.reasons.join("; ") + ")" : ""}`;
    box.append(auto);
  }
  return box;
}

async function saveParameters(event, item) {
  event.preventDefault();
  const parameters = {};
  for (const input of $("#edit-fields").querySelectorAll("input, select, textarea")) {
    const value = inputValue(input);
    if (value !== undefined) parameters[input.name] = value;
  }
  for (const error of $("#edit-fields").querySelectorAll(".error")) error.textContent = "";
  try {
    await api("PATCH", `/api/clients/${state.client}/instances/${item.instance}`, { parameters });
    const job = await api("POST", `/api/clients/${state.client}/instances/${item.instance}/plan`);
    $("#instance-section").hidden = true;
    watchJob(job.job, { review: true });
  } catch (error) {
    showErrors(error, "edit-error-", $("#edit-error"));
  }
}

async function openReview(jobId) {
  const plan = await api("GET", `/api/jobs/${jobId}/plan`);
  state.review = plan;
  history.replaceState(null, "", "#review=" + jobId);
  $("#review-instance").textContent = plan.instance;
  $("#review-summary").textContent = plan.diff.summary;
  $("#review-meta").textContent = `plan ${jobId.slice(0, 8)} by ${plan.made_by || "?"} at ${plan.made_at}, expires ${plan.expires_at}; sha256 ${plan.sha256.slice(0, 12)}` +
    (plan.refresh_only ? " — refresh-only: accepts the cloud's values into the state" : "");
  renderGate($("#review-gate"), jobId, plan.gate);
  renderDiff($("#review-diff"), [...plan.diff.drift, ...plan.diff.resources]);
  const blocked = plan.gate && !plan.gate.checks.every((check) => check.passed || (plan.gate.overrides || []).some((item) => item.check === check.name));
  $("#apply-plan").disabled = Boolean(blocked);
  $("#apply-plan").title = blocked ? "The policy gate blocks this plan" : "";
  $("#review-error").textContent = "";
  $("#review-section").hidden = false;
  $("#review-section").scrollIntoView({ block: "start" });
}

async function applyReviewed() {
  const plan = state.review;
  try {
    const job = await api("POST", `/api/clients/${plan.client}/instances/${plan.instance}/apply`, { plan: plan.job });
    $("#review-section").hidden = true;
    watchJob(job.job);
  } catch (error) {
    $("#review-error").textContent = error.message; // 409: what moved since, or what blocks it
  }
}

async function openDrift(instance) {
  const drift = await api("GET", `/api/clients/${state.client}/instances/${instance}/drift`);
  history.replaceState(null, "", "#drift=" + instance);
  $("#drift-instance").textContent = instance;
  const check = drift.check ? `checked ${drift.checked_at || drift.check.at} (${drift.check.status})` : "not checked yet";
  $("#drift-summary").textContent = `${drift.drift}: ${drift.resources.length} resource(s) differ from the declared state; ${check}`;
  renderDiff($("#drift-diff"), drift.diff ? drift.diff.drift.length ? drift.diff.drift : drift.diff.resources : []);
  $("#drift-restore").disabled = !drift.plan;
  $("#drift-restore").onclick = () => { $("#drift-section").hidden = true; openReview(drift.plan).catch((error) => { $("#drift-error").textContent = error.message; }); };
  $("#drift-accept").onclick = async () => {
    try {
      const job = await api("POST", `/api/clients/${state.client}/instances/${instance}/plan`, { refresh_only: true });
      $("#drift-section").hidden = true;
      watchJob(job.job, { review: true });
    } catch (error) { $("#drift-error").textContent = error.message; }
  };
  $("#drift-error").textContent = "";
  $("#drift-section").hidden = false;
  $("#drift-section").scrollIntoView({ block: "start" });
}

function watchClient() {
  let pending = null;
  const refresh = () => { clearTimeout(pending); pending = setTimeout(showInstances, 200); };
  const expiry = (event) => {  // warnings and expiry destroys are said on the page, whatever it shows
    const data = JSON.parse(event.data);
    if (data.event === "expiry.warning") alertError(new Error(`${data.instance} expires in less than ${data.in.replace("d", " days").replace("h", " hours").replace("m", " minutes")} (${data.expires_at}); extend it on its page.`));
    if (data.event === "expiry.destroy") alertError(new Error(`${data.instance} expired at ${data.expires_at}: it is being destroyed.`));
    refresh();
  };
  state.clientStream = eventSource(`/api/clients/${state.client}/events`, { status: refresh, drift: refresh, expiry });
}

async function start() {
  $("#deploy-form").addEventListener("submit", deploy);
  $("#deploy-cancel").addEventListener("click", () => { $("#deploy-section").hidden = true; history.replaceState(null, "", location.pathname); });
  $("#cancel-job").addEventListener("click", () => state.currentJob && api("DELETE", `/api/jobs/${state.currentJob}`).catch((error) => { $("#log-error").textContent = error.message; }));
  $("#apply-plan").addEventListener("click", applyReviewed);
  $("#review-close").addEventListener("click", () => { $("#review-section").hidden = true; });
  $("#drift-close").addEventListener("click", () => { $("#drift-section").hidden = true; });
  $("#instance-close").addEventListener("click", () => { $("#instance-section").hidden = true; });
  $("#jobs-open").addEventListener("click", () => openJobs().catch(alertError));
  $("#jobs-close").addEventListener("click", () => { $("#jobs-section").hidden = true; });
  $("#estimate-cost").addEventListener("click", estimateCost);
  $("#audit-open").addEventListener("click", () => openAudit().catch(alertError));
  $("#audit-filters").addEventListener("submit", (event) => { event.preventDefault(); openAudit().catch(alertError); });
  $("#audit-more").addEventListener("click", () => openAudit({ more: true }).catch(alertError));
  $("#audit-csv").addEventListener("click", () => exportAudit().catch(alertError));
  $("#audit-close").addEventListener("click", () => { $("#audit-section").hidden = true; });
  $("#client").addEventListener("change", () => switchClient().catch(alertError));
  $("#logout").addEventListener("click", () => { sessionStorage.clear(); location.assign(state.config.end_session_endpoint || "/"); });
  if (!(await authenticate())) return;
  // The address the page was opened with (restored after a login) is its deep link: read it now, since a
  // click made while the page still loads (a service's form, the jobs page) rewrites it and must not be undone.
  const opening = location.hash;
  await loadGrants();
  await showCatalog();
  await showInstances();
  await showProxmox();
  watchClient();
  const linked = opening.match(/^#job=([0-9a-f-]{36})$/);
  if (linked) watchJob(linked[1]);
  const reviewed = opening.match(/^#review=([0-9a-f-]{36})$/);
  if (reviewed) await openReview(reviewed[1]);
  const drifted = opening.match(/^#drift=([a-z0-9-]+)$/);
  if (drifted) await openDrift(drifted[1]);
  const opened = opening.match(/^#instance=([a-z0-9-]+)$/);
  if (opened) await openInstance(opened[1]);
  if (opening === "#jobs") await openJobs();
  if (opening === "#audit") await openAudit();
  if (opening === "#catalog") $("#catalog-section").scrollIntoView({ block: "start" });
  const chosen = opening.match(/^#service=([a-z0-9-]+)$/);
  if (chosen) {
    if (state.catalog[chosen[1]]) openForm(state.catalog[chosen[1]]);
    else alertError(new Error(`service ${chosen[1]} is not in the catalog; it lists ${Object.keys(state.catalog).join(", ")}`));
  }
}

start().catch((error) => { document.body.insertAdjacentHTML("beforeend", `<p class="error" role="alert"></p>`); document.body.lastElementChild.textContent = error.message; });
