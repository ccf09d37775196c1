"""Docker Compose projects: kodev builds the `ko://` services, Compose runs the project.

One stage per module: `locate` (which Compose binary), `project` (the normalized model and kodev's
services in it), `override` (the file that points kodev's services at the built images) and `lifecycle`
(up, stop, down, container IDs per service). Building a project's kodev services (and `kodev resolve`)
is a layer above, in kodev/compose_build.py: it runs the build pipeline.
"""

from kodev.compose.lifecycle import containers, down, stop, up
from kodev.compose.locate import ComposeCLI, ComposeError, find_compose
from kodev.compose.override import write_override
from kodev.compose.project import ComposeProject, ComposeService, load_project

__all__ = [
    "ComposeCLI",
    "ComposeError",
    "ComposeProject",
    "ComposeService",
    "containers",
    "down",
    "find_compose",
    "load_project",
    "stop",
    "up",
    "write_override",
]
