// One run: its causal tree, a waterfall by actor lane, and the events' details.
import { ApiError, api } from "./api.js";
import { duration, h, link, when } from "./dom.js";
import { eventDetails } from "./events.js";

const SHOWN = 2000; // rows (and bars) drawn at first; the rest on request
const DEPTH = 40; // indentation stops growing here (a deep chain stays readable)
const ROWS = 8; // sub-rows of a lane in the timeline

function problems(trace) {
  if (!trace.problems.length) return null;
  return h(
    "ul",
    { class: "problems", id: "problems" },
    trace.problems.map((p) => h("li", { class: p.kind }, h("b", {}, p.kind), " ", p.message)),
  );
}

function treeRows(trace, pick, from, to) {
  const rows = [];
  for (const node of trace.nodes.slice(from, to)) {
    const ev = node.event === null ? null : trace.events[node.event];
    const row = h(
      "div",
      { class: `node ${node.kind}${node.cycle_cut ? " cut" : ""}`, tabindex: 0 },
      h("span", { class: "mark" }, node.kind === "virtual" ? "◇" : node.cycle_cut ? "↺" : "•"),
      h("span", { class: "label" }, node.label),
      ev && ev.actor ? h("span", { class: "actor" }, ev.actor) : null,
      node.virtual ? h("span", { class: "muted" }, node.virtual) : null,
      h("span", { class: "time" }, `+${duration(node.offset_us)}`),
      node.to_last_descendant_us ? h("span", { class: "took" }, `took ${duration(node.to_last_descendant_us)}`) : null,
    );
    row.style.paddingLeft = `${Math.min(node.depth, DEPTH) * 14 + 4}px`;
    if (node.depth > DEPTH) row.append(h("span", { class: "muted" }, `[depth ${node.depth}]`));
    if (ev) row.addEventListener("click", () => pick(ev, row));
    else row.addEventListener("click", () => pick(null, row, node));
    rows.push(row);
  }
  return rows;
}

function timeline(trace, pick) {
  const total = Math.max(trace.summary.duration_us, 1);
  const nodeOf = new Map();
  for (const node of trace.nodes) if (node.event !== null) nodeOf.set(node.event, node);
  let budget = SHOWN * 2;
  const lanes = trace.lanes.map((lane) => {
    const track = h("div", { class: "track" });
    const ends = []; // per sub-row of the lane: where its last bar ends (%)
    for (const index of lane.events) {
      if (budget-- <= 0) break;
      const ev = trace.events[index];
      const node = nodeOf.get(index);
      const left = (node.offset_us / total) * 100;
      const width = Math.max((node.to_last_descendant_us / total) * 100, 0.4);
      // Overlapping bars stack in sub-rows (at most ROWS; then the least busy one).
      let row = ends.findIndex((end) => end <= left);
      if (row < 0 && ends.length < ROWS) row = ends.push(0) - 1;
      if (row < 0) row = ends.indexOf(Math.min(...ends));
      ends[row] = left + width;
      const bar = h("div", { class: "bar", title: `${ev.type} +${duration(node.offset_us)}` });
      bar.style.left = `${left}%`;
      bar.style.width = `${width}%`;
      bar.style.top = `${row * 0.8 + 0.15}rem`;
      bar.addEventListener("click", () => pick(ev, bar));
      track.append(bar);
    }
    track.style.height = `${Math.max(ends.length, 1) * 0.8 + 0.3}rem`;
    return h("div", { class: "lane" }, h("div", { class: "lane-name" }, lane.actor ?? "(no actor)"), track);
  });
  return h(
    "div",
    { class: "timeline", id: "timeline" },
    h("div", { class: "axis" }, h("span", {}, "0"), h("span", {}, duration(trace.summary.duration_us))),
    lanes,
    budget < 0 ? h("p", { class: "muted" }, `only the first ${SHOWN * 2} events are drawn`) : null,
  );
}

export async function runView(main, { parts, showError }) {
  const [cid] = parts;
  let trace;
  try {
    ({ body: trace } = await api(`/v1/runs/${encodeURIComponent(cid)}`));
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) {
      main.append(
        h(
          "div",
          { class: "notfound", id: "notfound" },
          h("h2", {}, "No run ", h("q", {}, cid)),
          h("p", {}, "No event has this correlation id. A run is the events that share one."),
          h("p", {}, link("#/runs", "See the runs"), " · ", link(`#/events?correlation_id=${encodeURIComponent(cid)}`, "search the events")),
        ),
      );
      return;
    }
    showError(main, err);
    return;
  }
  const s = trace.summary;
  const pane = h("aside", { class: "pane", id: "details" }, h("p", { class: "muted" }, "Click an event in the tree or the timeline."));
  let marked = null;
  const pick = (ev, el, node) => {
    if (marked) marked.classList.remove("picked");
    marked = el;
    el.classList.add("picked");
    pane.replaceChildren(ev ? eventDetails(ev) : h("div", { class: "details" }, h("h3", {}, node.label), h("p", {}, `cause ${node.causation_id} (${node.virtual})`)));
  };
  const tree = h("div", { class: "tree", id: "tree" }, treeRows(trace, pick, 0, SHOWN));
  if (trace.nodes.length > SHOWN) {
    const rest = h("button", { type: "button", id: "more-nodes" }, `Show all ${trace.nodes.length.toLocaleString("en")} nodes`);
    rest.addEventListener("click", () => {
      rest.remove();
      tree.append(...treeRows(trace, pick, SHOWN, trace.nodes.length));
    });
    tree.append(rest);
  }
  main.append(
    h("h2", {}, "Run ", h("q", { id: "run-id" }, cid), s.outcome ? h("span", { class: `badge ${s.outcome}` }, s.outcome) : null),
    h(
      "p",
      { class: "summary" },
      `${s.events.toLocaleString("en")} events · ${duration(s.duration_us)} · from ${when(s.first_recorded_at)} · actors: ${s.actors.join(", ") || "none"} · streams: ${s.streams.join(", ") || "none"}`,
    ),
    trace.truncated
      ? h("p", { class: "warning", id: "truncated" }, `Truncated: this run has more than ${trace.max_events.toLocaleString("en")} events; only the first ${trace.max_events.toLocaleString("en")} are shown (eventvault trace --max-events reads more).`)
      : null,
    problems(trace),
    h("p", {}, link(`#/events?correlation_id=${encodeURIComponent(cid)}`, "its events as a list"), " · ", link(`#/diff/${encodeURIComponent(cid)}/`, "compare with another run")),
    h("div", { class: "split" }, h("div", { class: "list" }, h("h3", {}, "Causal tree"), tree, h("h3", {}, "Timeline by actor"), timeline(trace, pick)), pane),
  );
  performance.mark("run-ready");
}
