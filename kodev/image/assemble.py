"""Stack base, kodata and binary layers into an image config, as ko does; the config digest is the image ID."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from kodev.image.base import BaseImage
from kodev.image.kodata import KODATA_PATH
from kodev.image.layers import APP_DIR, Layer
from kodev.platform import Platform

COMMAND_LABEL = "dev.kodev.command"
SOURCE_LABEL = "org.opencontainers.image.source"
REVISION_LABEL = "org.opencontainers.image.revision"


@dataclass(frozen=True)
class ImageSpec:
    """What goes into one command's image, apart from its layers."""

    import_path: str
    app_name: str
    platform: Platform
    created: int  # seconds since the epoch; SOURCE_DATE_EPOCH or 0
    labels: Mapping[str, str]


@dataclass(frozen=True)
class Image:
    """An assembled image: config bytes (whose sha256 is the image ID) and its layers, bottom first."""

    config_json: bytes
    layers: tuple[Layer, ...]

    @property
    def config_digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.config_json).hexdigest()

    @property
    def diff_ids(self) -> list[str]:
        return [layer.diff_id for layer in self.layers]


def timestamp(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _env_with(env: list[str], name: str, value: str) -> list[str]:
    prefix = f"{name}="
    return [item for item in env if not item.startswith(prefix)] + [prefix + value]


def runtime_config(base: BaseImage, spec: ImageSpec) -> dict[str, Any]:
    """The base's config with ko's additions: entrypoint, PATH with /ko-app, KO_DATA_PATH, labels."""
    config = {key: value for key, value in base.config.items() if value not in (None, [], {})}
    env = list(config.get("Env") or [])
    path = next((item[5:] for item in env if item.startswith("PATH=")), "")
    env = _env_with(env, "PATH", f"{path}:/{APP_DIR}" if path else f"/{APP_DIR}")
    env = _env_with(env, "KO_DATA_PATH", KODATA_PATH)
    config["Env"] = env
    config["Entrypoint"] = [f"/{APP_DIR}/{spec.app_name}"]
    config.pop("Cmd", None)  # a base's Cmd would become the app's arguments; ko drops it too
    config["Labels"] = {**(config.get("Labels") or {}), **spec.labels, COMMAND_LABEL: spec.import_path}
    return config


def assemble(base: BaseImage, kodata: Layer, binary: Layer, spec: ImageSpec) -> Image:
    layers = (*base.layers, kodata, binary)
    created = timestamp(spec.created)
    history = [*base.history,
               *({"created": created, "created_by": layer.created_by} for layer in (kodata, binary))]
    document = {
        **spec.platform.oci(),
        "created": created,
        "config": runtime_config(base, spec),
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]},
        "history": history,
    }
    config_json = json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
    return Image(config_json=config_json, layers=layers)
