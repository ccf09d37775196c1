"""Docker Compose projects: kodev builds the `ko://` services, Compose runs the project.

One stage per module: `locate` (which Compose binary), `project` (the normalized model and kodev's
services in it), `override` (the file that points kodev's services at the built images), `lifecycle`
(up, stop, down, container IDs per service) and `build` (building the services; `kodev resolve`).
"""

from kodev.compose.build import build_services, command_plans, load_with_own_refs, resolve, resolved_config
from kodev.compose.lifecycle import containers, down, stop, up
from kodev.compose.locate import ComposeCLI, ComposeError, find_compose
from kodev.compose.override import write_override
from kodev.compose.project import ComposeProject, ComposeService, load_project

__all__ = [
    "ComposeCLI",
    "ComposeError",
    "ComposeProject",
    "ComposeService",
    "build_services",
    "command_plans",
    "containers",
    "down",
    "find_compose",
    "load_project",
    "load_with_own_refs",
    "resolve",
    "resolved_config",
    "stop",
    "up",
    "write_override",
]
