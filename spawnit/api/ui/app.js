// SpawnIt web UI: catalog, deploy form generated from each service's JSON Schema,
// the Proxmox cluster's nodes and free resources, my instances with live status and drift, live job logs (EventSource), cancel and destroy.
// Login: OpenID Connect authorization code flow with PKCE, against the realm the API names.
"use strict";

const state = { config: null, token: null, client: null, service: null, schema: null, jobStream: null, clientStream: null, currentJob: null };
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

async function api(method, path, body) {
  const headers = { "Content-Type": "application/json" };
  if (state.token) headers.Authorization = "Bearer " + state.token;
  const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw Object.assign(new Error(data.error || response.statusText), { status: response.status });
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
  const byCategory = {};
  for (const service of catalog.services) (byCategory[service.category] ||= []).push(service);
  const root = $("#catalog");
  root.replaceChildren();
  for (const category of Object.keys(byCategory).sort()) {
    const group = document.createElement("div");
    group.className = "category";
    group.innerHTML = `<h3></h3><div class="cards"></div>`;
    group.querySelector("h3").textContent = category;
    for (const service of byCategory[category]) {
      const card = document.createElement("button");
      card.className = "card";
      card.dataset.service = service.name;
      card.innerHTML = "<strong></strong><span></span>";
      card.querySelector("strong").textContent = service.name;
      card.querySelector("span").textContent = service.description;
      card.addEventListener("click", () => openForm(service));
      group.querySelector(".cards").append(card);
    }
    root.append(group);
  }
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

function openForm(service) {
  state.service = service.name;
  state.schema = service.parameters;
  $("#deploy-service").textContent = service.name;
  const fields = $("#fields");
  fields.replaceChildren();
  const required = new Set(state.schema.required || []);
  const instance = { title: "Instance name", type: "string", pattern: "^[a-z][a-z0-9-]{0,30}[a-z0-9]$", description: "Optional: 2-32 lowercase letters, digits and '-', starting with a letter." };
  const properties = { instance, ...state.schema.properties };
  for (const [name, property] of Object.entries(properties)) {
    const row = document.createElement("div");
    row.className = "field";
    const label = document.createElement("label");
    label.htmlFor = "field-" + name;
    label.textContent = property.title || name;
    const { input, type } = inputFor(name, property, required.has(name));
    input.dataset.type = type || "string";
    const help = document.createElement("small");
    help.textContent = property.description || "";
    const error = document.createElement("span");
    error.className = "error";
    error.id = "error-" + name;
    input.addEventListener("input", () => { error.textContent = input.validity.valid ? "" : input.validationMessage; });
    if (property["x-target"]) row.dataset.target = property["x-target"];
    row.append(label, input, help, error);
    fields.append(row);
  }
  const target = $("#field-target");
  if (target) target.addEventListener("change", showTargetFields);
  showTargetFields();
  $("#form-error").textContent = "";
  $("#deploy-section").hidden = false;
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
    const type = input.dataset.type;
    if (input.name === "instance") { instance = input.value || null; continue; }
    if (type === "boolean") parameters[input.name] = input.checked;
    else if (input.value === "") continue;
    else if (type === "integer" || type === "number") parameters[input.name] = Number(input.value);
    else if (type === "array") parameters[input.name] = input.value.split(",").map((item) => item.trim()).filter(Boolean);
    else parameters[input.name] = input.value;
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
    const job = await api("POST", `/api/clients/${state.client}/instances/${created.instance}/apply`);
    $("#deploy-section").hidden = true;
    watchJob(job.job);
    await showInstances();
  } catch (error) {
    $("#form-error").textContent = error.message;
  }
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
  for (const item of instances) {
    const row = body.insertRow();
    row.dataset.instance = item.instance;
    row.insertCell().textContent = item.instance;
    row.insertCell().textContent = item.service;
    row.insertCell().textContent = item.target;
    const status = item.last_job ? `${item.last_job.action} ${item.last_job.status}` : "created";
    row.insertCell().append(badge(item.last_job ? item.last_job.status : ""));
    row.cells[3].title = status;
    const live = row.insertCell(); // what the target reports now (docker: each container's state and health)
    live.append(badge(item.live ? item.live.status : ""));
    if (item.live && item.live.containers) live.title = item.live.containers.map((c) => `${c.name}: ${c.state}${c.health ? " (" + c.health + ")" : ""}`).join("\n");
    const drift = row.insertCell();
    drift.append(badge(item.drift));
    if (item.drift_resources && item.drift_resources.length) drift.title = "Changed: " + item.drift_resources.join(", ");
    const actions = row.insertCell();
    const logs = document.createElement("button");
    logs.textContent = "Logs";
    logs.disabled = !item.last_job;
    logs.addEventListener("click", () => watchJob(item.last_job.id));
    const destroy = document.createElement("button");
    destroy.textContent = "Destroy";
    destroy.className = "destroy";
    destroy.addEventListener("click", async () => {
      if (!confirm(`Destroy ${item.instance}?`)) return;
      const job = await api("DELETE", `/api/clients/${state.client}/instances/${item.instance}`);
      watchJob(job.job);
    });
    actions.append(logs, destroy);
  }
}

function watchJob(jobId) {
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
      }
    },
  });
  state.jobStream = stream;
}

function watchClient() {
  let pending = null;
  const refresh = () => { clearTimeout(pending); pending = setTimeout(showInstances, 200); };
  state.clientStream = eventSource(`/api/clients/${state.client}/events`, { status: refresh, drift: refresh });
}

async function start() {
  $("#deploy-form").addEventListener("submit", deploy);
  $("#deploy-cancel").addEventListener("click", () => { $("#deploy-section").hidden = true; });
  $("#cancel-job").addEventListener("click", () => state.currentJob && api("DELETE", `/api/jobs/${state.currentJob}`).catch(() => {}));
  $("#logout").addEventListener("click", () => { sessionStorage.clear(); location.assign(state.config.end_session_endpoint || "/"); });
  if (!(await authenticate())) return;
  await showCatalog();
  await showInstances();
  await showProxmox();
  watchClient();
  const linked = location.hash.match(/^#job=([0-9a-f-]{36})$/);
  if (linked) watchJob(linked[1]);
}

start().catch((error) => { document.body.insertAdjacentHTML("beforeend", `<p class="error" role="alert"></p>`); document.body.lastElementChild.textContent = error.message; });
