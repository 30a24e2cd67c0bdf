"""`wiretape serve --audit-every`: audits of the current tape in the background."""

from __future__ import annotations

from sqlalchemy import select
from wiretape.storage import db
from wiretape.storage import models as m

from tests.drift.support import Payments, add, live_exchange, run
from tests.helpers import wait_for


def test_serve_audits_the_current_tape_on_a_schedule(db_url, payments: Payments, serve) -> None:
    pay, _status = add(db_url, "payments", live_exchange(payments.url, "/payments/7"),
                       live_exchange(payments.url, "/status"))
    payments.version = 2
    s = serve(db_url, "--mode", "replay", "--tape", "payments", "--audit-every", "1s",
              "--audit-header", "Authorization: Bearer staging")

    def audited() -> bool:
        audits = s.api("GET", "/api/tapes/payments/audits").json()
        return any(a["status"] == "done" for a in audits)

    wait_for(audited, 20, "a scheduled audit")
    audit = next(a for a in s.api("GET", "/api/tapes/payments/audits").json()
                 if a["status"] == "done")
    assert audit["trigger"] == "schedule"
    assert audit["summary"]["by_class"]["breaking"] == 2
    assert payments.upstream.seen[-1].headers["Authorization"] == "Bearer staging"
    # the proxy keeps answering from the tape meanwhile
    with s.client() as c:
        assert c.get(payments.url + "/payments/7").json()["customer"] == "ann"
    fresh = s.api("GET", "/api/tapes/payments/freshness").json()["recordings"]
    assert {r["id"]: r["last_verdict"] for r in fresh}[pay] == "breaking"
    metrics = s.api("GET", "/metrics").text
    assert 'wiretape_drift_findings{class="breaking",tape="payments"} 2.0' in metrics
    listed = run("ls", "--tape", "payments", "--db", db_url)
    assert listed.returncode == 0 and "breaking" in listed.stdout, listed.stdout

    assert s.stop() == 0
    engine = db.make_engine(db_url)
    try:
        with db.make_sessions(engine)() as session:
            statuses = set(session.scalars(select(m.Audit.status)))
    finally:
        engine.dispose()
    assert statuses <= {"done", "failed"}  # none left "running" by the shutdown
