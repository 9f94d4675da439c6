// Metrics: charts drawn here (uPlot) from the head's metrics history (/api/metrics/history): the cluster's
// and each node's CPU, memory, GPU, GRAM, object store, workers, tasks by state (the GCS's task-event table),
// actors by state and logical resource use, over a chosen time range. No Grafana needed; when RAY_GRAFANA_HOST is set, a link to it as well.
import uPlot from "uplot";
import {
  html, useState, useEffect, useRef, request, usePoll, ErrorNote, Loading, Section, Select, bytes, pct, num, shortId,
  stateColour,
} from "../lib.js";

const RANGES = [["300", "Last 5 minutes"], ["900", "Last 15 minutes"], ["1800", "Last 30 minutes"], ["3600", "Last hour"]];
const COLOURS = ["#1E88E5", "#43A047", "#F57C00", "#D32F2F", "#8E24AA", "#00897B", "#6D4C41", "#546E7A"];
const FORMAT = { bytes, pct: (v) => pct(v), num };
const STATE_HEX = { green: "#43A047", red: "#D32F2F", orange: "#F57C00", blue: "#1E88E5", grey: "#757575" };

// Each chart's container holds its uPlot instance as `uplot` (what it draws: `.series`, `.data`), for tests.
function Chart({ title, times, series, unit = "num", testid }) {
  const outer = useRef(null);
  const box = useRef(null);
  const plot = useRef(null);
  const fmt = FORMAT[unit];
  const data = [times, ...series.map((s) => s.values)];
  const shape = series.map((s) => s.label).join("|");
  useEffect(() => {
    const el = box.current;
    const opts = {
      width: Math.max(200, el.clientWidth), height: 200,
      scales: { x: { time: true }, y: { range: (u, lo, hi) => [Math.min(0, lo), unit === "pct" ? Math.max(100, hi) : Math.max(hi * 1.1, 1)] } },
      axes: [{}, { values: (u, vals) => vals.map((v) => fmt(v)), size: 70 }],
      series: [{}, ...series.map((s, i) => ({ label: s.label, stroke: s.colour || COLOURS[i % COLOURS.length], width: 1.5,
        dash: s.dash, value: (u, v) => (v === null || v === undefined ? "-" : fmt(v)) }))],
      legend: { live: true },
    };
    plot.current = new uPlot(opts, data, el);
    outer.current.uplot = plot.current;
    const ro = new ResizeObserver(() => plot.current && plot.current.setSize({ width: Math.max(200, el.clientWidth), height: 200 }));
    ro.observe(el);
    return () => { ro.disconnect(); plot.current.destroy(); plot.current = null; if (outer.current) outer.current.uplot = null; };
  }, [shape, unit]);
  useEffect(() => { if (plot.current) plot.current.setData(data); });
  return html`<div class="chart" data-testid=${testid} ref=${outer}><h3>${title}</h3><div ref=${box}></div></div>`;
}

// One series per state, in Ray's state colours; a colour already taken (the PENDING_* states are all
// orange) is drawn dashed so that the lines stay apart.
function stateSeries(points, key) {
  const states = [...new Set(points.flatMap((p) => Object.keys(p[key] || {})))].sort();
  const used = {};
  return states.map((s) => {
    const colour = STATE_HEX[stateColour(s)];
    const n = (used[colour] = (used[colour] || 0) + 1);
    return { label: s, colour, dash: n > 1 ? [n * 2, n * 2] : undefined,
      values: points.map((p) => (p[key] ? p[key][s] || 0 : null)) };
  });
}

function clusterCharts(points) {
  const t = points.map((p) => p.t);
  const col = (k) => points.map((p) => (p[k] === undefined ? null : p[k]));
  const charts = [
    { title: "CPU utilization (average of nodes)", unit: "pct", series: [{ label: "CPU %", values: col("cpu_utilization") }] },
    { title: "Logical CPUs", series: [{ label: "used", values: col("CPU_used") }, { label: "total", values: col("CPU_total"), dash: [4, 4] }] },
    { title: "Logical GPUs", series: [{ label: "used", values: col("GPU_used") }, { label: "total", values: col("GPU_total"), dash: [4, 4] }] },
    { title: "Memory (physical)", unit: "bytes", series: [{ label: "used", values: col("mem_used") }, { label: "total", values: col("mem_total"), dash: [4, 4] }] },
    { title: "Object store memory (logical)", unit: "bytes", series: [{ label: "used", values: col("object_store_memory_used") }, { label: "total", values: col("object_store_memory_total"), dash: [4, 4] }] },
    { title: "Alive nodes", series: [{ label: "nodes", values: col("nodes_alive") }] },
  ];
  const tasks = stateSeries(points, "tasks");
  if (tasks.length) charts.push({ title: "Tasks by state", series: tasks });
  const actors = stateSeries(points, "actors");
  if (actors.length) charts.push({ title: "Actors by state", series: actors });
  return { t, charts };
}

