"""What the dev proxy adds to pages: the live-reload script, where it goes in HTML, and the proxy's own pages.

Pure functions, no I/O. The script opens one event stream per browser, not per tab: a SharedWorker holds the
EventSource and relays its messages to every tab of the origin (browsers allow six connections per host over
HTTP/1.1, so one stream per tab would starve a seventh tab); where SharedWorker is missing, each tab opens
its own. A page carries the proxy's build generation it was served at: a tab that (re)connects after a
newer build reloads, so a reload is never missed while the stream was down.
"""

from __future__ import annotations

import gzip
import html
import json
import zlib

PREFIX = "/__kodev/"
EVENTS_PATH = PREFIX + "events"
WORKER_PATH = PREFIX + "worker.js"
CLIENT_PATH = PREFIX + "client.js"
_MARK = "data-kodev-live"  # on the script tag: a page never gets two

# The SharedWorker: one EventSource for every tab of this origin; each tab's port gets every message.
WORKER_JS = """const ports = new Set();
const state = {generation: 0, error: null};  // what a tab connecting now must know
const source = new EventSource("@EVENTS@");
for (const kind of ["hello", "reload", "error", "ok"]) {
  source.addEventListener(kind, (e) => {
    const data = JSON.parse(e.data);
    if (data.generation) state.generation = Math.max(state.generation, data.generation);
    if (kind === "hello") state.error = data.error || null;
    if (kind === "error") state.error = data.output;
    if (kind === "ok") state.error = null;
    for (const port of ports) port.postMessage({kind, data});
  });
}
onconnect = (e) => {
  const port = e.ports[0];
  ports.add(port);
  port.postMessage({kind: "hello", data: {generation: state.generation, error: state.error}});
  port.start();
};
""".replace("@EVENTS@", EVENTS_PATH)

CLIENT_JS = """(function () {
  if (window.__kodevLive) return;
  window.__kodevLive = true;
  const here = document.currentScript && document.currentScript.src;
  const generation = Number(here ? new URL(here).searchParams.get("generation") : 0) || 0;
  function overlay(output) {
    let box = document.getElementById("__kodev_overlay");
    if (!box) {
      box = document.createElement("div");
      box.id = "__kodev_overlay";
      box.setAttribute("style", "position:fixed;inset:0;z-index:2147483647;background:rgba(20,20,20,.92);" +
        "color:#f3f3f3;overflow:auto;padding:24px;font:13px/1.45 ui-monospace,Menlo,Consolas,monospace");
      const title = document.createElement("div");
      title.setAttribute("style", "color:#ff6b6b;font-weight:bold;margin-bottom:12px");
      title.textContent = "kodev: the build failed \\u2014 save a fix and this page reloads";
      const pre = document.createElement("pre");
      pre.id = "__kodev_overlay_output";
      pre.setAttribute("style", "white-space:pre-wrap;margin:0");
      box.append(title, pre);
      (document.body || document.documentElement).append(box);
    }
    document.getElementById("__kodev_overlay_output").textContent = output;
  }
  function handle(message) {
    const data = message.data || {};
    if (message.kind === "error") { overlay(data.output || ""); return; }
    if (message.kind === "ok" || message.kind === "hello") {
      const box = document.getElementById("__kodev_overlay");
      if (message.kind === "ok" && box) box.remove();
      if (message.kind === "hello" && data.error) overlay(data.error);
    }
    if ((message.kind === "reload" || message.kind === "hello") && data.generation > generation) {
      location.reload();
    }
  }
  if (typeof SharedWorker === "function") {
    const worker = new SharedWorker("@WORKER@", {name: "kodev-live"});
    worker.port.onmessage = (e) => handle(e.data);
    worker.port.start();
  } else {
    const source = new EventSource("@EVENTS@");
    for (const kind of ["hello", "reload", "error", "ok"]) {
      source.addEventListener(kind, (e) => handle({kind, data: JSON.parse(e.data)}));
    }
  }
})();
""".replace("@WORKER@", WORKER_PATH).replace("@EVENTS@", EVENTS_PATH)


def client_script(generation: int) -> str:
    """The `<script>` element a page gets: the live-reload client (CLIENT_JS, served by the proxy: a page's
    Content-Security-Policy that allows its own origin's scripts allows it), for the build `generation`."""
    return f'<script src="{CLIENT_PATH}?generation={generation}" {_MARK}=""></script>'


def is_html(content_type: str | None) -> bool:
    """`text/html` (not XHTML: an XML document would not take the script tag as it is written)."""
    return (content_type or "").split(";")[0].strip().lower() == "text/html"


def inject(body: bytes, charset: str | None, generation: int) -> bytes:
    """`body` with the script before its last `</body>` (any case), else at the end; unchanged if it has
    the script already."""
    encoding = charset or "utf-8"
    try:
        text = body.decode(encoding)
    except (LookupError, UnicodeDecodeError):
        encoding, text = "latin-1", body.decode("latin-1")  # every byte maps: the rest stays as it was
    if _MARK in text:
        return body
    script = client_script(generation)
    at = text.lower().rfind("</body>")
    text = text[:at] + script + text[at:] if at >= 0 else text + script
    return text.encode(encoding)  # the script is ASCII: the page's own characters go back as they came


def decoded(body: bytes, content_encoding: str | None) -> bytes | None:
    """`body` without its Content-Encoding (gzip, deflate, identity); None for one kodev cannot undo
    (`br`, `zstd`: the page then passes unchanged, without the script)."""
    coding = (content_encoding or "identity").strip().lower()
    if coding in ("", "identity"):
        return body
    try:
        if coding in ("gzip", "x-gzip"):
            return gzip.decompress(body)
        if coding == "deflate":
            try:
                return zlib.decompress(body)
            except zlib.error:
                return zlib.decompress(body, -zlib.MAX_WBITS)  # raw deflate, as some servers send it
    except (OSError, EOFError, zlib.error):
        return None
    return None


def error_page(status: int, title: str, detail: str, generation: int) -> bytes:
    """The proxy's own page (the app is not answering): it carries the script, so the tab keeps listening
    and reloads when the new code serves."""
    return (f"<!doctype html><html><head><meta charset=utf-8><title>{status} {html.escape(title)}</title></head>"
            f"<body style=\"font:15px/1.5 system-ui,sans-serif;margin:40px\"><h1>{status} {html.escape(title)}</h1>"
            f"<p>{html.escape(detail)}</p><p>kodev's dev proxy reloads this page when the app serves again.</p>"
            f"{client_script(generation)}</body></html>").encode()


def sse(kind: str, data: dict[str, object]) -> bytes:
    """One server-sent event."""
    return f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode()
