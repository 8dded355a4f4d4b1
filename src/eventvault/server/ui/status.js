// The store: its stats, readiness, and (admin scope) a walk of its hash chain.
import { ApiError, api } from "./api.js";
import { h } from "./dom.js";

function table(obj) {
  return h(
    "table",
    { class: "kv" },
    Object.entries(obj).map(([k, v]) => h("tr", {}, h("th", {}, k), h("td", {}, typeof v === "object" && v !== null ? JSON.stringify(v) : String(v)))),
  );
}

export async function statusView(main, { showError }) {
  main.append(h("h2", {}, "Store status"));
  try {
    const { body: stats } = await api("/v1/stats");
    main.append(table(stats));
  } catch (err) {
    showError(main, err);
    return;
  }
  const out = h("div", { id: "verify-result" });
  const button = h("button", { type: "button", id: "verify" }, "Verify the hash chain");
  button.addEventListener("click", async () => {
    button.disabled = true;
    out.replaceChildren(h("p", { class: "muted" }, "walking the chain…"));
    try {
      const { body } = await api("/v1/verify", null, { method: "POST", ok: [409] });
      out.replaceChildren(
        h("p", { class: body.ok ? "ok" : "error" }, body.ok ? `The chain is intact: ${body.checked.toLocaleString("en")} events checked.` : `The chain is broken at position ${body.first_bad_position}: ${body.reason}`),
        table(body),
      );
    } catch (err) {
      out.replaceChildren();
      if (err instanceof ApiError && err.status === 403) out.append(h("p", { class: "error" }, "Verifying needs a token with the admin scope: ", err.message));
      else showError(out, err);
    } finally {
      button.disabled = false;
    }
  });
  main.append(h("h3", {}, "Integrity"), h("p", {}, "Recompute every event's hash from the first to the head (admin scope)."), button, out);
}
