// The dashboard page: a rollouts list and a rollout page, both kept live by server-sent events read with
// fetch (so the token can travel in the Authorization header; it is never put in a cookie or a URL).
// Every /api call needs the token. `rollouts dashboard` prints the page's address with it in the fragment
// (#token=...), which browsers never send to the server: it is moved to sessionStorage and out of the
// address bar (and so out of the history) before anything else runs.
// Everything from the server is inserted as text (textContent / SVG attributes), never as HTML.
"use strict";

const TOKEN_KEY = "rollouts.dashboard.token";
const SVG_NS = "http://www.w3.org/2000/svg";

function tokenFromFragment() {
  const match = /^#token=([^&]*)/.exec(location.hash);
  if (!match) return null;
  let token = "";
  try { token = decodeURIComponent(match[1]).trim(); } catch (_) { token = ""; }
  history.replaceState(null, "", location.pathname + location.search);
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  return token;
}

const state = {
  token: tokenFromFragment() || sessionStorage.getItem(TOKEN_KEY) || "",
  view: null, abort: null, weights: [], detail: null, items: [],
};

const $ = (selector) => document.querySelector(selector);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value !== null && value !== undefined) node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

function authHeaders() {
  return state.token ? { Authorization: "Bearer " + state.token } : {};
}

function show(message, ok) {
  const result = $("#result");
  result.textContent = message;
  result.className = "result " + (ok ? "ok" : "error");
  result.hidden = false;
}

async function api(path, options = {}) {
  const response = await fetch("/api/v1" + path, {
    ...options,
    credentials: "omit",
    headers: { ...authHeaders(), ...(options.headers || {}) },
  });
  let body = null;
  try { body = await response.json(); } catch (_) { body = null; }
  if (!response.ok) {
    const detail = body && typeof body.detail === "string" ? body.detail : JSON.stringify(body && body.detail);
    const error = new Error(`refused (${response.status}): ${detail || response.statusText}`);
    error.status = response.status;
    throw error;
  }
  return body;
}

// ---- server-sent events over fetch ---------------------------------------------------------------

async function follow(path, onEvent, signal) {
  while (!signal.aborted) {
    try {
      const response = await fetch("/api/v1" + path, { headers: authHeaders(), credentials: "omit", signal });
      if (!response.ok) {
        setLive(false, `stream refused (${response.status})`);
        if (response.status === 404) return;
        if (response.status === 401 || response.status === 403) {
          // No token or a wrong one: asking again cannot help; saving a token in the form routes again.
          const body = await response.json().catch(() => null);
          show(`refused (${response.status}): ${body && body.detail ? body.detail : "the dashboard token is needed"}`, false);
          return;
        }
        if (response.status === 429 || response.status === 503) {
          // Too many open streams: say why, and wait longer before asking again.
          const body = await response.json().catch(() => null);
          show(body && body.detail ? body.detail : `live updates refused (${response.status})`, false);
          await new Promise((resolve) => setTimeout(resolve, 9000));
        }
      } else {
        setLive(true);
        await readEvents(response.body.getReader(), onEvent);
      }
    } catch (error) {
      if (signal.aborted) return;
      setLive(false, "disconnected");
    }
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

async function readEvents(reader, onEvent) {
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let type = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) type = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
      }
      if (data.length) onEvent(type, JSON.parse(data.join("\n")));
    }
  }
}

function setLive(ok, text) {
  const live = $("#live");
  live.textContent = ok ? "live" : text || "offline";
  live.className = "live " + (ok ? "on" : "off");
}

// ---- routing -------------------------------------------------------------------------------------

function route() {
  // A #token=... typed or pasted into an open tab arrives as a hash change, not a page load.
  const fresh = tokenFromFragment();
  if (fresh) {
    state.token = fresh;
    showTokenState();
    loadNamespaces();
  }
  if (state.abort) state.abort.abort();
  state.abort = new AbortController();
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  $("#result").hidden = true;
  if (parts[0] === "rollout" && parts.length === 3) {
    showRollout(parts[1], parts[2], state.abort.signal);
  } else {
    showList(parts[0] === "ns" && parts[1] ? parts[1] : $("#namespace").value || "default", state.abort.signal);
  }
}

// ---- list ------------------------------------------------------------------------------------------

