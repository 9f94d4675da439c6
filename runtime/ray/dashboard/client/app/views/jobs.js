// Jobs: every submitted and driver job; a job's page with its tasks (by function and state), its actors,
// its driver log (followed while the job runs) and the stop/delete buttons.
import {
  html, useState, useEffect, useRef, usePoll, request, Table, State, Clip, ErrorNote, Loading, Section, Kv,
  SearchBox, Select, matches, timeMs, duration, link, stateApi, shortId, resources,
} from "../lib.js";

const TERMINAL = new Set(["SUCCEEDED", "FAILED", "STOPPED"]);
const jobKey = (j) => j.submission_id || j.job_id;

export function JobsView({ route }) {
  const jobs = usePoll("api/jobs/", 4000);
  const q = route.query.get("q") || "", status = route.query.get("status") || "";
  const rows = (jobs.data || []).filter((j) => (!status || j.status === status)
    && matches(q, j.job_id, j.submission_id, j.entrypoint, j.message, j.status));
  const columns = [
    { key: "id", label: "Job ID", width: "11%", value: jobKey,
      render: (j) => html`<a href=${link("/jobs/" + encodeURIComponent(jobKey(j)))}>${j.job_id || "-"}</a>` },
    { key: "submission_id", label: "Submission ID", width: "15%", render: (j) => html`<${Clip} text=${j.submission_id} lines=${1} />` },
    { key: "status", label: "Status", width: "10%", render: (j) => html`<${State} state=${j.status} />` },
    { key: "entrypoint", label: "Entrypoint", width: "22%", render: (j) => html`<${Clip} text=${j.entrypoint} mono />` },
    { key: "message", label: "Message", width: "20%", render: (j) => html`<${Clip} text=${j.message} />` },
    { key: "start_time", label: "Start time", width: "11%", render: (j) => timeMs(j.start_time) },
    { key: "duration", label: "Duration", width: "7%", value: (j) => (j.end_time || Date.now()) - (j.start_time || 0),
      render: (j) => (j.start_time ? duration((j.end_time || Date.now()) - j.start_time) : "-") },
    { key: "logs", label: "Logs", width: "6%", render: (j) => (j.submission_id
      ? html`<a href=${link("/logs", { submission_id: j.submission_id, node_id: j.driver_node_id })}>Log</a>` : "-") },
  ];
  return html`<${Section} title="Jobs" right=${html`<div class="filters">
      <${Select} name="status" label="Status" value=${status} options=${["", "PENDING", "RUNNING", "SUCCEEDED", "FAILED", "STOPPED"]} />
      <${SearchBox} value=${q} placeholder="Search jobs" /></div>`}>
    <${ErrorNote} error=${jobs.error} />
    ${jobs.data ? html`<${Table} testid="jobs-table" columns=${columns} rows=${rows} rowKey=${jobKey}
      sortBy=${{ key: "start_time", desc: true }} empty="No jobs." limit=${200} />` : html`<${Loading} what="jobs" />`}
  </${Section}>`;
}

function LogPane({ path, follow, testid }) {
  // Re-read while `follow`; stays at the bottom unless the reader scrolled up.
  const log = usePoll(path, follow ? 2000 : 0);
  const ref = useRef(null);
  const stick = useRef(true);
  useEffect(() => { const el = ref.current; if (el && stick.current) el.scrollTop = el.scrollHeight; }, [log.data]);
  const text = log.data && typeof log.data === "object" ? log.data.logs : log.data;
  return html`<div><${ErrorNote} error=${log.error} />
    <pre class="log tall" ref=${ref} data-testid=${testid}
      onScroll=${(e) => { const el = e.target; stick.current = el.scrollTop + el.clientHeight >= el.scrollHeight - 8; }}>${text === undefined ? "Loading…" : text || "(empty)"}</pre></div>`;
}

export function TaskSummary({ filters }) {
  const summary = usePoll(filters ? stateApi("tasks/summarize", filters, { detail: "0" }) : null, 5000);
  const groups = summary.data && summary.data.result.result.node_id_to_summary.cluster.summary;
  const rows = groups ? Object.values(groups) : [];
  return html`<${ErrorNote} error=${summary.error} />${summary.data ? html`<${Table} testid="task-summary" rowKey=${(r) => r.func_or_class_name}
    columns=${[
      { key: "func_or_class_name", label: "Function", width: "35%", render: (r) => html`<${Clip} text=${r.func_or_class_name} mono />` },
      { key: "type", label: "Type", width: "20%" },
      { key: "state_counts", label: "Tasks by state", width: "45%", value: (r) => Object.values(r.state_counts).reduce((a, b) => a + b, 0),
        render: (r) => html`${Object.entries(r.state_counts).map(([s, n]) => html`<span class="count"><${State} state=${s} /> ${n}</span> `)}` },
    ]} rows=${rows} sortBy=${{ key: "func_or_class_name" }} empty="No tasks." />` : html`<${Loading} what="tasks" />`}`;
}

