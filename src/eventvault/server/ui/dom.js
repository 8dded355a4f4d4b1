// Building the page from data. Everything is inserted as text nodes or set as
// attribute values; nothing from an event is ever parsed as HTML.

/** An element with attributes, listeners (on*) and children (strings become text). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "href") el.setAttribute("href", internal(value));
    else if (key === "value") el.value = String(value);
    else if (key === "checked") el.checked = Boolean(value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  add(el, children);
  return el;
}

/** Append children: nodes as they are, anything else as text. */
export function add(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

// Links go to the console's own routes or this origin's paths only.
function internal(href) {
  const text = String(href);
  return text.startsWith("#") || (text.startsWith("/") && !text.startsWith("//")) ? text : "#";
}

/** A route of the console: "#/run/" + each part percent-encoded. */
export function route(...parts) {
  return "#/" + parts.map((p) => encodeURIComponent(String(p))).join("/");
}

/** A link to one of the console's routes. */
export function link(href, text) {
  return h("a", { href }, text);
}

/** "12 µs", "3.4 ms", "1.20 s", "2 min 3 s". */
export function duration(us) {
  if (us === null || us === undefined) return "";
  if (us < 1000) return `${us} µs`;
  if (us < 1e6) return `${(us / 1000).toFixed(1)} ms`;
  if (us < 60e6) return `${(us / 1e6).toFixed(2)} s`;
  const s = Math.round(us / 1e6);
  return `${Math.floor(s / 60)} min ${s % 60} s`;
}

/** An ISO time without its sub-millisecond digits. */
export function when(iso) {
  return typeof iso === "string" ? iso.replace(/(\.\d{3})\d*/, "$1") : "";
}

/** Pretty JSON in a <pre>, as text. */
export function json(value) {
  return h("pre", { class: "json" }, JSON.stringify(value, null, 2));
}

/** A labelled text input bound to a query parameter. */
export function field(name, params, placeholder = "") {
  return h(
    "label",
    { class: "field" },
    h("span", {}, name.replace(/_/g, " ")),
    h("input", { name, value: params.get(name) || "", placeholder, autocomplete: "off" }),
  );
}

/** The non-empty fields of a form as query parameters. */
export function formParams(form) {
  const out = new URLSearchParams();
  for (const [key, value] of new FormData(form)) {
    if (typeof value === "string" && value.trim() !== "") out.set(key, value.trim());
  }
  return out;
}
