// Overview: cluster utilisation (logical and physical), nodes alive/dead, recent jobs, recent events and
// the `ray status` text (the autoscaler's status when there is one).
import { html, usePoll, Section, Bar, State, Clip, ErrorNote, Loading, bytes, pct, usedOf, timeMs, ago, link } from "../lib.js";

function logicalRows(usage) {
  const rows = [];
  for (const name of ["CPU", "GPU", "memory", "object_store_memory"]) {
    const u = usage && usage[name];
    if (!u || !u[1]) continue;
    rows.push([name, u[0], u[1]]);
  }
  return rows;
}

function physical(summary) {
  const alive = summary.filter((n) => n.raylet && n.raylet.state === "ALIVE" && n.mem);
  const memUsed = alive.reduce((s, n) => s + n.mem[3], 0), memTotal = alive.reduce((s, n) => s + n.mem[0], 0);
  const cpus = alive.reduce((s, n) => s + ((n.cpus && n.cpus[0]) || 0), 0);
  const cpuUsed = alive.reduce((s, n) => s + (n.cpu || 0) * ((n.cpus && n.cpus[0]) || 0), 0);
  const store = alive.reduce((s, n) => s + ((n.objectStore && n.objectStore.objectStoreUsedBytes) || 0), 0);
  const storeCap = alive.reduce((s, n) => s + ((n.objectStore && n.objectStore.capacity) || 0), 0);
  const gpus = alive.flatMap((n) => n.gpus || []);
  const gramUsed = gpus.reduce((s, g) => s + (g.memoryUsed || 0), 0), gramTotal = gpus.reduce((s, g) => s + (g.memoryTotal || 0), 0);
  const gpuUtil = gpus.length ? gpus.reduce((s, g) => s + (g.utilizationGpu || 0), 0) / gpus.length : null;
  return { memUsed, memTotal, cpus, cpuPct: cpus ? cpuUsed / cpus : 0, store, storeCap, gpus, gramUsed, gramTotal, gpuUtil };
}

export function Overview() {
  const nodes = usePoll("nodes?view=summary", 4000);
  const status = usePoll("api/cluster_status", 4000);
  const jobs = usePoll("api/jobs/", 4000);
  const events = usePoll("events", 5000);
  const text = usePoll("api/cluster_status?format=1", 10000);
  const summary = (nodes.data && nodes.data.summary) || [];
  const alive = summary.filter((n) => n.raylet && n.raylet.state === "ALIVE").length;
  const p = physical(summary);
  const usage = status.data && status.data.clusterStatus && status.data.clusterStatus.loadMetricsReport.usage;
  const recentJobs = [...(jobs.data || [])].sort((a, b) => (b.start_time || 0) - (a.start_time || 0)).slice(0, 6);
  const evs = [...((events.data && events.data.events && events.data.events.global) || [])].reverse().slice(0, 10);
  return html`<div class="grid2" data-testid="overview">
    <${Section} title="Cluster utilization">
      <${ErrorNote} error=${status.error} />
      <h3>Logical (resources reserved by tasks and actors)</h3>
      ${usage ? html`<div class="meters">${logicalRows(usage).map(([name, used, total]) => html`<div class="meter" data-resource=${name}>
        <div class="meter-name">${name}</div><${Bar} fraction=${used / total} label=${usedOf(name, used, total)} /></div>`)}</div>` : html`<${Loading} what="resources" />`}
      <h3>Physical</h3>
      ${nodes.data ? html`<div class="meters">
        <div class="meter"><div class="meter-name">CPU</div><${Bar} fraction=${p.cpuPct / 100} label=${`${pct(p.cpuPct)} of ${p.cpus} cores`} /></div>
        <div class="meter"><div class="meter-name">Memory</div><${Bar} fraction=${p.memTotal ? p.memUsed / p.memTotal : 0} label=${`${bytes(p.memUsed)} of ${bytes(p.memTotal)}`} /></div>
        <div class="meter"><div class="meter-name">Object store</div><${Bar} fraction=${p.storeCap ? p.store / p.storeCap : 0} label=${`${bytes(p.store)} of ${bytes(p.storeCap)}`} /></div>
        ${p.gpus.length ? html`<div class="meter"><div class="meter-name">GPU</div><${Bar} fraction=${p.gpuUtil / 100} label=${`${pct(p.gpuUtil)} (${p.gpus.length} GPUs)`} /></div>
          <div class="meter"><div class="meter-name">GRAM</div><${Bar} fraction=${p.gramTotal ? p.gramUsed / p.gramTotal : 0} label=${`${bytes(p.gramUsed * 2 ** 20)} of ${bytes(p.gramTotal * 2 ** 20)}`} /></div>` : null}
      </div>` : html`<${Loading} what="nodes" />`}
    </${Section}>
    <${Section} title="Nodes" right=${html`<a href="#/cluster">View all nodes</a>`}>
      <${ErrorNote} error=${nodes.error} />
      ${nodes.data ? html`<p class="big"><span data-testid="nodes-alive">${alive}</span> alive · <span data-testid="nodes-dead">${summary.length - alive}</span> dead</p>` : html`<${Loading} what="nodes" />`}
    </${Section}>
    <${Section} title="Recent jobs" right=${html`<a href="#/jobs">View all jobs</a>`}>
      <${ErrorNote} error=${jobs.error} />
      ${jobs.data ? (recentJobs.length ? html`<ul class="list">${recentJobs.map((j) => {
        const id = j.submission_id || j.job_id;
        return html`<li key=${id}><${State} state=${j.status} /> <a href=${link("/jobs/" + encodeURIComponent(id))}>${id}</a>
          <span class="muted"> ${ago(j.start_time)}</span><div><${Clip} text=${j.entrypoint} lines=${1} mono /></div></li>`;
      })}</ul>` : html`<p class="muted">No jobs yet.</p>`) : html`<${Loading} what="jobs" />`}
    </${Section}>
    <${Section} title="Recent events">
      <${ErrorNote} error=${events.error} />
      ${evs.length ? html`<ul class="list">${evs.map((e) => html`<li key=${e.eventId}><${State} state=${e.severity} /> <b>${e.label}</b>
        <span class="muted"> ${timeMs(e.timestamp * 1000)}</span><div><${Clip} text=${e.message} lines=${2} /></div></li>`)}</ul>`
        : html`<p class="muted">${events.data ? "No events yet." : "Loading events…"}</p>`}
    </${Section}>
    <${Section} title="Cluster status">
      ${status.data && status.data.autoscalingStatus ? html`<pre class="log">${status.data.autoscalingStatus}</pre>` : null}
      ${text.data ? html`<pre class="log" data-testid="ray-status">${text.data.clusterStatus}</pre>` : html`<${Loading} what="status" />`}
    </${Section}>
  </div>`;
}
