"""Publish to a registry (`kodev build --push REPO`): the OCI distribution API over `requests`.

Per image: each layer as a gzip blob (kodev/publish/blobs.py), the config, then the manifest last, once per
tag; a blob the registry has already (HEAD) is not sent, and one kodev pushed under another name in this
session is mounted from there (a cross-repository mount) rather than sent again. A blob goes up in one PUT
streamed from its file; an upload that fails midway is tried again, twice. The pushed manifest's digest is
checked against the registry's answer. Written by hand on `requests`: the docker SDK pushes only what a
daemon holds, and no well-kept Python library pushes an OCI image from files (ko does it in Go).

Auth as the docker CLI does it: credentials from `~/.docker/config.json` (`auths`, `credsStore`,
`credHelpers`, through the docker SDK's auth module), Basic or a Bearer token from the realm a 401's
`WWW-Authenticate` names. Plain HTTP only for loopback registries and those listed as insecure.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from kodev.errors import KodevError
from kodev.image.assemble import COMMAND_LABEL, Image
from kodev.manifests import Manifest
from kodev.publish import Published
from kodev.publish.blobs import CONFIG_MEDIA_TYPE, LAYER_MEDIA_TYPE, MANIFEST_MEDIA_TYPE, compressed

NAMINGS = ("md5", "bare", "base", "preserve")  # ko's default, --bare, --base-import-paths, --preserve-import-paths
_UPLOAD_TRIES = 3
_TIMEOUT = (10, 300)  # connect, read: a large layer takes a while


class RegistryError(KodevError):
    """The registry could not be reached, refused kodev, or failed an upload."""


@dataclass(frozen=True)
class PushSettings:
    """Where `--push` sends images and how it names them (as ko does)."""

    repo: str  # HOST[:PORT]/PATH, as KO_DOCKER_REPO
    naming: str = "md5"
    tags: tuple[str, ...] = ("latest",)
    insecure: tuple[str, ...] = ()  # registries reached over plain HTTP besides loopback ones
    # kodev watch -f k8s/ --out DIR: the manifests to resolve into `out` as pushes come (their -f root)
    manifests: tuple[Manifest, ...] = ()
    manifests_root: Path | None = None
    out: Path | None = None

    @property
    def host(self) -> str:
        return self.repo.split("/", 1)[0]


def image_name(settings: PushSettings, import_path: str) -> str:
    """The repository an import path is pushed to, as ko names it."""
    base = import_path.rstrip("/").rsplit("/", 1)[-1]
    if settings.naming == "bare":
        return settings.repo
    if settings.naming == "base":
        return f"{settings.repo}/{base}"
    if settings.naming == "preserve":
        return f"{settings.repo}/{import_path.lower()}"
    return f"{settings.repo}/{base}-{hashlib.md5(import_path.encode()).hexdigest()}"


class RegistryPublisher:
    """A `Publisher` whose destination is a registry."""

    def __init__(self, settings: PushSettings) -> None:
        self.settings = settings
        self._client = _Client(settings.host, _plain_http(settings.host, settings.insecure))
        self._homes: dict[str, str] = {}  # blob digest -> a repository of this registry that has it

    def publish(self, image: Image, ref: str, hints: Sequence[str] = ()) -> Published:
        started = time.monotonic()
        labels = (json.loads(image.config_json).get("config") or {}).get("Labels") or {}
        repository = image_name(self.settings, labels.get(COMMAND_LABEL) or ref.rsplit(":", 1)[0])
        name = repository.split("/", 1)[1] if "/" in repository else repository
        blobs = [compressed(layer) for layer in image.layers]
        sent = 0
        for blob in blobs:
            sent += self._ensure(name, blob.digest, blob.size, lambda b=blob: open(b.path, "rb"))  # noqa: SIM115
        config_digest = image.config_digest
        sent += self._ensure(name, config_digest, len(image.config_json), lambda: image.config_json)
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": MANIFEST_MEDIA_TYPE,
            "config": {"mediaType": CONFIG_MEDIA_TYPE, "digest": config_digest, "size": len(image.config_json)},
            "layers": [{"mediaType": LAYER_MEDIA_TYPE, "digest": b.digest, "size": b.size} for b in blobs],
        }, separators=(",", ":")).encode()
        digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
        for tag in self.settings.tags:
            answered = self._client.put_manifest(name, tag, manifest, MANIFEST_MEDIA_TYPE)
            if answered and answered != digest:
                raise RegistryError(f"the registry at {self.settings.host} stored {repository}:{tag} as {answered}, "
                                    f"not the manifest kodev sent ({digest}): a proxy in between rewrote it?")
        total = sum(b.size for b in blobs) + len(image.config_json)
        return Published(f"{repository}@{digest}", config_digest, sent, time.monotonic() - started,
                         slim=sent < total, destination="registry")

    def _ensure(self, name: str, digest: str, size: int, content: Any) -> int:
        """Make the registry have blob `digest` under `name`; the bytes that had to be sent."""
        source = self._homes.get(digest)
        present = self._client.has_blob(name, digest) or (
            source is not None and source != name and self._client.mount(name, digest, source))
        self._homes.setdefault(digest, name)
        if present:
            return 0
        self._client.upload(name, digest, size, content)
        return size

    def close(self) -> None:
        self._client.close()


def _plain_http(host: str, insecure: Sequence[str]) -> bool:
    hostname = host.rsplit(":", 1)[0].strip("[]")
    return hostname in ("localhost", "127.0.0.1", "::1") or hostname.startswith("127.") or host in insecure


class _Client:
    """One registry: requests with the auth it asks for (Basic, or a Bearer token per scope)."""

    def __init__(self, host: str, plain_http: bool) -> None:
        self.host = host
        self.base = f"{'http' if plain_http else 'https'}://{host}/v2/"
        self.http = requests.Session()
        self._tokens: dict[str, str] = {}  # scope -> Authorization header
        self._credentials: tuple[str, str] | bool | None = False  # False: not looked up yet

    def close(self) -> None:
        self.http.close()

    def has_blob(self, name: str, digest: str) -> bool:
        return self._call("HEAD", f"{name}/blobs/{digest}", name, ok=(200, 404)).status_code == 200

    def mount(self, name: str, digest: str, source: str) -> bool:
        answer = self._call("POST", f"{name}/blobs/uploads/", name, ok=(201, 202), push=True,
                            params={"mount": digest, "from": source}, extra_scope=f"repository:{source}:pull")
        if answer.status_code == 202:  # the registry opened an upload instead: end it unused
            self._call("DELETE", answer.headers["Location"], name, ok=(204, 404, 405), push=True)
            return False
        return True

    def upload(self, name: str, digest: str, size: int, content: Any) -> None:
        problem: Exception | None = None
        for _ in range(_UPLOAD_TRIES):
            opened = content()
            try:
                start = self._call("POST", f"{name}/blobs/uploads/", name, ok=(202,), push=True)
                self._call("PUT", start.headers["Location"], name, ok=(201,), push=True, params={"digest": digest},
                           data=opened, headers={"Content-Type": "application/octet-stream",
                                                 "Content-Length": str(size)}, dropped_raises=True)
                return
            except requests.RequestException as exc:
                problem = exc
            finally:
                if hasattr(opened, "close"):
                    opened.close()
        raise RegistryError(f"uploading {digest[:19]} ({size} bytes) to {self.host}/{name} failed {_UPLOAD_TRIES} "
                            f"times ({problem}). Check the registry's disk and logs, then run again.")

    def put_manifest(self, name: str, reference: str, body: bytes, media_type: str) -> str:
        answer = self._call("PUT", f"{name}/manifests/{reference}", name, ok=(201, 200, 400, 415), push=True,
                            data=body, headers={"Content-Type": media_type})
        if answer.status_code in (400, 415):
            errors = _errors(answer)
            raise RegistryError(f"the registry at {self.host} rejected the image manifest for {name}:{reference} "
                                f"({errors}): kodev pushes OCI manifests ({media_type}), which a registry too old "
                                "or configured to refuse them does not take. Use a registry that serves the OCI "
                                "distribution spec (distribution 2.7 or later, most hosted ones).")
        return str(answer.headers.get("Docker-Content-Digest", ""))

    def _call(self, method: str, path: str, name: str, ok: Sequence[int], push: bool = False,
              extra_scope: str = "", dropped_raises: bool = False, **kwargs: Any) -> requests.Response:
        """One request, authorized as the registry asks. A connection that fails is a RegistryError, but
        with `dropped_raises` (an upload, tried again by its caller) requests' own error."""
        url = path if path.startswith("http") else (path if path.startswith("/") else self.base + path)
        if url.startswith("/"):
            url = self.base.split("/v2/")[0] + url
        scope = " ".join(filter(None, (f"repository:{name}:{'pull,push' if push else 'pull'}", extra_scope)))
        headers = dict(kwargs.pop("headers", {}))
        for attempt in range(2):
            if scope in self._tokens:
                headers["Authorization"] = self._tokens[scope]
            try:
                answer = self.http.request(method, url, headers=headers, timeout=_TIMEOUT, **kwargs)
            except requests.ConnectionError as exc:
                if dropped_raises:
                    raise
                raise RegistryError(f"cannot reach the registry at {self.host} ({_reason(exc)}). Is it running, "
                                    "and is the repository right (KO_DOCKER_REPO or --push)?") from None
            if answer.status_code == 401 and attempt == 0 and self._authorize(answer, scope):
                if hasattr(kwargs.get("data"), "seek"):
                    kwargs["data"].seek(0)
                continue
            break
        if answer.status_code == 401:
            raise RegistryError(f"the registry at {self.host} refused kodev's credentials for {name}. Log in "
                                f"with `docker login {self.host}` (kodev reads the docker CLI's config.json: auths, "
                                "credsStore, credHelpers), or check the user's rights.")
        if answer.status_code not in ok:
            raise RegistryError(f"the registry at {self.host} answered {answer.status_code} to {method} "
                                f"{url.split('?')[0]}: {answer.text[:300].strip()}")
        return answer

    def _authorize(self, refused: requests.Response, scope: str) -> bool:
        """Answer a 401's challenge (Basic, or a Bearer token from its realm); False if kodev cannot."""
        challenge = refused.headers.get("WWW-Authenticate", "")
        credentials = self._lookup()
        if challenge.lower().startswith("basic"):
            if credentials is None:
                return False
            self.http.auth = credentials
            return True
        if not challenge.lower().startswith("bearer"):
            return False
        fields = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
        params = {"service": fields.get("service", ""), "scope": scope}
        try:
            got = self.http.get(fields["realm"], params=params, auth=credentials, timeout=_TIMEOUT)
        except (KeyError, requests.RequestException):
            return False
        token = (got.json() if got.ok else {}).get("token") or (got.json() if got.ok else {}).get("access_token")
        if not token:
            return False
        self._tokens[scope] = f"Bearer {token}"
        return True

    def _lookup(self) -> tuple[str, str] | None:
        if self._credentials is False:
            from docker import auth

            found = auth.resolve_authconfig(auth.load_config(), registry=self.host) or {}
            user, secret = found.get("username") or found.get("Username"), found.get("password") or found.get(
                "Password")
            self._credentials = (str(user), str(secret)) if user and secret else None
        return self._credentials if isinstance(self._credentials, tuple) else None


def _errors(answer: requests.Response) -> str:
    """The registry's own words: the `errors` of a distribution error body, else its status."""
    try:
        found = [f"{e.get('code')}: {e.get('message')}" for e in answer.json().get("errors", [])]
    except ValueError:
        found = []
    return "; ".join(found) or f"HTTP {answer.status_code}"


def _reason(exc: Exception) -> str:
    text = str(exc)
    found = re.search(r"\[Errno -?\d+\] ([^'\")]+)", text)
    return found.group(1).strip() if found else text[:200]