function nodeCharts(points) {
  const t = points.map((p) => p.t);
  const col = (k) => points.map((p) => p[k]);
  const gpus = Math.max(0, ...points.map((p) => (p.gpu_utilization || []).length));
  const idx = [...Array(gpus).keys()];
  const charts = [
    { title: "CPU", unit: "pct", series: [{ label: "CPU %", values: col("cpu") }] },
    { title: "Memory", unit: "bytes", series: [{ label: "used", values: col("mem_used") }, { label: "total", values: col("mem_total"), dash: [4, 4] }] },
    { title: "Object store used", unit: "bytes", series: [{ label: "used", values: col("object_store_used") }] },
    { title: "Workers", series: [{ label: "workers", values: col("num_workers") }] },
    { title: "Network", unit: "bytes", series: [{ label: "sent /s", values: col("net_send_speed") }, { label: "received /s", values: col("net_receive_speed") }] },
    { title: "Disk used", unit: "bytes", series: [{ label: "used", values: col("disk_used") }] },
  ];
  if (gpus) {
    charts.push({ title: "GPU utilization", unit: "pct", series: idx.map((i) => ({ label: `GPU ${i}`, values: points.map((p) => (p.gpu_utilization || [])[i] ?? null) })) });
    charts.push({ title: "GRAM used", unit: "bytes", series: idx.map((i) => ({ label: `GPU ${i}`, values: points.map((p) => ((p.gram_used || [])[i] ?? null) === null ? null : p.gram_used[i] * 2 ** 20) })) });
  }
  return { t, charts };
}

export function MetricsView({ route }) {
  const range = route.query.get("range") || "900";
  const nodeId = route.query.get("node_id") || "";
  const [state, setState] = useState({ data: null, error: null });
  const nodes = usePoll("nodes?view=summary", 15000);
  const grafana = usePoll("api/grafana_health", 0);
  useEffect(() => {
    let alive = true;
    const load = async () => {
      if (document.hidden) return;
      const since = Date.now() / 1000 - Number(range);
      const qs = nodeId ? `node_id=${encodeURIComponent(nodeId)}` : "scope=cluster";
      try {
        const data = await request(`api/metrics/history?${qs}&since=${since}`);
        if (alive) setState({ data, error: null });
      } catch (e) { if (alive) setState((s) => ({ data: s.data, error: e })); }
    };
    load();
    const timer = setInterval(load, 5000);
    return () => { alive = false; clearInterval(timer); };
  }, [range, nodeId]);
  const d = state.data;
  const points = d ? (nodeId ? (d.nodes && d.nodes[nodeId]) || [] : d.cluster) : [];
  const { t, charts } = nodeId ? nodeCharts(points) : clusterCharts(points);
  const nodeOptions = [["", "Whole cluster"], ...((nodes.data && nodes.data.summary) || []).map((n) => [n.raylet.nodeId,
    `${n.raylet.nodeManagerAddress} ${shortId(n.raylet.nodeId)}${n.raylet.isHeadNode ? " (head)" : ""}`])];
  const grafanaHost = grafana.data && grafana.data.grafanaHost;
  return html`<${Section} title="Metrics" right=${html`<div class="filters">
      <${Select} name="node_id" label="Scope" value=${nodeId} options=${nodeOptions} />
      <${Select} name="range" label="Time range" value=${range} options=${RANGES} />
      ${grafanaHost ? html`<a href=${grafanaHost} target="_blank" rel="noopener" data-testid="grafana-link">Open in Grafana</a>` : null}</div>`}>
    <${ErrorNote} error=${state.error} />
    ${d ? html`<p class="muted">A point every ${num(d.interval_s)} s, kept for ${Math.round((d.interval_s * d.max_points) / 60)} minutes by the dashboard.
      ${points.length < 2 ? " Collecting: the charts fill in as points arrive." : ""}</p>
      <div class="charts" data-testid="charts">${charts.map((c) => html`<${Chart} key=${nodeId + c.title} title=${c.title} times=${t} series=${c.series} unit=${c.unit} testid="chart" />`)}</div>`
      : html`<${Loading} what="metrics" />`}
  </${Section}>`;
}