function showList(namespace, signal) {
  $("#rollout-view").hidden = true;
  $("#list-view").hidden = false;
  selectNamespace(namespace);
  follow(`/rollouts/${encodeURIComponent(namespace)}/watch`, (type, items) => {
    if (type === "snapshot" || type === "update") renderList(items);
  }, signal);
}

function images(info) {
  return (info.images || []).map((i) => i.image + (i.tags.length ? ` (${i.tags.join(", ")})` : "")).join(", ");
}

// The filter keeps a row when every word of it appears in the row's name, namespace, status, strategy or images.
function matches(info, words) {
  const text = [info.name, info.namespace, info.status, info.strategy, images(info)].join(" ").toLowerCase();
  return words.every((word) => text.includes(word));
}

function renderList(items) {
  state.items = items;
  const words = $("#filter").value.toLowerCase().split(/\s+/).filter(Boolean);
  const shown = items.filter((info) => matches(info, words));
  const body = $("#rollouts tbody");
  body.replaceChildren(...shown.map((info) => {
    const link = el("a", { href: `#/rollout/${encodeURIComponent(info.namespace)}/${encodeURIComponent(info.name)}` },
      info.name);
    return el("tr", { "data-rollout": `${info.namespace}/${info.name}` },
      el("td", { class: "name" }, link),
      el("td", { class: "status" }, el("span", { class: `badge ${info.status}` }, info.status)),
      el("td", { class: "strategy" }, info.strategy),
      el("td", { class: "step" }, info.step ?? "-"),
      el("td", { class: "set-weight" }, info.setWeight ?? "-"),
      el("td", { class: "actual-weight" }, info.actualWeight ?? "-"),
      el("td", { class: "images" }, images(info)),
      el("td", { class: "ready" }, `${info.ready}/${info.current}`));
  }));
  $("#empty").hidden = items.length > 0;
  $("#no-match").hidden = !(items.length > 0 && shown.length === 0);
  $("#filter-count").textContent = words.length ? `${shown.length} of ${items.length}` : "";
}

async function loadNamespaces() {
  try {
    const { namespaces } = await api("/namespaces");
    const select = $("#namespace");
    const current = select.value;
    select.replaceChildren(...namespaces.map((ns) => el("option", { value: ns }, ns)));
    if (current && namespaces.includes(current)) select.value = current;
  } catch (error) {
    show(error.message, false);
  }
}

function selectNamespace(namespace) {
  const select = $("#namespace");
  if (![...select.options].some((o) => o.value === namespace)) select.append(el("option", { value: namespace }, namespace));
  select.value = namespace;
}

// ---- one rollout -------------------------------------------------------------------------------------

function showRollout(namespace, name, signal) {
  $("#list-view").hidden = true;
  $("#rollout-view").hidden = false;
  selectNamespace(namespace);
  state.weights = [];
  state.detail = { namespace, name };
  $("#r-name").textContent = name;
  follow(`/rollouts/${encodeURIComponent(namespace)}/${encodeURIComponent(name)}/watch`, (type, detail) => {
    if (type === "deleted") { show(`rollout ${name} was deleted`, false); return; }
    renderRollout(detail);
  }, signal);
}

function renderRollout(detail) {
  const info = detail.rollout;
  state.weights.push({ t: Date.now(), set: info.setWeight ?? 0, actual: info.actualWeight ?? 0 });
  if (state.weights.length > 600) state.weights.shift();
  state.history = detail.weightHistory || { startedAt: null, points: [] };
  state.current = { set: info.setWeight ?? 0, actual: info.actualWeight ?? 0 };
  $("#r-status").textContent = info.status;
  $("#r-status").className = `badge ${info.status}`;
  $("#r-message").textContent = info.message || "";
  const summary = [
    ["strategy", info.strategy], ["step", info.step ?? "-"], ["set weight", info.setWeight ?? "-"],
    ["actual weight", info.actualWeight ?? "-"], ["ready", `${info.ready}/${info.current}`],
    ["updated", info.updated], ["available", info.available], ["images", images(info) || "-"],
  ];
  $("#summary").replaceChildren(...summary.flatMap(([k, v]) => [el("dt", {}, k), el("dd", { "data-field": k }, v)]));
  $("#steps").replaceChildren(...(info.steps || []).map((step) =>
    el("li", { class: `step ${step.state}`, "aria-current": step.state === "current" ? "step" : null },
      step.description, step.state === "current" ? el("span", { class: "marker" }, " ◀ current") : null)));
  const select = $("#si-container");
  const containers = (info.containers || []).map((c) => c.name);
  if ([...select.options].map((o) => o.value).join() !== containers.join()) {
    select.replaceChildren(...containers.map((c) => el("option", { value: c }, c)));
  }
  weightChart($("#weight-chart"), state.history, state.current, state.weights);
  renderActions(detail.actions || {});
  renderReplicaSets(info.revisions || []);
  renderAnalysis(detail.analysisRuns || []);
  renderHistory(detail.history || []);
  $("#events tbody").replaceChildren(...[...(info.events || [])].reverse().map((e) =>
    el("tr", { class: e.type }, el("td", {}, e.type), el("td", {}, e.reason), el("td", {}, e.message),
      el("td", {}, e.count), el("td", {}, e.age))));
}

