"""`appliance bench` (filled in below)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

Common = Callable[[argparse.ArgumentParser], None]


def register(sub: argparse._SubParsersAction, common: Common) -> None:  # type: ignore[type-arg]
    return None
