"""Drift audits: re-send a tape's recorded requests to the live upstreams and judge the answers.

An audit
1. sends every recording's request (as recorded, minus hop-by-hop headers and REDACTED
   values, plus the extra headers that put credentials back) to its live upstream, with a
   concurrency limit and a timeout; audits connect directly, never through HTTP_PROXY
   (which often points at wiretape itself), and trust SSL_CERT_FILE's CA if it is set
   (probe.py);
2. sends the first request of each endpoint a second time (GET, HEAD and OPTIONS only:
   re-sending a POST twice would double its side effects), at least a second later, and
   keeps what differs between the two live answers as that endpoint's noise (timestamps,
   request ids); audits remember it in the tape (`tapes.noise_detected`);
3. classifies each difference from the recording (judge.py, with drift/classify.py):
   breaking, additive, value or latency; noise is left out unless `strict`;
4. stores the results, each recording's freshness (last verified, last verdict), and with
   `refresh` re-records what drifted in place (run.py).

The network part runs on an asyncio loop of its own (runner.py gives each audit a thread),
never on the proxy's: an audit stays off the request path. schedule.py starts audits of
the current tape at an interval.
"""

from __future__ import annotations

from .options import AuditOptions, Target
from .report import AuditReport, load_report
from .run import TapeAudit
from .runner import AuditRunner
from .schedule import audit_due, audit_every

__all__ = ["AuditOptions", "AuditReport", "AuditRunner", "TapeAudit", "Target", "audit_due",
           "audit_every", "load_report"]
