// The store: its stats, its Merkle tree and latest signed checkpoint, and (admin
// scope) a walk verifying its hashes and Merkle tree.
import { ApiError, api, text } from "./api.js";
import { h } from "./dom.js";

function table(obj) {
  return h(
    "table",
    { class: "kv" },
    Object.entries(obj).map(([k, v]) => h("tr", {}, h("th", {}, k), h("td", {}, typeof v === "object" && v !== null ? JSON.stringify(v) : String(v)))),
  );
}

// The tree's size and the latest checkpoint's (its second line: C2SP tlog-checkpoint).
// The signature is not checked here: an auditor checks it with the verifier key.
async function treeStatus(showError) {
  const box = h("div", { id: "tree-status" });
  try {
    const tree = await api("/v1/log/tree", null, { ok: [501] });
    if (tree.status === 501) {
      box.append(h("p", { class: "muted" }, tree.body.error.message));
      return box;
    }
    const note = await text("/v1/log/checkpoint", { ok: [404] });
    const kept = note.status === 200 ? Number(note.body.split("\n")[1]) : null;
    box.append(
      table({
        "tree size": tree.body.size,
        "root hash": tree.body.root_hash,
        "latest checkpoint": kept === null ? "none yet" : `${kept.toLocaleString("en")} events (${(tree.body.size - kept).toLocaleString("en")} appended since)`,
      }),
    );
  } catch (err) {
    showError(box, err);
  }
  return box;
}

export async function statusView(main, { showError }) {
  main.append(h("h2", {}, "Store status"));
  try {
    const { body: stats } = await api("/v1/stats");
    main.append(table(stats));
    main.append(h("h3", {}, "Merkle tree"), await treeStatus(showError));
  } catch (err) {
    showError(main, err);
    return;
  }
  const out = h("div", { id: "verify-result" });
  const button = h("button", { type: "button", id: "verify" }, "Verify the store");
  button.addEventListener("click", async () => {
    button.disabled = true;
    out.replaceChildren(h("p", { class: "muted" }, "verifying every event…"));
    try {
      const { body } = await api("/v1/verify", null, { method: "POST", ok: [409] });
      out.replaceChildren(
        h("p", { class: body.ok ? "ok" : "error" }, body.ok ? `Intact: ${body.checked.toLocaleString("en")} events checked.` : `Broken at position ${body.first_bad_position}: ${body.reason}`),
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
