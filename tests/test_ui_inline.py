"""Embedded page files: the CSP hash is what a browser computes; text ending its element is refused."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest

from appliance.api.app import web_dir
from appliance.api.ui.inline import Inline, SelfContained


def test_the_restart_page_allows_exactly_its_embedded_texts() -> None:
    page = SelfContained.read(web_dir() / "static", script="restart.js", style="app.css")
    script = (web_dir() / "static" / "restart.js").read_bytes()
    expected = "'sha256-" + base64.b64encode(hashlib.sha256(script).digest()).decode() + "'"
    policy = dict(part.strip().split(" ", 1) for part in page.csp().split(";"))
    assert policy["script-src"] == f"'self' {expected}"
    assert page.style.source in policy["style-src"]
    assert "'unsafe-inline'" not in page.csp()


def test_a_file_that_would_end_its_element_is_refused(tmp_path: Path) -> None:
    (tmp_path / "bad.js").write_text('document.write("</script><script>alert(1)");', encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad\.js"):
        Inline.read(tmp_path / "bad.js")
