// Cluster: the node table (physical and logical use in human units) and a node's page, the machine view,
// with each worker's pid, CPU, memory, what it runs and its GPU ids, and links to its logs.
import {
  html, usePoll, Table, State, Clip, ErrorNote, Loading, Section, Kv, Bar, SearchBox, Select, matches,
  bytes, pct, num, timeMs, link, shortId,
} from "../lib.js";

const MIB = 2 ** 20;

function rootDisk(n) {
  const disks = Object.values(n.disk || {});
  return disks.length ? disks[0] : null;
}

// nodeLogicalResources text ("1.0/2.0 CPU", "0.00/11.750 GiB memory") as "1 of 2 CPU", "0 B of 11.8 GiB memory".
export function logicalLines(raylet) {
  const total = raylet.total || raylet.resourcesTotal || {};
  // The raylet leaves fully taken resources out of `available` (0 left); no report at all: nothing used.
  const available = raylet.available || null;
  return Object.keys(total).filter((k) => !k.startsWith("node:") && !k.startsWith("accelerator_type:") && !k.includes("_group_"))
    .sort((a, b) => ({ CPU: 0, GPU: 1 }[a] ?? 2) - ({ CPU: 0, GPU: 1 }[b] ?? 2) || a.localeCompare(b))
    .map((k) => {
      const used = available && Object.keys(available).length ? total[k] - (available[k] || 0) : 0;
      return k === "memory" || k === "object_store_memory" ? `${bytes(used)} of ${bytes(total[k])} ${k}` : `${num(used)} of ${num(total[k])} ${k}`;
    });
}

function gpuText(n) {
  const gpus = n.gpus || [];
  if (!gpus.length) return "-";
  return gpus.map((g) => `[${g.index}] ${pct(g.utilizationGpu)}`).join(", ");
}

function gramText(n) {
  const gpus = n.gpus || [];
  if (!gpus.length) return "-";
  return gpus.map((g) => `[${g.index}] ${bytes(g.memoryUsed * MIB)} of ${bytes(g.memoryTotal * MIB)}`).join(", ");
}

export const nodeColumns = [
  { key: "host", label: "Host / IP", width: "13%", value: (n) => n.raylet.nodeManagerAddress,
    render: (n) => html`<a href=${link("/cluster/nodes/" + n.raylet.nodeId)}>${n.raylet.nodeManagerHostname || n.hostname}</a>
      <div class="muted">${n.raylet.nodeManagerAddress}${n.raylet.isHeadNode ? " (head)" : ""}</div>` },
  { key: "state", label: "State", width: "7%", value: (n) => n.raylet.state, render: (n) => html`<${State} state=${n.raylet.state} />` },
  { key: "id", label: "Node ID", width: "8%", value: (n) => n.raylet.nodeId, render: (n) => html`<span title=${n.raylet.nodeId}>${shortId(n.raylet.nodeId)}</span>` },
  { key: "cpu", label: "CPU", width: "9%", value: (n) => n.cpu, render: (n) => (n.mem ? html`<${Bar} fraction=${n.cpu / 100} label=${pct(n.cpu)} />` : "-") },
  { key: "mem", label: "Memory", width: "12%", value: (n) => (n.mem ? n.mem[3] : -1),
    render: (n) => (n.mem ? html`<${Bar} fraction=${n.mem[3] / n.mem[0]} label=${`${bytes(n.mem[3])} of ${bytes(n.mem[0])}`} />` : "-") },
  { key: "disk", label: "Disk", width: "11%", value: (n) => (rootDisk(n) || {}).used,
    render: (n) => { const d = rootDisk(n); return d ? html`<${Bar} fraction=${d.used / d.total} label=${`${bytes(d.used)} of ${bytes(d.total)}`} />` : "-"; } },
  { key: "gpu", label: "GPU", width: "7%", value: gpuText, render: (n) => html`<${Clip} text=${gpuText(n)} lines=${2} />` },
  { key: "gram", label: "GRAM", width: "9%", value: gramText, render: (n) => html`<${Clip} text=${gramText(n)} lines=${2} />` },
  { key: "store", label: "Object store", width: "10%", value: (n) => (n.objectStore || {}).objectStoreUsedBytes,
    render: (n) => (n.objectStore ? html`<${Bar} fraction=${n.objectStore.capacity ? n.objectStore.objectStoreUsedBytes / n.objectStore.capacity : 0}
      label=${`${bytes(n.objectStore.objectStoreUsedBytes)} of ${bytes(n.objectStore.capacity)}`} />` : "-") },
  { key: "logical", label: "Logical resources", width: "14%", value: (n) => (n.raylet.total || {}).CPU,
    render: (n) => html`<div class="lines">${logicalLines(n.raylet).map((l) => html`<div>${l}</div>`)}</div>` },
];

