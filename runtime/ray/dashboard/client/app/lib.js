// Shared pieces of the dashboard UI: the HTTP client (relative URLs, cookie auth, 401 -> login), the
// polling hook, the hash router, human units, Ray's state colours and the table/clip/bar components.
// Every value from the cluster is rendered through htm/Preact as text: never as HTML.
import { h, render } from "preact";
import { useState, useEffect, useRef, useCallback } from "preact/hooks";
import htm from "htm";

export const html = htm.bind(h);
export { h, render, useState, useEffect, useRef, useCallback };

// ------------------------------------------------------------------------------------------ connection
// One shared flag: the last request that reached nothing (network error) sets it, the next answer clears it.
const connection = { lost: false, since: 0, listeners: new Set() };
function setLost(lost) {
  if (connection.lost === lost) return;
  connection.lost = lost;
  connection.since = Date.now();
  connection.listeners.forEach((f) => f(lost));
}
export function useConnectionLost() {
  const [lost, set] = useState(connection.lost);
  useEffect(() => { connection.listeners.add(set); return () => connection.listeners.delete(set); }, []);
  return lost;
}

export class HttpError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

const RETURN_KEY = "openray.dashboard.return";

function goToLogin() {
  // The server only sees the path: the hash (the view) is kept here and restored after signing in.
  try { sessionStorage.setItem(RETURN_KEY, location.hash); } catch (e) { /* private mode */ }
  // Relative both ways (the app is served at the dashboard's root): behind a path prefix the login page and
  // the way back stay under it.
  location.assign("login?next=" + encodeURIComponent("./" + location.search));
}

export function restoreViewAfterLogin() {
  try {
    const saved = sessionStorage.getItem(RETURN_KEY);
    sessionStorage.removeItem(RETURN_KEY);
    if (saved && (!location.hash || location.hash === "#" || location.hash === "#/")) {
      history.replaceState(null, "", saved);
    }
  } catch (e) { /* private mode */ }
}

// `path` is relative ("api/jobs/"): the dashboard works behind a port-forward or a path prefix.
export async function request(path, { method = "GET", body, text = false } = {}) {
  let resp;
  try {
    resp = await fetch(path, {
      method, credentials: "same-origin", body: body === undefined ? undefined : JSON.stringify(body),
      headers: body === undefined ? {} : { "Content-Type": "application/json" },
    });
  } catch (e) {
    setLost(true);
    throw new HttpError(0, "The dashboard cannot be reached.");
  }
  setLost(false);
  if (resp.status === 401 || resp.status === 403) {
    goToLogin();
    throw new HttpError(resp.status, "Sign in again: the dashboard needs the cluster's token.");
  }
  const raw = await resp.text();
  if (!resp.ok) {
    let msg = raw;
    try { const j = JSON.parse(raw); msg = j.msg || j.message || j.detail || raw; } catch (e) { /* text */ }
    throw new HttpError(resp.status, `${resp.status}: ${String(msg).slice(0, 500)}`);
  }
  if (text) return raw;
  const json = JSON.parse(raw);
  // Ray's envelope {result, msg, data}: unwrapped; a result of false is an error.
  if (json && typeof json === "object" && !Array.isArray(json) && "result" in json && "data" in json) {
    if (json.result === false) throw new HttpError(resp.status, json.msg || "request failed");
    return json.data;
  }
  return json;
}

// Fetches `path` now and every `intervalMs` while the tab is visible; keeps the last data on errors, so a
// refresh never blanks a view. Returns {data, error, loading, reload}.
export function usePoll(path, intervalMs = 4000, opts = {}) {
  const [state, setState] = useState({ data: undefined, error: null, loading: true });
  const seq = useRef(0);
  const load = useCallback(async () => {
    if (!path) return;
    const mine = ++seq.current;
    try {
      const data = await request(path, opts);
      if (mine === seq.current) setState({ data, error: null, loading: false });
    } catch (e) {
      if (mine === seq.current) setState((s) => ({ data: s.data, error: e, loading: false }));
    }
  }, [path]);
  useEffect(() => {
    setState({ data: undefined, error: null, loading: !!path });
    if (!path) return undefined;
    load();
    if (!intervalMs) return undefined;
    const timer = setInterval(() => { if (!document.hidden) load(); }, intervalMs);
    const onVisible = () => { if (!document.hidden) load(); };
    document.addEventListener("visibilitychange", onVisible);
    return () => { clearInterval(timer); document.removeEventListener("visibilitychange", onVisible); seq.current++; };
  }, [path, intervalMs]);
  return { ...state, reload: load };
}

