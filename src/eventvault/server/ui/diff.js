// Two runs side by side: aligned by (actor, type); data changes field by field.
import { api } from "./api.js";
import { duration, h, link, route } from "./dom.js";

function change(c) {
  const show = (v) => (v === undefined || v === null ? "∅" : JSON.stringify(v));
  return h("li", {}, h("code", {}, c.path || "/"), ` ${c.kind}: `, h("code", {}, show(c.a)), " → ", h("code", {}, show(c.b)));
}

export async function diffView(main, { parts, params, showError }) {
  const [a, b] = parts;
  const form = h(
    "form",
    { class: "filters", id: "diff-form" },
    h("label", { class: "field" }, h("span", {}, "run A"), h("input", { name: "a", value: a, required: true, autocomplete: "off" })),
    h("label", { class: "field" }, h("span", {}, "run B"), h("input", { name: "b", value: b, required: true, autocomplete: "off" })),
    h("label", { class: "field" }, h("span", {}, "timing threshold"), h("input", { name: "timing_threshold", value: params.get("timing_threshold") || "", placeholder: "1s" })),
    h("button", { type: "submit" }, "Compare"),
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const data = new FormData(form);
    const t = String(data.get("timing_threshold") || "").trim();
    location.hash = route("diff", String(data.get("a")).trim(), String(data.get("b")).trim()) + (t ? `?timing_threshold=${encodeURIComponent(t)}` : "");
  });
  main.append(h("h2", {}, "Compare two runs"), form);
  if (!a || !b) return;
  const q = new URLSearchParams();
  if (params.get("timing_threshold")) q.set("timing_threshold", params.get("timing_threshold"));
  let d;
  try {
    ({ body: d } = await api(`/v1/runs/${encodeURIComponent(a)}/diff/${encodeURIComponent(b)}`, q));
  } catch (err) {
    showError(main, err);
    return;
  }
  const hideSame = h("input", { type: "checkbox", id: "hide-same" });
  const body = h("tbody");
  for (const s of d.steps) {
    const timing = s.slower ? `slower by ${duration(s.timing_delta_us)}` : s.faster ? `faster by ${duration(-s.timing_delta_us)}` : "";
    body.append(
      h(
        "tr",
        { class: `step ${s.kind}` },
        h("td", { class: "kind" }, s.kind.replace("_", " ")),
        h("td", {}, s.actor || ""),
        h("td", { class: "type" }, s.type),
        h("td", { class: "num" }, s.a_position ?? ""),
        h("td", { class: "num" }, s.b_position ?? ""),
        h("td", {}, timing),
        h("td", {}, s.changes.length ? h("ul", { class: "changes" }, s.changes.map(change), s.changes_truncated ? h("li", {}, "…") : null) : ""),
      ),
    );
  }
  hideSame.addEventListener("change", () => {
    for (const row of body.rows) row.hidden = hideSame.checked && row.classList.contains("same");
  });
  main.append(
    h(
      "p",
      { class: "summary", id: "diff-summary" },
      `${d.same} same · ${d.changed} changed · ${d.only_a} only in A · ${d.only_b} only in B · ${d.moved} moved · ${d.timing} timing · A took ${duration(d.a_duration_us)}, B took ${duration(d.b_duration_us)}`,
    ),
    h("p", {}, link(route("run", a), "run A"), " · ", link(route("run", b), "run B"), " · ", h("label", {}, hideSame, " hide identical steps")),
    h(
      "table",
      { class: "diff" },
      h("thead", {}, h("tr", {}, ["", "actor", "type", "A position", "B position", "timing", "data changes"].map((c) => h("th", {}, c)))),
      body,
    ),
  );
}