export function ClusterView({ route }) {
  const nodes = usePoll("nodes?view=summary", 4000);
  const q = route.query.get("q") || "", state = route.query.get("state") || "";
  const rows = ((nodes.data && nodes.data.summary) || []).filter((n) => (!state || n.raylet.state === state)
    && matches(q, n.raylet.nodeId, n.raylet.nodeManagerAddress, n.raylet.nodeManagerHostname));
  return html`<${Section} title="Nodes" right=${html`<div class="filters">
      <${Select} name="state" label="State" value=${state} options=${["", "ALIVE", "DEAD"]} />
      <${SearchBox} value=${q} placeholder="Search by IP, host or id" /></div>`}>
    <${ErrorNote} error=${nodes.error} />
    ${nodes.data ? html`<${Table} testid="node-table" columns=${nodeColumns} rows=${rows} rowKey=${(n) => n.raylet.nodeId}
      sortBy=${{ key: "state" }} empty="No nodes." />` : html`<${Loading} what="nodes" />`}
  </${Section}>`;
}

function workerRuns(w) {
  const s = (w.coreWorkerStats || [])[0] || {};
  if (w.isActor || s.actorName) return `Actor ${s.actorName || w.actorName || ""}`.trim();
  if (s.taskName || w.taskName) return `Task ${s.taskName || w.taskName}`;
  return w.state === "IDLE" ? "idle" : "-";
}

export function NodePage({ nodeId }) {
  const node = usePoll("nodes/" + encodeURIComponent(nodeId), 4000);
  const d = node.data && node.data.detail;
  if (!d) return html`<${Section} title=${"Node " + nodeId}><${ErrorNote} error=${node.error} />${node.error ? html`<a href="#/cluster">Back to the cluster</a>` : html`<${Loading} what="the node" />`}</${Section}>`;
  const r = d.raylet;
  const actorsByPid = {};
  for (const a of Object.values(d.actors || {})) if (a.pid && a.state === "ALIVE") actorsByPid[a.pid] = a;
  const workers = d.workers || [];
  return html`<div data-testid="node-page">
    <${Section} title=${`Node ${r.nodeManagerHostname || d.hostname} (${r.nodeManagerAddress})`} right=${html`<a href=${link("/logs", { node_id: r.nodeId })}>Logs of this node</a>`}>
      <${ErrorNote} error=${node.error} />
      <${Kv} items=${[
        ["State", html`<${State} state=${r.state} />`], ["Node ID", r.nodeId], ["Head node", r.isHeadNode ? "yes" : "no"],
        ["Started", timeMs(r.startTimeMs)], r.stateMessage && ["Death reason", html`<${Clip} text=${r.stateMessage} />`],
        d.mem && ["CPU", `${pct(d.cpu)} of ${d.cpus ? d.cpus[0] : "?"} cores`],
        d.mem && ["Memory", `${bytes(d.mem[3])} of ${bytes(d.mem[0])}`],
        d.objectStore && ["Object store", `${bytes(d.objectStore.objectStoreUsedBytes)} of ${bytes(d.objectStore.capacity)}`],
        (d.gpus || []).length && ["GPUs", html`<div class="lines">${d.gpus.map((g) => html`<div>[${g.index}] ${g.name}: ${pct(g.utilizationGpu)}, ${bytes(g.memoryUsed * MIB)} of ${bytes(g.memoryTotal * MIB)}</div>`)}</div>`],
        ["Logical resources", html`<div class="lines">${logicalLines(r).map((l) => html`<div>${l}</div>`)}</div>`],
      ]} />
    </${Section}>
    <${Section} title=${`Workers (${workers.length})`}>
      <${Table} testid="worker-table" rowKey=${(w) => w.pid} rows=${workers} sortBy=${{ key: "pid" }} empty="No workers."
        columns=${[
          { key: "pid", label: "PID", width: "8%" },
          { key: "runs", label: "Running", width: "24%", value: workerRuns, render: (w) => {
            const a = actorsByPid[w.pid];
            return html`${a ? html`<a href=${link("/actors/" + a.actorId)}>${workerRuns(w)}</a>` : workerRuns(w)}<div class="muted">${w.state || ""}</div>`;
          } },
          { key: "jobId", label: "Job", width: "8%" },
          { key: "cpuPercent", label: "CPU", width: "12%", render: (w) => html`<${Bar} fraction=${w.cpuPercent / 100} label=${pct(w.cpuPercent, 1)} />` },
          { key: "mem", label: "Memory (RSS)", width: "13%", value: (w) => (w.memoryInfo || {}).rss, render: (w) => bytes((w.memoryInfo || {}).rss) },
          { key: "gpuIds", label: "GPU ids", width: "10%", value: (w) => (w.gpuIds || []).join(","),
            render: (w) => html`<span data-testid="gpu-ids">${(w.gpuIds || []).length ? w.gpuIds.join(", ") : "-"}</span>` },
          { key: "workerId", label: "Worker ID", width: "13%", render: (w) => html`<span title=${w.workerId}>${shortId(w.workerId)}</span>` },
          { key: "logs", label: "Logs", width: "12%", render: (w) => html`<a href=${link("/logs", { node_id: r.nodeId, pid: w.pid, suffix: "out" })}>out</a>
            · <a href=${link("/logs", { node_id: r.nodeId, pid: w.pid, suffix: "err" })}>err</a>` },
        ]} />
    </${Section}>
  </div>`;
}
