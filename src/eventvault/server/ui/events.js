// The event list: every filter of GET /v1/events, cursor paging, JSON on click.
import { api } from "./api.js";
import { field, formParams, h, json, link, route, when } from "./dom.js";

const FILTERS = [
  ["type", "a.b or a.*; comma = or"],
  ["actor", ""],
  ["stream", ""],
  ["correlation_id", ""],
  ["causation_id", ""],
  ["since", "ISO time, 2h, 7d"],
  ["until", ""],
  ["after", "position"],
  ["before", "position"],
];

/** The details of one event: its JSON and where to go from it. */
export function eventDetails(ev) {
  return h(
    "div",
    { class: "details" },
    h("h3", {}, ev.type, " ", h("span", { class: "muted" }, `#${ev.position}`)),
    h(
      "p",
      { class: "links" },
      ev.correlation_id ? [link(route("run", ev.correlation_id), "its run"), " · "] : null,
      link(`#/events?causation_id=${encodeURIComponent(ev.id)}`, "events it caused"),
      ev.stream ? [" · ", link(`#/events?stream=${encodeURIComponent(ev.stream)}`, "its stream")] : null,
    ),
    json(ev),
  );
}

/** A table row for an event. */
export function eventRow(ev, onPick) {
  const row = h(
    "tr",
    { class: "event", tabindex: 0, onclick: () => onPick(ev, row), onkeydown: (e) => e.key === "Enter" && onPick(ev, row) },
    h("td", { class: "num" }, ev.position),
    h("td", {}, when(ev.recorded_at)),
    h("td", { class: "type" }, ev.type),
    h("td", {}, ev.stream || ""),
    h("td", {}, ev.actor || ""),
    h("td", {}, ev.correlation_id ? link(route("run", ev.correlation_id), ev.correlation_id) : ""),
  );
  row.dataset.search = JSON.stringify(ev).toLowerCase();
  return row;
}

export function eventTable() {
  return h(
    "table",
    { class: "events" },
    h("thead", {}, h("tr", {}, ["position", "recorded", "type", "stream", "actor", "correlation"].map((c) => h("th", {}, c)))),
    h("tbody"),
  );
}

/** A picker that shows an event in `pane` and marks its row. */
export function picker(pane) {
  let marked = null;
  return (ev, row) => {
    if (marked) marked.classList.remove("picked");
    marked = row;
    row.classList.add("picked");
    pane.replaceChildren(eventDetails(ev));
  };
}

export async function eventsView(main, { params, showError }) {
  const order = h("select", { name: "order" }, h("option", { value: "asc" }, "oldest first"), h("option", { value: "desc" }, "newest first"));
  order.value = params.get("order") === "desc" ? "desc" : "asc";
  const form = h(
    "form",
    { class: "filters", id: "event-filters" },
    FILTERS.map(([name, hint]) => field(name, params, hint)),
    h("label", { class: "field" }, h("span", {}, "order"), order),
    field("limit", params, "100"),
    h("button", { type: "submit" }, "Search"),
    h("a", { href: "#/events", class: "reset" }, "clear"),
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const next = formParams(form);
    if (next.get("order") === "asc") next.delete("order");
    location.hash = `#/events?${next}`;
  });
  const find = h("input", { type: "search", placeholder: "find in the loaded events", class: "find", id: "find" });
  const table = eventTable();
  const body = table.tBodies[0];
  const pane = h("aside", { class: "pane", id: "details" }, h("p", { class: "muted" }, "Click an event to see its JSON."));
  const more = h("button", { type: "button", id: "more", hidden: true }, "Next page");
  const count = h("span", { class: "muted", id: "count" });
  find.addEventListener("input", () => {
    const needle = find.value.toLowerCase();
    for (const row of body.rows) row.hidden = needle !== "" && !row.dataset.search.includes(needle);
  });
  main.append(
    h("h2", {}, "Events"),
    form,
    h("div", { class: "toolbar" }, find, count),
    h("div", { class: "split" }, h("div", { class: "list" }, table, more), pane),
  );
  const pick = picker(pane);
  let shown = 0;
  let cursor = null;
  const query = new URLSearchParams(params);
  if (!query.get("limit")) query.set("limit", "100");

  async function load() {
    const q = new URLSearchParams(query);
    if (cursor) q.set("cursor", cursor);
    try {
      const { body: page } = await api("/v1/events", q);
      for (const ev of page.events) body.append(eventRow(ev, pick));
      shown += page.events.length;
      cursor = page.next_cursor;
      more.hidden = !cursor;
      count.textContent = shown ? `${shown.toLocaleString("en")} events shown` : "no events match";
    } catch (err) {
      showError(main, err);
    }
  }
  more.addEventListener("click", load);
  await load();
}
