"""Property-based API testing with schemathesis against the OpenAPI spec: no request gets a 5xx.

Driven through schemathesis' strategies (its pytest plugin does not support pytest 9 yet).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.conftest import LiveServer, config_for, start_server

SKIP = ("/api/v1/debug/profile", "/api/v1/restart")  # samples for seconds by design; stops the server


@pytest.fixture
def fuzz_server(data_dir: Path) -> Iterator[LiveServer]:
    server = start_server(config_for(data_dir, "[auth]\nrate_per_s = 0\n"))
    server.setup()
    yield server
    server.stop()


def test_no_request_gets_a_server_error(fuzz_server: LiveServer) -> None:
    schema = schemathesis.openapi.from_url(f"{fuzz_server.url}/api/openapi.json")
    headers = {"Authorization": f"Bearer {fuzz_server.token}"}
    failures: list[str] = []
    calls: list[int] = []
    operations = [op.ok() for op in schema.get_all_operations()]
    assert len(operations) > 20
    for operation in operations:
        if operation.path in SKIP:
            continue

        @given(case=operation.as_strategy())
        @settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case: Any) -> None:
            response = case.call(headers=headers, timeout=30)
            calls.append(response.status_code)
            if response.status_code >= 500:
                failures.append(
                    f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:200]}"
                )

        check()
    assert failures == []
    assert len(calls) > 5 * len(operations)  # the strategies really generated requests
    assert sum(200 <= c < 300 for c in calls) > 10 and sum(400 <= c < 500 for c in calls) > 10
