"""The target platform (os/arch[/variant]) and what it means for `go build` and the image config."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kodev.errors import ConfigError

_GOARCHES = {"386", "amd64", "arm", "arm64", "loong64", "mips", "mips64", "mips64le", "mipsle", "ppc64",
             "ppc64le", "riscv64", "s390x"}
# Variants Go can target: GOAMD64 levels, GOARM versions; arm64's v8 is the only one Go builds.
_VARIANTS = {"amd64": ("v1", "v2", "v3", "v4"), "arm": ("v5", "v6", "v7"), "arm64": ("v8",)}
# `uname -m` spellings the daemon reports in /info, mapped to Go's names.
_MACHINE = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "armv6l": "arm", "i686": "386",
            "i386": "386", "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}


@dataclass(frozen=True)
class Platform:
    os: str
    arch: str
    variant: str | None = None

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.arch, self.variant) if p)

    def accepts(self, found: Platform) -> bool:
        """Whether an image for `found` runs as this target (a variant only matters when both name one)."""
        same = (found.os, found.arch) == (self.os, self.arch)
        return same and (not self.variant or not found.variant or found.variant == self.variant)

    def go_env(self) -> dict[str, str]:
        """GOOS/GOARCH, plus GOARM or GOAMD64 when a variant says which."""
        env = {"GOOS": self.os, "GOARCH": self.arch}
        if self.arch == "arm":
            env["GOARM"] = (self.variant or "v7").lstrip("v")
        elif self.arch == "amd64" and self.variant:
            env["GOAMD64"] = self.variant
        return env

    def oci(self) -> dict[str, str]:
        """The platform fields of an OCI image config."""
        fields = {"os": self.os, "architecture": self.arch}
        if self.variant:
            fields["variant"] = self.variant
        return fields


def parse(text: str, where: str) -> Platform:
    """Parse "linux/amd64" or "linux/arm/v7"; `where` names the file or flag it came from."""
    parts = text.strip().split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise ConfigError(f"{where}: platform '{text}' is not of the form OS/ARCH[/VARIANT], e.g. linux/arm64.")
    os_name, arch = parts[0], parts[1]
    if os_name != "linux":
        raise ConfigError(f"{where}: platform '{text}': kodev builds images for linux only.")
    if arch not in _GOARCHES:
        raise ConfigError(f"{where}: platform '{text}': unknown architecture '{arch}'; "
                          f"use one of {', '.join(sorted(_GOARCHES))}.")
    variant = parts[2] if len(parts) == 3 else None
    allowed = _VARIANTS.get(arch, ())
    if variant is not None and variant not in allowed:
        known = f"use one of {', '.join(allowed)}" if allowed else f"{arch} takes no variant"
        raise ConfigError(f"{where}: platform '{text}': unknown variant '{variant}'; {known}.")
    return Platform(os_name, arch, variant)


def from_daemon(version: dict[str, Any], info: dict[str, Any]) -> Platform:
    """The platform the Docker daemon runs containers of natively."""
    arch = str(version.get("Arch") or _MACHINE.get(str(info.get("Architecture", "")), "amd64"))
    variant = None
    if arch == "arm":
        variant = "v6" if str(info.get("Architecture", "")).startswith("armv6") else "v7"
    return Platform(str(version.get("Os") or "linux"), arch, variant)