export function ActorTable({ rows, nodes }) {
  const ip = (id) => (nodes && nodes[id]) || shortId(id);
  return html`<${Table} testid="actor-table" rowKey=${(a) => a.actor_id} limit=${100} sortBy=${{ key: "state" }} rows=${rows}
    columns=${[
      { key: "actor_id", label: "Actor ID", width: "11%", render: (a) => html`<a href=${link("/actors/" + a.actor_id)} title=${a.actor_id}>${shortId(a.actor_id)}</a>` },
      { key: "class_name", label: "Class", width: "10%", render: (a) => html`<${Clip} text=${a.class_name} lines=${1} />` },
      { key: "name", label: "Name", width: "10%", render: (a) => html`<${Clip} text=${a.name} lines=${1} />` },
      { key: "state", label: "State", width: "10%", render: (a) => html`<${State} state=${a.state} />` },
      { key: "job_id", label: "Job", width: "8%", render: (a) => html`<a href=${link("/jobs/" + a.job_id)}>${a.job_id}</a>` },
      { key: "node_id", label: "Node", width: "9%", render: (a) => (a.node_id ? html`<a href=${link("/cluster/nodes/" + a.node_id)}>${ip(a.node_id)}</a>` : "-") },
      { key: "pid", label: "PID", width: "6%" },
      { key: "num_restarts", label: "Restarts", width: "6%" },
      { key: "death_cause", label: "Death cause", width: "16%", value: deathCause, render: (a) => html`<${Clip} text=${deathCause(a)} />` },
      { key: "required_resources", label: "Resources", width: "8%", value: (a) => resources(a.required_resources), render: (a) => resources(a.required_resources) },
      { key: "logs", label: "Logs", width: "6%", render: (a) => (a.pid && a.node_id ? html`<a href=${link("/logs", { actor_id: a.actor_id, node_id: a.node_id })}>Log</a>` : "-") },
    ]} empty="No actors." />`;
}

export function deathCause(a) {
  const c = a.death_cause;
  if (!c) return "";
  if (typeof c === "string") return c;
  const ctx = c.actor_died_error_context || c.creation_task_failure_context || c.runtime_env_failed_context || c;
  return ctx.error_message || JSON.stringify(ctx);
}

export function useNodeIps() {
  const nodes = usePoll("nodes?view=summary", 10000);
  const map = {};
  for (const n of (nodes.data && nodes.data.summary) || []) map[n.raylet.nodeId] = n.raylet.nodeManagerAddress;
  return map;
}

export function JobPage({ id }) {
  const job = usePoll("api/jobs/" + encodeURIComponent(id), 3000);
  const [busy, setBusy] = useState("");
  const [note, setNote] = useState(null);
  const nodes = useNodeIps();
  const j = job.data;
  const jobId = j && j.job_id;
  const actors = usePoll(jobId ? stateApi("actors", { job_id: jobId }) : null, 5000);
  const running = j && !TERMINAL.has(j.status);
  const act = async (what) => {
    if (what === "delete" && !confirm(`Delete job ${id}? Its record and logs go.`)) return;
    setBusy(what); setNote(null);
    try {
      if (what === "stop") await request(`api/jobs/${encodeURIComponent(id)}/stop`, { method: "POST" });
      else { await request(`api/jobs/${encodeURIComponent(id)}`, { method: "DELETE" }); location.hash = "#/jobs"; return; }
      job.reload();
    } catch (e) { setNote(e); } finally { setBusy(""); }
  };
  if (job.error && !j) {
    return html`<${Section} title=${"Job " + id}><${ErrorNote} error=${job.error} /><p><a href="#/jobs">Back to jobs</a></p></${Section}>`;
  }
  if (!j) return html`<${Loading} what="the job" />`;
  return html`<div data-testid="job-page">
    <${Section} title=${"Job " + id} right=${j.type === "SUBMISSION" ? html`<div class="buttons">
        <button disabled=${!running || busy} onClick=${() => act("stop")}>${busy === "stop" ? "Stopping…" : "Stop"}</button>
        <button disabled=${running || busy} onClick=${() => act("delete")}>Delete</button></div>` : null}>
      <${ErrorNote} error=${note || job.error} />
      <${Kv} items=${[
        ["Status", html`<${State} state=${j.status} />`], ["Type", j.type], ["Job ID", j.job_id],
        ["Submission ID", j.submission_id], ["Entrypoint", html`<${Clip} text=${j.entrypoint} mono />`],
        ["Message", html`<${Clip} text=${j.message} />`], ["Start time", timeMs(j.start_time)], ["End time", timeMs(j.end_time)],
        ["Duration", j.start_time ? duration((j.end_time || Date.now()) - j.start_time) : "-"],
        j.driver_info && ["Driver", `pid ${j.driver_info.pid} on ${j.driver_info.node_ip_address}`],
        j.driver_exit_code !== null && j.driver_exit_code !== undefined && ["Driver exit code", String(j.driver_exit_code)],
      ]} />
    </${Section}>
    ${j.submission_id ? html`<${Section} title="Driver log" right=${html`<span class="muted">${running ? "following" : ""}</span>
        <a href=${link("/logs", { submission_id: j.submission_id, node_id: j.driver_node_id })}>Open in Logs</a>`}>
      <${LogPane} path=${"api/jobs/" + encodeURIComponent(j.submission_id) + "/logs"} follow=${running} testid="driver-log" /></${Section}>` : null}
    <${Section} title="Tasks">${jobId ? html`<${TaskSummary} filters=${{ job_id: jobId }} />` : html`<p class="muted">No Ray driver has connected for this job: it has no tasks or actors.</p>`}</${Section}>
    <${Section} title="Actors">${jobId ? html`<${ErrorNote} error=${actors.error} />${actors.data ? html`<${ActorTable} rows=${actors.data.result.result} nodes=${nodes} />` : html`<${Loading} what="actors" />`}`
      : html`<p class="muted">None.</p>`}</${Section}>
  </div>`;
}
