"""`appliance tokens create|list|revoke`: API tokens with scopes (read, operate, admin)."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

from appliance.auth.store import SCOPES, AuthStore
from appliance.cli.arguments import config_from_args

Common = Callable[[argparse.ArgumentParser], None]


def _store(args: argparse.Namespace) -> AuthStore:
    return AuthStore(config_from_args(args).data_dir)


def cmd_create(args: argparse.Namespace) -> int:
    token = _store(args).create_token(args.name, args.scope)
    sys.stdout.write(f"{token}\n")
    sys.stderr.write("store it now: the token is not shown again\n")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    for info in _store(args).tokens():
        created = time.strftime("%Y-%m-%d %H:%M", time.gmtime(info.created))
        sys.stdout.write(f"{info.id}  {info.scope:<8} {created}  {info.name}\n")
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    _store(args).revoke(args.id)
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: Common) -> None:
    tokens = sub.add_parser("tokens", help="API tokens").add_subparsers(dest="tokens", required=True)
    create = tokens.add_parser("create", help="create a token (printed once)")
    common(create)
    create.add_argument("--scope", required=True, choices=SCOPES, help="read < operate < admin")
    create.add_argument("--name", default="cli", help="what the token is for, e.g. 'line 3 PLC'")
    create.set_defaults(handler=cmd_create)
    listing = tokens.add_parser("list", help="list tokens (never their secrets)")
    common(listing)
    listing.set_defaults(handler=cmd_list)
    revoke = tokens.add_parser("revoke", help="revoke a token by id")
    common(revoke)
    revoke.add_argument("id")
    revoke.set_defaults(handler=cmd_revoke)
