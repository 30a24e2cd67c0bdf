"""What a benchmark run is given: its paths, the targets, the fixed tape names, Config."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
BIN = Path(sys.executable).parent
TARGETS = ["origin", "mitmdump", "mitmdump-record", "mitmdump-replay",
           "wiretape-record", "wiretape-replay"]
LIVE = ["origin", "mitmdump", "mitmdump-record", "wiretape-record"]  # need the origin up
BASELINE = "mitmdump"
SEED_PORT = 9  # the origin port seeded recordings name; nothing listens there
SCALE_TAPE = "scale"
MIX_TAPE = "bench"
# wiretape's own mitmproxy options (cli/serve.py), given to every mitmdump baseline too
MITM_COMMON = ["--set", "connection_strategy=lazy", "--set", "upstream_cert=false"]


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Config:
    reps: int
    connections: list[int]
    duration: float
    warmup: float
    targets: list[str]
    scale_sizes: list[int]
    scale_reps: int
    admin_size: int
    admin_requests: int
    sections: set[str]  # throughput, scale, admin
    postgres: bool
    load_cpu: int
    proxy_cpu: int
    max_rps: int  # the request cap per wrk run is max_rps * duration
    quiet_budget: float  # seconds the whole run may spend waiting for other load to pass
    wiretape_cmd: list[str]  # how to run `wiretape` (default: the installed console script)
    out: Path
    quick: bool
    keep: bool

    def cap(self, duration: float) -> int:
        return int(self.max_rps * max(1.0, duration))
