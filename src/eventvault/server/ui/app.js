// The console: a router over the location's #fragment, the login, and the views.
import { ApiError, api, token } from "./api.js";
import { h } from "./dom.js";
import { diffView } from "./diff.js";
import { eventsView } from "./events.js";
import { runView } from "./run.js";
import { runsView } from "./runs.js";
import { statusView } from "./status.js";
import { tailView } from "./tail.js";

const ROUTES = [
  [/^$/, "events", eventsView],
  [/^events$/, "events", eventsView],
  [/^runs$/, "runs", runsView],
  [/^run\/([^/]+)$/, "runs", runView],
  [/^diff(?:\/([^/]*)\/([^/]*))?$/, "diff", diffView],
  [/^tail$/, "tail", tailView],
  [/^status$/, "status", statusView],
];

const main = document.getElementById("main");
const login = document.getElementById("login");
let stop = null; // what the current view must stop (a live tail) before the next one

/** An error as a page: a message a person can act on. */
export function showError(where, err) {
  if (err instanceof ApiError && err.status === 401) {
    askForToken("The server wants a token.");
    return;
  }
  const title =
    err instanceof ApiError && err.status === 403
      ? "This token may not read"
      : err instanceof ApiError
        ? `${err.type} (${err.status})`
        : "Something went wrong";
  where.append(h("div", { class: "error", role: "alert" }, h("b", {}, title), " ", err.message));
}

function askForToken(message) {
  main.replaceChildren();
  login.hidden = false;
  document.getElementById("login-error").textContent = message;
  document.getElementById("token").focus();
}

async function render() {
  if (stop) {
    stop();
    stop = null;
  }
  const [path, query] = location.hash.replace(/^#\/?/, "").split("?");
  const params = new URLSearchParams(query || "");
  const found = ROUTES.find(([pattern]) => pattern.test(path));
  main.replaceChildren();
  document.body.dataset.ready = "";
  if (!found) {
    main.append(h("div", { class: "error" }, "No such page: ", path, " — ", h("a", { href: "#/events" }, "back to the events")));
    return;
  }
  const [pattern, name, view] = found;
  for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("active", a.dataset.view === name);
  const parts = path.match(pattern).slice(1).map((p) => (p === undefined ? "" : decodeURIComponent(p)));
  try {
    stop = (await view(main, { params, parts, showError })) || null;
  } catch (err) {
    showError(main, err);
  }
  document.body.dataset.ready = name;
}

async function start() {
  login.hidden = true;
  try {
    const { body } = await api("/v1/stats");
    document.getElementById("who").textContent = `${body.backend} · ${body.events.toLocaleString("en")} events`;
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      askForToken(token.get() ? "That token was refused." : "");
      token.clear();
      return;
    }
    if (err instanceof ApiError && err.status === 403) {
      askForToken(`That token may not read: ${err.message}`);
      token.clear();
      return;
    }
    showError(main, err);
    return;
  }
  document.getElementById("logout").hidden = !token.get();
  await render();
}

document.getElementById("login-form").addEventListener("submit", (e) => {
  e.preventDefault();
  token.set(document.getElementById("token").value.trim());
  document.getElementById("token").value = "";
  start();
});
document.getElementById("logout").addEventListener("click", () => {
  token.clear();
  location.hash = "#/events";
  start();
});
window.addEventListener("hashchange", render);
start();
