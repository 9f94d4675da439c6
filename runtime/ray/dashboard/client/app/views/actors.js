// Actors: live and dead actors (the dashboard keeps up to RAY_DASHBOARD_MAX_ACTORS_TO_CACHE dead ones) with
// filter, search and sort; an actor's page with its details, tasks and logs.
import {
  html, usePoll, Table, State, Clip, ErrorNote, Loading, Section, Kv, SearchBox, Select, matches, link,
  stateApi, resources, timeMs, duration,
} from "../lib.js";
import { ActorTable, deathCause, useNodeIps, TaskSummary } from "./jobs.js";
import { LogViewer } from "./logs.js";

const ACTOR_STATES = ["", "ALIVE", "DEAD", "PENDING_CREATION", "DEPENDENCIES_UNREADY", "RESTARTING"];

export function ActorsView({ route }) {
  const actors = usePoll(stateApi("actors"), 4000);
  const nodes = useNodeIps();
  const q = route.query.get("q") || "", state = route.query.get("state") || "", job = route.query.get("job_id") || "";
  const all = (actors.data && actors.data.result.result) || [];
  const counts = {};
  for (const a of all) counts[a.state] = (counts[a.state] || 0) + 1;
  const rows = all.filter((a) => (!state || a.state === state) && (!job || a.job_id === job)
    && matches(q, a.actor_id, a.class_name, a.name, a.ray_namespace, a.job_id, a.pid, nodes[a.node_id], deathCause(a)));
  const jobs = ["", ...new Set(all.map((a) => a.job_id))];
  return html`<${Section} title="Actors" right=${html`<div class="filters">
      <${Select} name="state" label="State" value=${state} options=${ACTOR_STATES} />
      <${Select} name="job_id" label="Job" value=${job} options=${jobs} />
      <${SearchBox} value=${q} placeholder="Search by id, class, name, namespace, pid" /></div>`}>
    <${ErrorNote} error=${actors.error} />
    ${actors.data ? html`<p class="counts" data-testid="actor-counts">${Object.entries(counts).map(([s, n]) => html`<span class="count"><${State} state=${s} /> ${n}</span> `)}
        <span class="muted">${all.length} actors${actors.data.result.total > all.length ? ` of ${actors.data.result.total}` : ""}</span></p>
      <${ActorTable} rows=${rows} nodes=${nodes} />` : html`<${Loading} what="actors" />`}
  </${Section}>`;
}

export function ActorPage({ actorId }) {
  const actor = usePoll(stateApi("actors", { actor_id: actorId }), 4000);
  const tasks = usePoll(stateApi("tasks", { actor_id: actorId }, { limit: "200" }), 5000);
  const nodes = useNodeIps();
  const a = actor.data && actor.data.result.result[0];
  if (!a) {
    return html`<${Section} title=${"Actor " + actorId}><${ErrorNote} error=${actor.error} />
      ${actor.data ? html`<p>No actor ${actorId}. <a href="#/actors">Back to actors</a></p>` : html`<${Loading} what="the actor" />`}</${Section}>`;
  }
  const taskRows = (tasks.data && tasks.data.result.result) || [];
  return html`<div data-testid="actor-page">
    <${Section} title=${`Actor ${a.class_name}${a.name ? ` "${a.name}"` : ""}`}>
      <${Kv} items=${[
        ["State", html`<${State} state=${a.state} />`], ["Actor ID", a.actor_id], ["Class", a.class_name], ["Name", a.name],
        ["Namespace", a.ray_namespace], ["Job", html`<a href=${link("/jobs/" + a.job_id)}>${a.job_id}</a>`],
        ["Node", a.node_id ? html`<a href=${link("/cluster/nodes/" + a.node_id)}>${nodes[a.node_id] || a.node_id}</a>` : "-"],
        ["PID", a.pid], ["Restarts", a.num_restarts], ["Detached", a.is_detached ? "yes" : "no"],
        ["Required resources", resources(a.required_resources)], ["Repr", a.repr_name],
        a.state === "DEAD" && ["Death cause", html`<${Clip} text=${deathCause(a)} lines=${4} />`],
      ]} />
    </${Section}>
    <${Section} title="Tasks"><${ErrorNote} error=${tasks.error} />
      <${TaskSummary} filters=${{ actor_id: actorId }} />
      <h3>Latest tasks</h3>
      <${Table} testid="actor-tasks" rowKey=${(t) => t.task_id + ":" + t.attempt_number} rows=${taskRows} limit=${50}
        sortBy=${{ key: "creation_time_ms", desc: true }} empty="No tasks."
        columns=${[
          { key: "name", label: "Name", width: "25%", render: (t) => html`<${Clip} text=${t.name} lines=${1} mono />` },
          { key: "state", label: "State", width: "15%", render: (t) => html`<${State} state=${t.state} />` },
          { key: "creation_time_ms", label: "Created", width: "18%", render: (t) => timeMs(t.creation_time_ms) },
          { key: "duration", label: "Duration", width: "10%", value: (t) => (t.end_time_ms || 0) - (t.start_time_ms || 0),
            render: (t) => (t.start_time_ms && t.end_time_ms ? duration(t.end_time_ms - t.start_time_ms) : "-") },
          { key: "error_message", label: "Error", width: "32%", render: (t) => html`<${Clip} text=${t.error_message || t.error_type} />` },
        ]} />
    </${Section}>
    ${a.pid && a.node_id ? html`<${Section} title="Logs">
      <${LogViewer} params=${{ node_id: a.node_id, actor_id: a.actor_id, suffix: "out" }} follow=${a.state === "ALIVE"} compact />
      <h3>stderr</h3><${LogViewer} params=${{ node_id: a.node_id, actor_id: a.actor_id, suffix: "err" }} follow=${a.state === "ALIVE"} compact />
    </${Section}>` : null}
  </div>`;
}