function renderHistory(items) {
  $("#revisions tbody").replaceChildren(...[...items].reverse().map((rev) =>
    el("tr", { "data-revision": rev.revision },
      el("td", {}, rev.revision),
      el("td", {}, Object.entries(rev.images).map(([c, i]) => `${c}=${i}`).join(", ")),
      el("td", { class: `outcome ${rev.outcome.replaceAll(" ", "-")}` }, rev.outcome),
      el("td", {}, rev.cause),
      el("td", {}, rev.createdAt),
      el("td", {}, el("button", {
        "data-undo": rev.revision, disabled: rev.live ? "" : null,
        title: rev.live ? "this revision is already the rollout's pod template" : `roll back to revision ${rev.revision}`,
        onclick: () => act(`undo/${rev.revision}`, `Roll back to revision ${rev.revision}?`),
      }, "undo to this")))));
}

// Buttons of actions that cannot apply now are disabled, the reason on hover (the API refuses them too).
function renderActions(actions) {
  for (const button of document.querySelectorAll("#actions button")) {
    const entry = actions[button.dataset.action];
    const allowed = !entry || entry.allowed;
    button.disabled = !allowed;
    button.title = allowed ? QUESTIONS[button.dataset.action] : entry.reason;
  }
}

function podTitle(pod) {
  return `${pod.name}: ${pod.status}, ready ${pod.ready}, ${pod.restarts} restart${pod.restarts === 1 ? "" : "s"}, ` +
    `age ${pod.age}`;
}

function podReady(pod) {
  const [ready, total] = String(pod.ready).split("/").map(Number);
  return pod.status === "Running" && total > 0 && ready === total;
}

// One block per revision (newest first), one row per ReplicaSet, each pod a status dot as Argo's dashboard has.
function renderReplicaSets(revisions) {
  const box = $("#replicasets");
  if (!revisions.length) { box.replaceChildren(el("p", {}, "No ReplicaSets.")); return; }
  box.replaceChildren(...revisions.map((rev) => el("section", { class: "revision", "data-revision": rev.revision },
    el("h3", {}, `revision ${rev.revision}`),
    ...rev.replicaSets.map((rs) => {
      const tags = ["stable", "canary", "active", "preview"].filter((t) => rs[t]);
      const ready = rs.pods.length ? rs.pods.filter(podReady).length : rs.available;
      return el("div", { class: "replicaset", "data-replicaset": rs.name },
        el("div", { class: "rs-head" },
          el("span", { class: "rs-name" }, rs.name), " ",
          el("span", { class: `badge ${rs.status}` }, rs.status), " ",
          ...tags.map((t) => el("span", { class: `tag ${t}` }, t)),
          el("span", { class: "rs-ready", "data-ready": `${ready}/${rs.replicas}` }, ` ready ${ready}/${rs.replicas}`)),
        el("div", { class: "rs-images" }, rs.images.join(", ") || "-"),
        el("div", { class: "pods" }, ...(rs.pods.length ? rs.pods.map((pod) =>
          el("span", { class: `pod-dot ${pod.status}${podReady(pod) ? " ready" : ""}`, title: podTitle(pod),
            "data-pod": pod.name, role: "img", "aria-label": podTitle(pod) })) : [el("small", {}, "no pods")])));
    }))));
}

// ---- charts --------------------------------------------------------------------------------------------

const W = 420, H = 140, PAD = 28;

function frame(title) {
  const chart = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "plot", role: "img" });
  chart.append(svg("title", {}, title));
  chart.append(svg("rect", { x: PAD, y: 6, width: W - PAD - 6, height: H - PAD - 6, class: "frame" }));
  return chart;
}

