"""Docker image references, `[host[:port]/]path[:tag][@digest]`: split and checked in one place.

`parse` only splits (it never refuses: a reference Compose or the daemon printed is taken as it is);
`valid_repository` and `valid_reference` apply Docker's grammar (distribution/reference) to a name kodev is
about to use, so that a bad one is a config error naming its key rather than a failed pull or tag.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# A path component: lowercase letters and digits, joined by '.', '_', '__' or runs of '-' (Docker's rule).
_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_REGISTRY = re.compile(r"^[a-zA-Z0-9.-]+(?::[0-9]+)?$")
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


@dataclass(frozen=True)
class ImageReference:
    """A reference split into its parts; `tag` and `digest` are "" when it has none."""

    repository: str  # e.g. localhost:5000/team/app (a registry port is not a tag)
    tag: str = ""
    digest: str = ""  # e.g. sha256:…

    @property
    def name(self) -> str:
        """The reference without its digest: `repository[:tag]`."""
        return f"{self.repository}:{self.tag}" if self.tag else self.repository


def parse(ref: str) -> ImageReference:
    """Split `ref`; a ':' counts as a tag only in the last path component (`localhost:5000/app` has none)."""
    name, _, digest = ref.partition("@")
    head, _, last = name.rpartition("/")
    if ":" in last:
        last, tag = last.split(":", 1)
        return ImageReference(f"{head}/{last}" if head else last, tag, digest)
    return ImageReference(name, "", digest)


def valid_repository(name: str) -> bool:
    """A repository name Docker accepts: lowercase components joined by '/', maybe after a registry host[:port]
    (a first component with a '.' or ':', or `localhost`)."""
    parts = name.split("/")
    if len(parts) > 1 and (":" in parts[0] or "." in parts[0] or parts[0] == "localhost"):
        if not _REGISTRY.match(parts[0]):
            return False
        parts = parts[1:]
    return bool(name) and all(_COMPONENT.match(part) for part in parts)


def valid_reference(ref: str) -> bool:
    """A whole reference Docker accepts: a valid repository, then an optional tag and sha256 digest."""
    parts = parse(ref)
    if parts.name != ref.partition("@")[0]:  # an empty tag: `app:`
        return False
    return (valid_repository(parts.repository) and (not parts.tag or bool(_TAG.match(parts.tag)))
            and ("@" not in ref or bool(_DIGEST.match(parts.digest))))
