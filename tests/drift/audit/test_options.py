"""What an audit is asked to do: options checked, stored without secrets."""

from __future__ import annotations

import pytest
from wiretape.drift.audit import AuditOptions


def test_audit_options_are_stored_without_header_values() -> None:
    opts = AuditOptions(headers=(("Authorization", "Bearer secret"),))
    assert "secret" not in str(opts.to_dict())
    with pytest.raises(ValueError):
        AuditOptions(concurrency=0)
