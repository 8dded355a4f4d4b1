// The live tail: GET /v1/events/stream read with fetch() (the token goes in a
// header), newest first, reconnecting after the last position seen.
import { events } from "./api.js";
import { field, formParams, h } from "./dom.js";
import { eventRow, eventTable, picker } from "./events.js";

const KEEP = 500; // rows kept on the page

export async function tailView(main, { params, showError }) {
  const form = h(
    "form",
    { class: "filters", id: "tail-filters" },
    ["type", "actor", "stream", "correlation_id"].map((name) => field(name, params)),
    h("button", { type: "submit" }, "Follow"),
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    location.hash = `#/tail?${formParams(form)}`;
  });
  const state = h("span", { class: "state", id: "tail-state" }, "connecting…");
  const table = eventTable();
  const body = table.tBodies[0];
  const pane = h("aside", { class: "pane", id: "details" }, h("p", { class: "muted" }, "New events appear at the top."));
  main.append(h("h2", {}, "Live tail"), form, h("div", { class: "toolbar" }, state), h("div", { class: "split" }, h("div", { class: "list" }, table), pane));
  const pick = picker(pane);
  const control = new AbortController();
  let after = null;

  async function follow() {
    while (!control.signal.aborted) {
      const q = new URLSearchParams(params);
      if (after !== null) q.set("after", after);
      try {
        const opened = () => {
          state.textContent = after === null ? "live" : `live · last position ${after}`;
          state.dataset.live = "yes";
        };
        for await (const frame of events("/v1/events/stream", q, control.signal, opened)) {
          if (frame.event === "error") {
            state.textContent = `the server ended the tail: ${JSON.parse(frame.data).message}`;
            return;
          }
          const ev = JSON.parse(frame.data);
          after = frame.id || String(ev.position);
          body.prepend(eventRow(ev, pick));
          while (body.rows.length > KEEP) body.deleteRow(-1);
          state.textContent = `live · last position ${after}`;
        }
      } catch (err) {
        if (control.signal.aborted) return;
        if (err.status) {
          showError(main, err);
          return;
        }
      }
      if (control.signal.aborted) return;
      state.dataset.live = "";
      state.textContent = "reconnecting…";
      await new Promise((done) => setTimeout(done, 2000));
    }
  }
  follow();
  return () => control.abort();
}
