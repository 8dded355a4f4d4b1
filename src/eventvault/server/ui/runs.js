// The run list: newest first, filters, cursor paging; pick two to compare.
import { api } from "./api.js";
import { duration, field, formParams, h, link, route, when } from "./dom.js";

const FILTERS = [["type", "a run with an event of this type"], ["actor", ""], ["stream", ""], ["since", "2h, 7d, ISO"], ["until", ""]];

export async function runsView(main, { params, showError }) {
  const form = h(
    "form",
    { class: "filters", id: "run-filters" },
    FILTERS.map(([name, hint]) => field(name, params, hint)),
    field("limit", params, "50"),
    h("button", { type: "submit" }, "List"),
    h("a", { href: "#/runs", class: "reset" }, "clear"),
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    location.hash = `#/runs?${formParams(form)}`;
  });
  const picked = [];
  const compare = h("button", { type: "button", id: "compare", disabled: true }, "Compare the two picked runs");
  compare.addEventListener("click", () => {
    location.hash = route("diff", picked[0], picked[1]);
  });
  const body = h("tbody");
  const table = h(
    "table",
    { class: "runs" },
    h("thead", {}, h("tr", {}, ["", "run", "outcome", "events", "duration", "actors", "first → last type", "last event"].map((c) => h("th", {}, c)))),
    body,
  );
  const more = h("button", { type: "button", id: "more", hidden: true }, "Next page");
  const count = h("span", { class: "muted", id: "count" });
  main.append(h("h2", {}, "Runs"), form, h("div", { class: "toolbar" }, compare, count), table, more);

  function toggle(cid, box) {
    const at = picked.indexOf(cid);
    if (box.checked && at < 0) picked.push(cid);
    if (!box.checked && at >= 0) picked.splice(at, 1);
    while (picked.length > 2) {
      const dropped = picked.shift();
      for (const other of body.querySelectorAll("input[type=checkbox]")) if (other.dataset.run === dropped) other.checked = false;
    }
    compare.disabled = picked.length !== 2;
  }

  let cursor = null;
  let shown = 0;
  const query = new URLSearchParams(params);
  async function load() {
    const q = new URLSearchParams(query);
    if (cursor) q.set("cursor", cursor);
    try {
      const { body: page } = await api("/v1/runs", q);
      for (const run of page.runs) {
        const box = h("input", { type: "checkbox", "aria-label": "pick to compare" });
        box.dataset.run = run.correlation_id;
        box.addEventListener("change", () => toggle(run.correlation_id, box));
        body.append(
          h(
            "tr",
            { class: `run ${run.outcome || ""}` },
            h("td", {}, box),
            h("td", {}, link(route("run", run.correlation_id), run.correlation_id)),
            h("td", { class: "outcome" }, run.outcome || ""),
            h("td", { class: "num" }, run.events.toLocaleString("en")),
            h("td", { class: "num" }, duration(run.duration_us)),
            h("td", {}, run.actors.join(", ")),
            h("td", {}, run.first_type, " → ", run.last_type),
            h("td", {}, when(run.last_recorded_at)),
          ),
        );
      }
      shown += page.runs.length;
      cursor = page.next_cursor;
      more.hidden = !cursor;
      count.textContent = shown ? `${shown} runs shown` : "no runs match (a run is the events sharing a correlation id)";
    } catch (err) {
      showError(main, err);
    }
  }
  more.addEventListener("click", load);
  await load();
}
