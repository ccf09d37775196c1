"""The timestamps of reproducible builds: `SOURCE_DATE_EPOCH` (and ko's `KO_DATA_DATE_EPOCH`), read one way.

Strict on purpose: a value that is not a whole number of seconds is an error naming the variable. Read
loosely, a typo would silently give another image ID (or a `{{.Date}}` of now) than the one the user pinned.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from kodev.errors import ConfigError


def read_epoch(env: Mapping[str, str], *names: str) -> int | None:
    """The first of the variables `names` that is set in `env`, as seconds since the epoch; None if none is."""
    for name in names:
        value = env.get(name, "").strip()
        if value:
            if not value.isdigit():
                raise ConfigError(f"{name}={value!r} is not a number of seconds since the epoch; "
                                  f"fix or unset {name}.")
            return int(value)
    return None


@dataclass(frozen=True)
class Epochs:
    """The timestamps images get: `created` (SOURCE_DATE_EPOCH) and kodata files' mtime (KO_DATA_DATE_EPOCH,
    else SOURCE_DATE_EPOCH); 0 unless set, so that the same sources give the same image ID."""

    created: int = 0
    kodata: int = 0

    @classmethod
    def read(cls, env: Mapping[str, str]) -> Epochs:
        return cls(read_epoch(env, "SOURCE_DATE_EPOCH") or 0,
                   read_epoch(env, "KO_DATA_DATE_EPOCH", "SOURCE_DATE_EPOCH") or 0)
