// The JSON API, called with the token from this tab's session storage as an
// Authorization header (never in a URL, never in local storage).

const KEY = "eventvault.token";

export const token = {
  get: () => sessionStorage.getItem(KEY),
  set: (value) => sessionStorage.setItem(KEY, value),
  clear: () => sessionStorage.removeItem(KEY),
};

export class ApiError extends Error {
  constructor(status, type, message) {
    super(message);
    this.status = status;
    this.type = type;
  }
}

function headers(accept) {
  const out = { Accept: accept };
  const t = token.get();
  if (t) out.Authorization = `Bearer ${t}`;
  return out;
}

async function failure(res) {
  let body = null;
  try {
    body = await res.json();
  } catch {
    // not JSON: say the status
  }
  const err = (body && body.error) || {};
  return new ApiError(res.status, err.type || `HTTP ${res.status}`, err.message || res.statusText);
}

/** GET (or another method) a JSON endpoint; statuses in `ok` count as answers. */
export async function api(path, params = null, { method = "GET", ok = [] } = {}) {
  const query = params && params.toString() ? `?${params}` : "";
  const res = await fetch(path + query, { method, headers: headers("application/json"), cache: "no-store" });
  if (!res.ok && !ok.includes(res.status)) throw await failure(res);
  return { status: res.status, body: await res.json() };
}

/** GET a text endpoint (a signed checkpoint); statuses in `ok` answer an empty body. */
export async function text(path, { ok = [] } = {}) {
  const res = await fetch(path, { headers: headers("text/plain"), cache: "no-store" });
  if (!res.ok && !ok.includes(res.status)) throw await failure(res);
  return { status: res.status, body: res.ok ? await res.text() : "" };
}

/** The Server-Sent Events of `path`, read with fetch() so the token goes in a header
 * (EventSource cannot send one). Yields {event, id, data}; `opened` is called once the
 * server has answered (from then on, no new event is missed). */
export async function* events(path, params, signal, opened = () => {}) {
  const res = await fetch(`${path}?${params}`, {
    headers: headers("text/event-stream"),
    cache: "no-store",
    signal,
  });
  if (!res.ok) throw await failure(res);
  opened();
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.search(/\r?\n\r?\n/)) >= 0) {
      const frame = buffer.slice(0, end);
      buffer = buffer.slice(end).replace(/^\r?\n\r?\n/, "");
      let event = "message";
      let id = null;
      const data = [];
      for (const line of frame.split(/\r?\n/)) {
        if (line === "" || line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const name = colon < 0 ? line : line.slice(0, colon);
        let text = colon < 0 ? "" : line.slice(colon + 1);
        if (text.startsWith(" ")) text = text.slice(1);
        if (name === "data") data.push(text);
        else if (name === "event") event = text;
        else if (name === "id") id = text;
      }
      if (data.length) yield { event, id, data: data.join("\n") };
    }
  }
}
