"""schemathesis against the app's own OpenAPI schema: bad input is a 4xx, never a 5xx.

Each operation gets a bounded number of generated requests, first ones that fit the schema,
then ones that do not, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from wiretape.api.app import ApiSettings, create_app

from tests.api.conftest import Store, make_exchange

NS = 1_700_000_000_000_000_000
# per operation and mode (~30 operations x 2 modes x 2 backends: about a minute in all);
# WIRETAPE_FUZZ_EXAMPLES=200 digs deeper
EXAMPLES = int(os.environ.get("WIRETAPE_FUZZ_EXAMPLES", "18"))


def _schema(db_url: str, tmp_path: Path) -> schemathesis.BaseSchema:
    store = Store(db_url)
    try:  # something to find, so generated ids and names sometimes hit real rows
        store.add("default", *[make_exchange(url=f"http://api.test/items/{i}", ns=NS + i)
                               for i in range(5)])
    finally:
        store.close()
    (tmp_path / "conf").mkdir()
    # schemathesis calls an ASGI app as Host: testserver
    app = create_app(ApiSettings(db_url=db_url, confdir=str(tmp_path / "conf"),
                                 admin_hosts=("testserver",)))
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def _fuzz(op: Any, mode: GenerationMode, checks: list[Any]) -> None:
    @given(case=op.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    def run(case: schemathesis.Case) -> None:
        case.call_and_validate(checks=checks)

    run()


def test_api_never_answers_5xx(db_url: str, tmp_path: Path) -> None:
    schema = _schema(db_url, tmp_path)
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15
    for op in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            checks = [not_a_server_error]
            if mode is GenerationMode.POSITIVE:
                checks += [status_code_conformance, content_type_conformance,
                           response_schema_conformance]

            try:
                _fuzz(op, mode, checks)
            except Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE  # nothing to get wrong: no parameters
            except Exception as e:  # noqa: BLE001 - collect every operation's findings
                failures.append(f"{op.label} ({mode}): {e}")
    assert not failures, "\n\n".join(failures)
