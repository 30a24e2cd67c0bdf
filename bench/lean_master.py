"""Experiment, not product code: `wiretape serve` on a lean mitmproxy Master.

`serve` builds mitmproxy's DumpMaster, which loads 34 default addons; mitmproxy then walks
all of them for every hook of every request (AddonManager.trigger_event: about 40% of
bare mitmdump's CPU in bench/results/profiles/mitmdump-c16.md). This launcher swaps in a
Master with only the addons a plain HTTP(S) proxy needs, to measure what that is worth:

    .venv/bin/python -m bench.run --wiretape-cmd "python -m bench.lean_master"

It changes nothing in the repository's code; the lead decides what `serve` should load.
"""

from __future__ import annotations

import sys
from typing import Any

from mitmproxy import master
from mitmproxy.addons import core, dns_resolver, errorcheck, next_layer, proxyserver, tlsconfig


class LeanMaster(master.Master):
    def __init__(self, opts: Any, with_termlog: bool = False, with_dumper: bool = False) -> None:
        super().__init__(opts)
        self.addons.add(core.Core(), proxyserver.Proxyserver(),  # type: ignore[no-untyped-call]
                        next_layer.NextLayer(),
                        tlsconfig.TlsConfig(), dns_resolver.DnsResolver(),
                        errorcheck.ErrorCheck())


def main() -> int:
    import wiretape.cli.serve as serve
    from wiretape.cli.main import main as wiretape_main

    serve.DumpMaster = LeanMaster
    return int(wiretape_main() or 0)


if __name__ == "__main__":
    sys.exit(main())
