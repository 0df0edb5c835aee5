"""Pages that must work while the server is away carry their script and style inside the page.

The restart answer is the last thing the old server sends: the browser's requests for /static files that
follow it can meet a closed port (the old process stopped, the new one not yet listening). Such a page
embeds its files, and its Content-Security-Policy allows exactly those texts by their SHA-256 hash."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from pathlib import Path

from markupsafe import Markup

from appliance.api.ui.views import content_security_policy


@dataclass(frozen=True)
class Inline:
    """One static file's text to put between <script> or <style> tags, and its CSP source."""

    text: Markup
    source: str  # "'sha256-…'", as script-src and style-src take it

    @classmethod
    def read(cls, path: Path) -> Inline:
        text = path.read_text(encoding="utf-8")
        if "</" in text:  # would end the element early; the hash would then not match what runs
            raise ValueError(f"{path} contains '</' and cannot be embedded in a page")
        digest = base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")
        return cls(Markup(text), f"'sha256-{digest}'")  # a file of the package, not input


@dataclass(frozen=True)
class SelfContained:
    """The script and style of a page that loads nothing from the server, and the headers allowing them."""

    script: Inline
    style: Inline

    @classmethod
    def read(cls, static: Path, script: str, style: str) -> SelfContained:
        return cls(Inline.read(static / script), Inline.read(static / style))

    def csp(self) -> str:
        return content_security_policy(script=self.script.source, style=self.style.source)
