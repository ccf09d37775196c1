"""The dev proxy without a network: where the live-reload script goes, compressed pages, the proxy's own
page, addresses, and the kodev.toml keys and `kodev run` flags that configure it (errors name the key or
flag). Traffic through a real proxy, and a real browser, are tests/integration/test_proxy_*.py."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import pytest

from kodev.cli_watch import proxy_flags
from kodev.config import parse
from kodev.errors import ConfigError
from kodev.proxy import page
from kodev.proxy.spec import ProxySpec, join, parse_address


def test_the_script_goes_before_the_last_closing_body_tag_in_any_case() -> None:
    out = page.inject(b"<html><BODY><p>a</p></Body><!-- </body> in a comment --></BODY></html>", None, 7)
    text = out.decode()
    assert text.count("data-kodev-live") == 1
    assert text.index("<script") > text.index("a comment") and text.endswith("</script></BODY></html>")
    assert '<script src="/__kodev/client.js?generation=7" data-kodev-live=""></script>' in text


def test_without_a_body_tag_the_script_goes_at_the_end_and_never_twice() -> None:
    once = page.inject(b"<h1>x</h1>", "utf-8", 1)
    assert once.startswith(b'<h1>x</h1><script src="/__kodev/client.js?generation=1"') and once.endswith(b"</script>")
    assert page.inject(once, "utf-8", 2) == once


def test_a_page_in_another_charset_keeps_its_bytes() -> None:
    latin = "<p>caf\u00e9</p></body>".encode("latin-1")
    out = page.inject(latin, "iso-8859-1", 1)
    assert out.startswith("<p>caf\u00e9</p>".encode("latin-1")) and out.endswith(b"</body>")
    broken = b"<p>\xff\xfe not utf-8</p></body>"
    assert page.inject(broken, None, 1).startswith(b"<p>\xff\xfe not utf-8</p>"), "undecodable bytes survive"


@pytest.mark.parametrize(("encoding", "body"), [
    ("gzip", gzip.compress(b"<p>x</p>", mtime=0)),
    ("deflate", zlib.compress(b"<p>x</p>")),
    ("deflate", zlib.compress(b"<p>x</p>")[2:-4]),  # raw deflate, as some servers send it
    ("identity", b"<p>x</p>"),
    (None, b"<p>x</p>"),
])
def test_compressed_pages_are_decoded(encoding: str | None, body: bytes) -> None:
    assert page.decoded(body, encoding) == b"<p>x</p>"


def test_an_encoding_kodev_cannot_undo_leaves_the_page_alone() -> None:
    assert page.decoded(b"\x1b\x00", "br") is None
    assert page.decoded(b"not gzip", "gzip") is None


def test_html_is_told_by_its_content_type() -> None:
    assert page.is_html("text/html; charset=utf-8") and page.is_html("TEXT/HTML")
    assert not page.is_html("application/json") and not page.is_html(None) and not page.is_html("text/plain")
    assert not page.is_html("application/xhtml+xml"), "an XML document is left alone"


def test_the_proxys_own_page_escapes_its_detail_and_carries_the_script() -> None:
    html = page.error_page(503, "Service Unavailable", "<script>alert(1)</script>", 5).decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "data-kodev-live" in html


def test_events_are_server_sent_events() -> None:
    assert page.sse("reload", {"generation": 3}) == b'event: reload\ndata: {"generation": 3}\n\n'


@pytest.mark.parametrize(("text", "address"), [
    ("8080", ("127.0.0.1", 8080)), ("0.0.0.0:80", ("0.0.0.0", 80)), ("localhost:9000", ("localhost", 9000)),
    ("[::1]:8080", ("::1", 8080)), (" 127.0.0.1:1 ", ("127.0.0.1", 1)),
    ("0", None), ("70000", None), ("host:", None), (":80", None), ("[::1]8080", None), ("http://x:1", None),
])
def test_addresses(text: str, address: tuple[str, int] | None) -> None:
    assert parse_address(text) == address


def test_an_ipv6_address_is_written_back_in_brackets() -> None:
    assert join(("::1", 8080)) == "[::1]:8080" and join(("127.0.0.1", 1)) == "127.0.0.1:1"


# --- kodev.toml ---------------------------------------------------------------------------------------------

SERVICE = '[services.web]\ncommand = "./cmd/web"\n'


def test_proxy_keys_make_a_spec(tmp_path: Path) -> None:
    config = parse(SERVICE + 'proxy = "8080"\nupstream = "127.0.0.1:9000"\nready = "/healthz"\nproxy_timeout = 5\n',
                   tmp_path / "kodev.toml")
    assert config.services["web"].proxy == ProxySpec(("127.0.0.1", 8080), ("127.0.0.1", 9000), "/healthz", 5.0)
    assert parse(SERVICE, tmp_path / "kodev.toml").services["web"].proxy is None


@pytest.mark.parametrize(("lines", "key", "says"), [
    ('proxy = "8080"\n', "services.web.upstream", "where the app itself listens"),
    ('upstream = "9000"\n', "services.web.upstream", "only means something with `proxy`"),
    ('ready = "/x"\n', "services.web.ready", "only means something with `proxy`"),
    ('proxy = "80:80:80"\nupstream = "9000"\n', "services.web.proxy", "not HOST:PORT"),
    ('proxy = "8080"\nupstream = "nine"\n', "services.web.upstream", "not HOST:PORT"),
    ('proxy = "8080"\nupstream = "127.0.0.1:8080"\n', "services.web.proxy", "cannot both listen"),
    ('proxy = "8080"\nupstream = "9000"\nready = "healthz"\n', "services.web.ready", "starts with '/'"),
    ('proxy = "8080"\nupstream = "9000"\nproxy_timeout = 0\n', "services.web.proxy_timeout", "more than 0"),
    ('proxy = 8080\nupstream = "9000"\n', "services.web.proxy", "got an integer"),
])
def test_bad_proxy_keys_name_the_key(tmp_path: Path, lines: str, key: str, says: str) -> None:
    path = tmp_path / "kodev.toml"
    with pytest.raises(ConfigError) as caught:
        parse(SERVICE + lines, path)
    message = str(caught.value)
    assert str(path) in message and f"key '{key}'" in message and says in message, message
    assert "\n" not in message


# --- kodev run -w --proxy ----------------------------------------------------------------------------------

def test_run_flags_make_the_same_spec() -> None:
    assert proxy_flags("8080", "9000", "/ready", True) == ProxySpec(("127.0.0.1", 8080), ("127.0.0.1", 9000),
                                                                    "/ready")
    assert proxy_flags(None, None, None, True) is None


@pytest.mark.parametrize(("flags", "says"), [
    (("8080", "9000", None, False), "--proxy needs --watch"),
    (("8080", None, None, True), "--proxy needs --upstream"),
    ((None, "9000", None, True), "go with --proxy"),
    (("8080", "x", None, True), "--upstream x: not HOST:PORT"),
    (("8080", "8080", None, True), "both 8080"),
    (("8080", "9000", "ready", True), "--ready ready: not a path"),
])
def test_bad_run_flags_say_which(flags: tuple[str | None, str | None, str | None, bool], says: str) -> None:
    with pytest.raises(ConfigError, match=says.replace("(", r"\(")):
        proxy_flags(*flags)


def test_the_script_and_worker_are_ascii_so_a_page_in_any_charset_takes_them() -> None:
    page.client_script(12).encode("ascii")
    page.CLIENT_JS.encode("ascii")
    page.WORKER_JS.encode("ascii")