// ------------------------------------------------------------------------------------------ router
// Hash routes: "#/actors?state=DEAD". Deep links survive a reload and need nothing from the server.
export function parseHash() {
  const raw = location.hash.replace(/^#/, "") || "/";
  const [path, qs = ""] = raw.split("?");
  const parts = path.split("/").filter(Boolean).map((p) => { try { return decodeURIComponent(p); } catch (e) { return p; } });
  return { path, parts, query: new URLSearchParams(qs) };
}

export function useRoute() {
  const [route, setRoute] = useState(parseHash());
  useEffect(() => {
    const on = () => setRoute(parseHash());
    addEventListener("hashchange", on);
    addEventListener("openray-query", on);
    return () => { removeEventListener("hashchange", on); removeEventListener("openray-query", on); };
  }, []);
  return route;
}

// Changes the query of the current route in place (filters, selection): no new history entry, no scroll.
export function setQuery(changes) {
  const { path, query } = parseHash();
  for (const [k, v] of Object.entries(changes)) {
    if (v === undefined || v === null || v === "") query.delete(k); else query.set(k, v);
  }
  const qs = query.toString();
  history.replaceState(null, "", "#" + path + (qs ? "?" + qs : ""));
  dispatchEvent(new Event("openray-query"));
}

export function link(path, query) {
  const qs = query ? new URLSearchParams(Object.entries(query).filter(([, v]) => v !== undefined && v !== null && v !== "")).toString() : "";
  return "#" + path + (qs ? "?" + qs : "");
}

// ------------------------------------------------------------------------------------------ units
const UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
export function bytes(n) {
  if (n === null || n === undefined || isNaN(n)) return "-";
  let i = 0;
  let v = Number(n);
  while (Math.abs(v) >= 1024 && i < UNITS.length - 1) { v /= 1024; i++; }
  return `${v >= 100 || i === 0 ? Math.round(v) : v.toFixed(v >= 10 ? 1 : 2)} ${UNITS[i]}`;
}
export function pct(x, digits = 0) {
  if (x === null || x === undefined || isNaN(x)) return "-";
  return `${Number(x).toFixed(digits)}%`;
}
export function num(x) {
  if (x === null || x === undefined || isNaN(x)) return "-";
  const v = Number(x);
  return Number.isInteger(v) ? String(v) : String(Math.round(v * 100) / 100);
}
export function timeMs(ms) {
  if (!ms) return "-";
  const d = new Date(Number(ms));
  const p = (x) => String(x).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}
export function duration(ms) {
  if (ms === null || ms === undefined || ms < 0 || isNaN(ms)) return "-";
  const s = Math.round(ms / 1000);
  if (s < 60) return ms < 1000 ? `${Math.round(ms)}ms` : `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}
export function ago(ms) {
  return ms ? `${duration(Date.now() - Number(ms))} ago` : "-";
}
const MEMORY_LIKE = new Set(["memory", "object_store_memory"]);
// {CPU: 1, GPU: 0.5, memory: 2**31} -> "1 CPU, 0.5 GPU, 2.00 GiB memory"
export function resources(res) {
  if (!res) return "-";
  const items = Object.entries(res).filter(([k, v]) => v && !k.startsWith("node:") && !k.startsWith("accelerator_type:"));
  if (!items.length) return "-";
  return items.map(([k, v]) => (MEMORY_LIKE.has(k) ? `${bytes(v)} ${k}` : `${num(v)} ${k}`)).join(", ");
}
// used/total of one resource as people say it: "3 of 8 CPU", "1.2 GiB of 4.0 GiB memory"
export function usedOf(name, used, total) {
  if (MEMORY_LIKE.has(name)) return `${bytes(used)} of ${bytes(total)}`;
  return `${num(used)} of ${num(total)} ${name}`;
}
export function shortId(id, n = 8) {
  return id ? (id.length > n + 2 ? id.slice(0, n) + "…" : id) : "-";
}

// ------------------------------------------------------------------------------------------ states
// The colours of Ray's dashboard StatusChip: green done/alive, blue running, orange waiting, red failed/dead,
// grey stopped.
const GREEN = "green", RED = "red", ORANGE = "orange", BLUE = "blue", GREY = "grey";
const STATE_COLOURS = {
  ALIVE: GREEN, DEAD: RED, SUCCEEDED: GREEN, FINISHED: GREEN, FAILED: RED, STOPPED: GREY, CANCELED: GREY,
  RUNNING: BLUE, RUNNING_IN_RAY_GET: BLUE, RUNNING_IN_RAY_WAIT: BLUE, CREATED: BLUE,
  PENDING: ORANGE, PENDING_CREATION: ORANGE, DEPENDENCIES_UNREADY: ORANGE, RESTARTING: ORANGE,
  PENDING_ARGS_AVAIL: ORANGE, PENDING_NODE_ASSIGNMENT: ORANGE, PENDING_OBJ_STORE_MEM_AVAIL: ORANGE,
  PENDING_ARGS_FETCH: ORANGE, SUBMITTED_TO_WORKER: ORANGE, RESCHEDULING: ORANGE, REMOVED: RED,
  IDLE: GREY, LEASED: BLUE, INFO: BLUE, WARNING: ORANGE, ERROR: RED,
};
export function stateColour(state) { return STATE_COLOURS[state] || GREY; }
export function State({ state }) {
  const s = state || "UNKNOWN";
  return html`<span class=${"chip " + stateColour(s)} data-state=${s}>${s}</span>`;
}

// ------------------------------------------------------------------------------------------ components
// Long text: clamped to two lines, the full text one click away (and in the tooltip).
export function Clip({ text, lines = 2, mono = false }) {
  const [open, setOpen] = useState(false);
  if (text === null || text === undefined || text === "") return html`<span class="muted">-</span>`;
  const s = String(text);
  const long = s.length > 80 || s.includes("\n");
  return html`<span class=${"clip" + (open ? " open" : "") + (mono ? " mono" : "")} style=${open ? "" : `-webkit-line-clamp:${lines}`}
    title=${s.length < 2000 ? s : s.slice(0, 2000) + "…"}>${s}</span>${long ? html`<button class="linkish" onClick=${() => setOpen(!open)}>${open ? "less" : "more"}</button>` : null}`;
}

export function Bar({ fraction, label }) {
  const f = Math.max(0, Math.min(1, Number(fraction) || 0));
  const colour = f > 0.9 ? "red" : f > 0.7 ? "orange" : "blue";
  return html`<div class="bar" title=${label}><div class=${"fill " + colour} style=${`width:${(f * 100).toFixed(1)}%`}></div><span>${label}</span></div>`;
}

export function ErrorNote({ error }) {
  if (!error) return null;
  return html`<div class="error-note" role="alert">${error.message || String(error)}</div>`;
}

export function Loading({ what }) { return html`<p class="muted">Loading ${what}…</p>`; }

// A table with sortable columns. columns: [{key, label, render(row), value(row) (for sorting), width, cls}].
// Sorting is state of the component: it survives the periodic refreshes.
export function Table({ columns, rows, rowKey, sortBy, empty = "Nothing to show.", limit = 0, testid }) {
  const [sort, setSort] = useState(sortBy || null); // {key, desc}
  const [shown, setShown] = useState(limit || Infinity);
  let sorted = rows || [];
  if (sort) {
    const col = columns.find((c) => c.key === sort.key);
    if (col) {
      const val = col.value || ((r) => r[col.key]);
      sorted = [...sorted].sort((a, b) => {
        const x = val(a), y = val(b);
        const c = x === y ? 0 : x === undefined || x === null ? 1 : y === undefined || y === null ? -1 : x < y ? -1 : 1;
        return sort.desc ? -c : c;
      });
    }
  }
  const visible = sorted.slice(0, shown);
  const click = (c) => setSort(sort && sort.key === c.key ? { key: c.key, desc: !sort.desc } : { key: c.key, desc: false });
  return html`<table class="grid" data-testid=${testid}>
    <colgroup>${columns.map((c) => html`<col style=${c.width ? `width:${c.width}` : ""} />`)}</colgroup>
    <thead><tr>${columns.map((c) => html`<th class=${c.cls || ""}>
      <button class="sort" onClick=${() => click(c)}>${c.label}${sort && sort.key === c.key ? (sort.desc ? " ▼" : " ▲") : ""}</button></th>`)}</tr></thead>
    <tbody>${visible.length ? visible.map((r, i) => html`<tr key=${rowKey ? rowKey(r) : i}>${columns.map((c) => html`<td class=${c.cls || ""}>${c.render ? c.render(r) : r[c.key] ?? "-"}</td>`)}</tr>`)
      : html`<tr><td colspan=${columns.length} class="muted">${empty}</td></tr>`}</tbody>
  </table>${sorted.length > visible.length ? html`<p class="muted">Showing ${visible.length} of ${sorted.length}.
    <button class="linkish" onClick=${() => setShown(shown + (limit || 100))}>Show more</button></p>` : null}`;
}

export function Section({ title, children, right }) {
  return html`<section class="card"><div class="card-head"><h2>${title}</h2>${right || null}</div>${children}</section>`;
}

export function Kv({ items }) {
  return html`<dl class="kv">${items.filter(Boolean).map(([k, v]) => html`<dt>${k}</dt><dd>${v === undefined || v === null || v === "" ? "-" : v}</dd>`)}</dl>`;
}

// A search box bound to a query parameter of the route (so a reload or a shared link keeps it).
export function SearchBox({ name = "q", value, placeholder }) {
  return html`<input type="search" class="search" placeholder=${placeholder || "Search"} value=${value || ""}
    onInput=${(e) => setQuery({ [name]: e.target.value })} />`;
}

export function Select({ name, value, options, label }) {
  return html`<label class="select">${label} <select value=${value || ""} onChange=${(e) => setQuery({ [name]: e.target.value })}>
    ${options.map((o) => (Array.isArray(o) ? html`<option value=${o[0]}>${o[1]}</option>` : html`<option value=${o}>${o || "all"}</option>`))}
  </select></label>`;
}

export function matches(q, ...fields) {
  if (!q) return true;
  const needle = q.toLowerCase();
  return fields.some((f) => f !== null && f !== undefined && String(f).toLowerCase().includes(needle));
}

export function stateApi(resource, filters = {}, extra = {}) {
  const qs = new URLSearchParams({ limit: "10000", detail: "1", ...extra });
  for (const [k, v] of Object.entries(filters)) {
    qs.append("filter_keys", k); qs.append("filter_predicates", "="); qs.append("filter_values", v);
  }
  return `api/v0/${resource}?${qs}`;
}
