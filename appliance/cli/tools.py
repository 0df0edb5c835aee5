"""The development tools' commands (`appliance bench`, `appliance demo`), found at run time.

They live in the edge-appliance-tools distribution (tools/ in the repository), which the device image
does not install. When it is installed its commands come in through the entry-point group
`appliance.commands`; when it is not, each known tool command is a stub that says how to get it.
The runtime package never imports the tools (tests/test_imports.py checks it).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from importlib.metadata import entry_points

logger = logging.getLogger(__name__)

GROUP = "appliance.commands"
TOOLS_DIST = "edge-appliance-tools"
TOOL_COMMANDS = {
    "bench": "benchmark raw LiteRT, the pipeline, REST and the store",
    "demo": "the bundled demo",
}
Common = Callable[[argparse.ArgumentParser], None]


def missing(name: str) -> Callable[[argparse.Namespace], int]:
    def handler(args: argparse.Namespace) -> int:
        sys.stderr.write(
            f"error: `appliance {name}` is a development tool, not part of the runtime install: "
            f"install {TOOLS_DIST} (`pip install ./tools` in the repository; `make run` and "
            "`make test` do it)\n"
        )
        return 2

    return handler


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: Common, group: str = GROUP
) -> None:
    """The installed tools' commands, then a stub for every known tool command still missing."""
    found: set[str] = set()
    for point in entry_points(group=group):
        point.load()(sub, common)
        found.add(point.name)
    for name, text in TOOL_COMMANDS.items():
        if name not in found:  # takes any arguments, options too (prefix_chars): it only says what is missing
            stub = sub.add_parser(
                name, help=f"{text} (needs {TOOLS_DIST})", add_help=False, prefix_chars="\0"
            )
            stub.add_argument("args", nargs=argparse.REMAINDER)
            stub.set_defaults(handler=missing(name))
