"""The human lines about what runs beside the builds while watching: debuggers (kodev debug) and dev
proxies. A mixin of `UI` (kodev/ui.py), which gives it `note` and `warn`; `JsonUI` turns each into an event."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kodev.debug.rpc import Restarted


class LoopNews:
    def note(self, text: str) -> None:
        raise NotImplementedError  # UI's

    def warn(self, text: str) -> None:
        raise NotImplementedError  # UI's

    def debugger_listening(self, service: str, address: str) -> None:
        """kodev debug: a new Delve for `service` answers at `address` (a new container: attach again)."""
        self.note(f"{service}: Delve listens on {address}; attach your debugger there (it stays attached "
                  "across saves).")

    def debugger_restarted(self, service: str, restarted: Restarted) -> None:
        """kodev debug: Delve restarted `service` on the new binary; breakpoints it could not set again."""
        for gone in restarted.discarded:
            self.warn(f"{service}: breakpoint at {gone.location} is gone from the new code ({gone.reason}).")
        if not restarted.resumed:
            self.note(f"{service}: restarted on the new build, stopped at its start: your debugger held it, so "
                      "it runs when you continue it there.")

    def proxy_listening(self, service: str, address: str, upstream: str) -> None:
        """The dev proxy of `service` listens at `address`, in front of the app at `upstream`."""
        self.note(f"{service}: open http://{address}/ (kodev's dev proxy for the app on {upstream}): requests wait "
                  "out rebuilds, and pages reload when the new code serves.")

    def proxy_reloaded(self, service: str, held: int, longest: float) -> None:
        """The new code of `service` serves: `held` requests waited for it (the longest `longest` seconds),
        and the open pages were told to reload. Said only in events: a person sees the page reload."""

    def direct_learned(self, command: str, ready: bool, reason: str) -> None:
        """After a save's go build: whether `command`'s next main-only edit is compiled and linked without go
        build (kodev/directbuild.py), and if not, why. Said only in events: a person sees `go build` faster."""