function scale(values, lo, hi) {
  const min = Math.min(lo, ...values), max = Math.max(hi, ...values);
  const span = max - min || 1;
  return { min, max, y: (v) => 6 + (H - PAD - 6) * (1 - (v - min) / span) };
}

function xAt(i, n) {
  return PAD + (n <= 1 ? (W - PAD - 6) / 2 : ((W - PAD - 6) * i) / (n - 1));
}

function line(points, cls) {
  return svg("polyline", { points: points.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(" "), class: cls });
}

// Drawn from the stored weight events since the release started (so a page opened mid-release shows the whole
// release), continued to now with the live values; before any release event, from the live samples alone.
function weightChart(container, history, current, samples) {
  const chart = frame("traffic weight of the canary over time (percent)");
  const s = scale([], 0, 100);
  for (const tick of [0, 50, 100]) {
    chart.append(svg("text", { x: 2, y: s.y(tick) + 4, class: "tick" }, `${tick}%`));
  }
  let set, actual, caption;
  if (history.startedAt && history.points.length) {
    const start = Date.parse(history.startedAt), now = Math.max(Date.now(), start + 1000);
    const x = (t) => PAD + ((W - PAD - 6) * (t - start)) / (now - start);
    const steps = [];  // a step line: each weight holds until the next event
    let previous = null;
    for (const p of history.points) {
      const t = Math.min(Date.parse(p.time), now);
      if (previous !== null) steps.push([x(t), s.y(previous)]);
      steps.push([x(t), s.y(p.weight)]);
      previous = p.weight;
    }
    const last = history.points[history.points.length - 1].weight;
    actual = [...steps, [x(now), s.y(last)], [x(now), s.y(current.actual)]];
    set = [...steps, [x(now), s.y(last)], [x(now), s.y(current.set)]];
    caption = `since the release started at ${new Date(start).toLocaleTimeString()}`;
  } else {
    const n = samples.length;
    set = samples.map((p, i) => [xAt(i, n), s.y(p.set)]);
    actual = samples.map((p, i) => [xAt(i, n), s.y(p.actual)]);
    caption = "since this page was opened";
  }
  chart.append(line(set, "set"));
  chart.append(line(actual, "actual"));
  const legend = el("p", { class: "legend" }, el("span", { class: "set" }, "— set weight"), " ",
    el("span", { class: "actual" }, "— actual weight"), ` (${caption})`);
  container.replaceChildren(chart, legend);
}

function metricChart(metric) {
  const index = metric.thresholds.find((t) => t.index !== null)?.index ?? 0;
  const values = metric.measurements.map((m) => (m.numbers.length > index ? m.numbers[index] : null));
  const known = values.filter((v) => v !== null);
  const bounds = metric.thresholds.map((t) => t.value);
  const all = [...known, ...bounds];
  const s = scale(all, all.length ? Math.min(...all) : 0, all.length ? Math.max(...all) : 1);
  const chart = frame(`${metric.name}: measurements against the gate thresholds`);
  chart.append(svg("text", { x: 2, y: s.y(s.max) + 4, class: "tick" }, fmt(s.max)));
  chart.append(svg("text", { x: 2, y: s.y(s.min) + 4, class: "tick" }, fmt(s.min)));
  for (const t of metric.thresholds) {
    const y = s.y(t.value);
    chart.append(svg("line", { x1: PAD, x2: W - 6, y1: y, y2: y, class: `threshold ${t.kind}` }));
    // Success bounds labelled above their line, failure bounds below, so equal bounds stay readable.
    const labelY = t.kind === "success" ? y - 3 : y + 11;
    chart.append(svg("text", { x: W - 8, y: labelY, class: `threshold-label ${t.kind}`, "text-anchor": "end" },
      `${t.kind}: ${t.index !== null ? `result[${t.index}]` : "result"} ${t.operator} ${t.value}`));
  }
  const n = values.length;
  const points = values.map((v, i) => (v === null ? null : [xAt(i, n), s.y(v)]));
  chart.append(line(points.filter(Boolean), "measured"));
  points.forEach((p, i) => {
    if (p) chart.append(svg("circle", { cx: p[0], cy: p[1], r: 3.5, class: `point ${metric.measurements[i].phase}` }));
  });
  return chart;
}

function fmt(v) {
  return Math.abs(v) >= 1000 || Number.isInteger(v) ? String(v) : v.toPrecision(3);
}

