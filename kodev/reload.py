"""The watch loop's configuration, read again when its files change: kodev.toml, and a compose project's files.

Each reload says what it found and the loop applies it: `ConfigReload` gives the new session and commands
(or nothing: the same config, or one that was refused and reported); `StackReload` has Compose apply a
changed project and gives the containers it runs now. A broken file never stops what runs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from kodev.deliver.compose import ComposeStack
from kodev.errors import ConfigError, KodevError, reworded
from kodev.session import CommandServices, Session
from kodev.ui import UI

RawChanges = Iterable[tuple[str, str]]


@dataclass(frozen=True)
class Reloaded:
    """A changed kodev.toml, loaded: the session and the commands it describes."""

    session: Session
    commands: list[CommandServices]


class ConfigReload:
    """kodev.toml of `kodev watch` (none for `kodev run --watch`, whose settings are flags).

    State it owns: whether the last file saved was refused (restoring the last good one is then news), and
    whether a reload failed for another file's fault (a broken go.mod): that one is tried again on any save."""

    def __init__(self, ui: UI, watch_paths: Sequence[str] | None) -> None:
        self.ui = ui
        self.watch_paths = watch_paths
        self.rejected = False
        self.pending = False

    def check(self, session: Session, raw: RawChanges) -> Reloaded | None:
        """The new configuration when kodev.toml changed (or a failed reload may now work); else None."""
        path = session.config.path
        if self.watch_paths is None or path is None:
            return None
        if not self.pending and not any(Path(p) == path for _, p in raw):
            return None
        self.pending = False
        try:
            fresh = session.reload(self.watch_paths)
        except ConfigError as exc:  # the file's fault: applied when a good one is saved
            message = str(exc).removesuffix(" and run again.").removesuffix(".")
            self.ui.config_rejected(path, reworded(exc, f"{message}. kodev keeps running with the last good "
                                                        f"{path.name} until you save one that works."))
            self.rejected = True
            return None
        except KodevError as exc:  # not the file's (go.mod, a package): tried again on the next save
            self.ui.config_rejected(path, reworded(exc, f"{str(exc).removesuffix('.')}. kodev applies {path.name} "
                                                        "once this is fixed: it tries again on your next save."))
            self.pending = True
            return None
        if fresh is None:  # the same configuration: back to the last good one after a refused edit?
            if self.rejected:
                self.ui.config_reloaded(path)
            self.rejected = False
            return None
        self.rejected = False
        self.ui.config_reloaded(path)
        return Reloaded(*fresh)


class StackReload:
    """The compose files of `kodev watch -f`: Compose applies a changed project; a broken one changes nothing."""

    def __init__(self, ui: UI, stack: ComposeStack) -> None:
        self.ui = ui
        self.stack = stack

    def check(self, session: Session, raw: RawChanges) -> dict[str, str] | None:
        """The project's containers (service -> ID) after Compose applied a change; None: nothing applied."""
        from kodev.compose import ComposeError
        from kodev.compose_build import load_with_own_refs

        old = self.stack.project
        if not any(Path(p) in old.files for _, p in raw):
            return None
        try:
            project = load_with_own_refs(session, self.stack.cli, old.files, old.name if old.explicit_name else None)
            if [s.name for s in project.kodev_services] != [s.name for s in old.kodev_services]:
                self.ui.warn("the compose file now names other kodev services: restart kodev watch to build them; "
                             "the other changes are applied.")
            running = self.stack.apply(project)
        except ComposeError as exc:
            self.ui.error(reworded(exc, f"{exc} The running project stays as it is; fix the file and save again."))
            return None
        self.ui.info(f"compose project {project.name} updated")
        return running
