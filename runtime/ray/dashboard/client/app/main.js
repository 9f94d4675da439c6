// The dashboard's shell: navigation with Ray's names, the connection banner and the hash router.
import { html, render, useRoute, useConnectionLost, usePoll, restoreViewAfterLogin } from "./lib.js";
import { Overview } from "./views/overview.js";
import { JobsView, JobPage } from "./views/jobs.js";
import { ClusterView, NodePage } from "./views/cluster.js";
import { ActorsView, ActorPage } from "./views/actors.js";
import { MetricsView } from "./views/metrics.js";
import { LogsView } from "./views/logs.js";

const NAV = [
  ["overview", "Overview"], ["jobs", "Jobs"], ["cluster", "Cluster"], ["actors", "Actors"],
  ["metrics", "Metrics"], ["logs", "Logs"],
];

function NotFound({ path }) {
  return html`<section class="card not-found" data-testid="not-found"><h2>Page not found</h2>
    <p>There is no view at <code>${path}</code>.</p><p><a href="#/overview">Go to the overview</a></p></section>`;
}

function view(route) {
  const [top, ...rest] = route.parts;
  switch (top || "overview") {
    case "overview": return rest.length ? null : html`<${Overview} />`;
    case "jobs": return rest.length === 0 ? html`<${JobsView} route=${route} />` : rest.length === 1 ? html`<${JobPage} id=${rest[0]} />` : null;
    case "cluster":
      if (rest.length === 0) return html`<${ClusterView} route=${route} />`;
      return rest.length === 2 && rest[0] === "nodes" ? html`<${NodePage} nodeId=${rest[1]} />` : null;
    case "actors": return rest.length === 0 ? html`<${ActorsView} route=${route} />` : rest.length === 1 ? html`<${ActorPage} actorId=${rest[0]} />` : null;
    case "metrics": return rest.length ? null : html`<${MetricsView} route=${route} />`;
    case "logs": return rest.length ? null : html`<${LogsView} route=${route} />`;
    default: return null;
  }
}

function Banner() {
  const lost = useConnectionLost();
  if (!lost) return null;
  return html`<div class="banner" role="status" data-testid="connection-lost">Connection to the dashboard lost: showing the
    last data received. Retrying…</div>`;
}

function App() {
  const route = useRoute();
  const meta = usePoll("api/v0/cluster_metadata", 0);
  const top = route.parts[0] || "overview";
  const body = view(route);
  return html`<header class="top">
      <a class="brand" href="#/overview">Ray<span>${meta.data ? ` ${meta.data.rayVersion || meta.data.ray_version || ""}` : ""}</span></a>
      <nav>${NAV.map(([id, label]) => html`<a href=${"#/" + id} class=${top === id ? "active" : ""} data-nav=${id}>${label}</a>`)}</nav>
    </header>
    <${Banner} />
    <main key=${route.parts.slice(0, 2).join("/")}>${body || html`<${NotFound} path=${route.path} />`}</main>`;
}

restoreViewAfterLogin();
if (!location.hash || location.hash === "#" || location.hash === "#/") history.replaceState(null, "", "#/overview");
render(html`<${App} />`, document.getElementById("root"));