function renderAnalysis(runs) {
  const box = $("#analysis");
  if (!runs.length) { box.replaceChildren(el("p", {}, "No analysis runs.")); return; }
  box.replaceChildren(...[...runs].reverse().map((run) =>
    el("section", { class: "run", "data-run": run.name },
      el("h3", {}, `${run.name} `, el("span", { class: `badge ${run.phase}` }, run.phase),
        run.kind ? el("small", {}, ` ${run.kind}`) : null),
      run.message ? el("p", { class: "message" }, run.message) : null,
      ...run.metrics.map((metric) => el("div", { class: "metric" },
        el("h4", {}, `${metric.name} `, el("span", { class: `badge ${metric.phase}` }, metric.phase || "Pending"),
          el("small", {}, ` ${metric.successful} ok / ${metric.failed} failed / ${metric.inconclusive} inconclusive / ` +
            `${metric.error} error`)),
        el("p", { class: "conditions" },
          metric.successCondition ? `success: ${metric.successCondition}  ` : "",
          metric.failureCondition ? `failure: ${metric.failureCondition}` : ""),
        metric.measurements.length ? metricChart(metric) : el("p", {}, "no measurements yet"))))));
}

// ---- actions ---------------------------------------------------------------------------------------------

function confirmDialog(text) {
  const dialog = $("#confirm");
  $("#confirm-text").textContent = text;
  return new Promise((resolve) => {
    const done = (answer) => {
      $("#confirm-ok").removeEventListener("click", ok);
      $("#confirm-cancel").removeEventListener("click", cancel);
      dialog.removeEventListener("cancel", cancel);
      dialog.close();
      resolve(answer);
    };
    const ok = () => done(true);
    const cancel = () => done(false);
    $("#confirm-ok").addEventListener("click", ok);
    $("#confirm-cancel").addEventListener("click", cancel);
    dialog.addEventListener("cancel", cancel);
    dialog.showModal();
  });
}

async function act(path, question, body) {
  const { namespace, name } = state.detail;
  if (!(await confirmDialog(question))) return;
  try {
    const options = { method: "POST" };
    if (body !== undefined) {
      options.body = JSON.stringify(body);
      options.headers = { "Content-Type": "application/json" };
    }
    const result = await api(`/rollouts/${encodeURIComponent(namespace)}/${encodeURIComponent(name)}/${path}`, options);
    show(result.message, true);
  } catch (error) {
    show(error.message, false);
  }
}

const QUESTIONS = {
  promote: "Promote this rollout (finish the current step)?",
  "promote-full": "Promote fully, skipping every remaining step, pause and analysis?",
  abort: "Abort this rollout? Traffic goes back to the stable version.",
  retry: "Retry this aborted rollout from its first step?",
  pause: "Pause this rollout?",
  resume: "Resume this rollout?",
  restart: "Restart this rollout's pods?",
};

// ---- start ------------------------------------------------------------------------------------------------

function showTokenState() {
  $("#token-state").textContent = state.token ? "token set"
    : "no token: open the address `rollouts dashboard` prints, or paste the token (rollouts dashboard --show-token)";
}

document.addEventListener("DOMContentLoaded", () => {
  for (const button of document.querySelectorAll("#actions button")) {
    const action = button.dataset.action;
    button.addEventListener("click", () => act(action, QUESTIONS[action]));
  }
  $("#set-image").addEventListener("submit", (event) => {
    event.preventDefault();
    const container = $("#si-container").value, image = $("#si-image").value.trim();
    act("set-image", `Set the image of ${container} to ${image}?`, { container, image });
  });
  $("#token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    state.token = $("#token").value.trim();
    $("#token").value = "";
    if (state.token) sessionStorage.setItem(TOKEN_KEY, state.token); else sessionStorage.removeItem(TOKEN_KEY);
    showTokenState();
    loadNamespaces();
    route();
  });
  $("#token-forget").addEventListener("click", () => {
    state.token = "";
    sessionStorage.removeItem(TOKEN_KEY);
    showTokenState();
  });
  $("#filter").addEventListener("input", () => renderList(state.items));
  $("#namespace").addEventListener("change", () => { location.hash = `#/ns/${encodeURIComponent($("#namespace").value)}`; });
  window.addEventListener("hashchange", route);
  showTokenState();
  loadNamespaces().then(route);
});
