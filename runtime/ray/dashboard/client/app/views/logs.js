// Logs: nodes -> their log files, grouped as Ray groups them -> a viewer with tail, follow and search.
// Other views link here with the file already chosen (node_id + filename, actor_id, pid, submission_id).
import {
  html, useState, useEffect, useRef, usePoll, ErrorNote, Loading, Section, SearchBox, setQuery, link, matches, shortId, State,
} from "../lib.js";

const FILE_KEYS = ["filename", "actor_id", "pid", "submission_id", "task_id"];
const GROUP_ORDER = ["driver", "worker_out", "worker_err", "core_driver", "core_worker", "raylet", "gcs_server", "dashboard", "agent", "autoscaler", "internal"];

function Highlight({ line, q }) {
  if (!q) return line;
  const parts = [];
  const lower = line.toLowerCase(), needle = q.toLowerCase();
  let i = 0;
  for (let j = lower.indexOf(needle); j >= 0; j = lower.indexOf(needle, i)) {
    parts.push(line.slice(i, j), html`<mark>${line.slice(j, j + q.length)}</mark>`);
    i = j + q.length;
  }
  parts.push(line.slice(i));
  return parts;
}

export function LogViewer({ params, follow: followInitially = false, compact = false, q: qInitial = "", onSearch }) {
  const [lines, setLines] = useState(compact ? 200 : 1000);
  const [follow, setFollow] = useState(followInitially);
  const [q, setQ] = useState(qInitial);
  const qs = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== undefined && v !== null && v !== ""));
  qs.set("lines", String(lines));
  qs.set("format", "text");
  const path = "api/v0/logs/file?" + qs;
  const log = usePoll(path, follow ? 2000 : 0, { text: true });
  const ref = useRef(null);
  const stick = useRef(true);
  useEffect(() => { const el = ref.current; if (el && stick.current && !q) el.scrollTop = el.scrollHeight; }, [log.data]);
  const all = log.data === undefined ? null : log.data.replace(/\n$/, "").split("\n");
  const shown = all && q ? all.filter((l) => l.toLowerCase().includes(q.toLowerCase())) : all;
  const search = (v) => { setQ(v); if (onSearch) onSearch(v); };
  return html`<div class="log-viewer">
    <div class="toolbar">
      <label>Last <select value=${lines} onChange=${(e) => setLines(Number(e.target.value))}>
        ${[100, 200, 1000, 5000, 20000].map((n) => html`<option value=${n}>${n}</option>`)}</select> lines</label>
      <label><input type="checkbox" checked=${follow} onChange=${(e) => setFollow(e.target.checked)} /> Follow</label>
      <input type="search" class="search" placeholder="Search in the log" value=${q} onInput=${(e) => search(e.target.value)} />
      ${all && q ? html`<span class="muted">${shown.length} of ${all.length} lines match</span>` : null}
      <a href=${path} target="_blank" rel="noopener">Raw</a>
    </div>
    <${ErrorNote} error=${log.error} />
    <pre class=${"log" + (compact ? "" : " tall")} ref=${ref} data-testid="log-text"
      onScroll=${(e) => { const el = e.target; stick.current = el.scrollTop + el.clientHeight >= el.scrollHeight - 8; }}
      >${shown === null ? (log.error ? "" : "Loading…") : shown.length ? shown.map((l) => html`<div class="line"><${Highlight} line=${l} q=${q} /></div>`) : html`<span class="muted">${q ? "No line matches." : "(empty)"}</span>`}</pre>
  </div>`;
}

function NodeList() {
  const nodes = usePoll("nodes?view=summary", 10000);
  const rows = (nodes.data && nodes.data.summary) || [];
  return html`<${Section} title="Logs: choose a node"><${ErrorNote} error=${nodes.error} />
    ${nodes.data ? html`<ul class="list" data-testid="log-nodes">${rows.map((n) => html`<li key=${n.raylet.nodeId}>
      <a href=${link("/logs", { node_id: n.raylet.nodeId })}>${n.raylet.nodeManagerHostname} (${n.raylet.nodeManagerAddress})${n.raylet.isHeadNode ? " head" : ""}</a>
      <span class="muted"> ${shortId(n.raylet.nodeId, 12)} </span><${State} state=${n.raylet.state} /></li>`)}</ul>` : html`<${Loading} what="nodes" />`}
  </${Section}>`;
}

function FileList({ nodeId, q }) {
  const files = usePoll("api/v0/logs?node_id=" + encodeURIComponent(nodeId), 10000);
  const groups = (files.data && files.data.result) || {};
  const names = Object.keys(groups).sort((a, b) => {
    const x = GROUP_ORDER.indexOf(a), y = GROUP_ORDER.indexOf(b);
    return (x < 0 ? 99 : x) - (y < 0 ? 99 : y) || a.localeCompare(b);
  });
  return html`<${Section} title=${`Logs of node ${shortId(nodeId, 12)}`} right=${html`<div class="filters"><a href="#/logs">All nodes</a>
      <${SearchBox} value=${q} placeholder="Filter file names" /></div>`}>
    <${ErrorNote} error=${files.error} />
    ${files.data ? html`<div class="file-groups" data-testid="log-files">${names.map((g) => {
      const list = groups[g].filter((f) => matches(q, f));
      return list.length ? html`<div class="file-group" key=${g}><h3>${g} <span class="muted">(${list.length})</span></h3><ul>
        ${list.map((f) => html`<li key=${f}><a href=${link("/logs", { node_id: nodeId, filename: f })}>${f}</a></li>`)}</ul></div>` : null;
    })}</div>` : html`<${Loading} what="the file list" />`}
  </${Section}>`;
}

export function LogsView({ route }) {
  const params = {};
  for (const k of ["node_id", "node_ip", ...FILE_KEYS, "suffix"]) if (route.query.get(k)) params[k] = route.query.get(k);
  const q = route.query.get("q") || "";
  const file = FILE_KEYS.some((k) => params[k]);
  if (!file && !params.node_id) return html`<${NodeList} />`;
  if (!file) return html`<${FileList} nodeId=${params.node_id} q=${q} />`;
  const title = params.filename || (params.actor_id ? `actor ${params.actor_id}` : params.pid ? `worker pid ${params.pid}`
    : params.submission_id ? `job ${params.submission_id} driver` : "log");
  return html`<${Section} title=${title + (params.suffix && !params.filename ? ` (${params.suffix})` : "")} right=${params.node_id
      ? html`<a href=${link("/logs", { node_id: params.node_id })}>Other files of this node</a>` : html`<a href="#/logs">All nodes</a>`}>
    <${LogViewer} params=${params} q=${q} follow=${true} onSearch=${(v) => setQuery({ q: v })} />
  </${Section}>`;
}
