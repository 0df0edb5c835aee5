"""What every command shares: logging, --config/--data-dir, and the configuration they give.

Apart from appliance/cli/__init__.py so that the command modules import it at the top without an
import cycle through the parser that imports them.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from appliance.config import Config, load_config, replace_section

CONFIG_ENV = "APPLIANCE_CONFIG"


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )


def config_from_args(args: argparse.Namespace) -> Config:
    """--config (or $APPLIANCE_CONFIG), then --data-dir over it."""
    path = getattr(args, "config", None) or os.environ.get(CONFIG_ENV)
    config = load_config(path)
    if getattr(args, "data_dir", None):
        config = replace_section(config, "data", dir=args.data_dir)
    return config


def add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help=f"config file (default: ${CONFIG_ENV}, else built-in defaults)")
    parser.add_argument("--data-dir", help="data directory (overrides data.dir of the config)")
