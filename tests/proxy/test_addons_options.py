"""The options addon: typed options parsed once into ProxyConfig, bad values refused."""

from __future__ import annotations

import re

import pytest
from mitmproxy import exceptions
from mitmproxy.test import taddons
from wiretape.proxy.options import ProxyConfig, WiretapeOptions
from wiretape.storage.exchange import SequencePolicy


def test_the_defaults_are_the_config_defaults() -> None:
    opts = WiretapeOptions()
    with taddons.context(opts) as tctx:
        tctx.configure(opts)
        assert opts.config == ProxyConfig()


def test_typed_values_are_parsed_once_into_the_config() -> None:
    opts = WiretapeOptions()
    with taddons.context(opts) as tctx:
        tctx.configure(opts, wiretape_sequence="cycle", wiretape_replay_latency=250.0,
                       wiretape_replay_recorded_latency=True, wiretape_poll_interval=0.5,
                       wiretape_upstream_timeout=5, ignore_hosts=[r"\.internal:443$"])
        config = opts.config
    assert config.sequence is SequencePolicy.CYCLE
    assert (config.latency_ms, config.recorded_latency) == (250.0, True)
    assert (config.poll_interval, config.upstream_timeout) == (0.5, 5.0)
    [pattern] = config.ignore_hosts
    assert pattern.flags & re.IGNORECASE and pattern.search("Vault.INTERNAL:443")


@pytest.mark.parametrize(("option", "value", "message"), [
    ("wiretape_upstream_timeout", -1.0, "wiretape_upstream_timeout must be between 0 and 86400"),
    ("wiretape_poll_interval", 0.0, "wiretape_poll_interval must be between 0.05 and 60"),
    ("wiretape_replay_latency", 700_000.0, "wiretape_replay_latency must be between 0 and 600000"),
    ("ignore_hosts", ["(["], "unterminated character set"),
    ("wiretape_sequence", "loop", "'loop' must be one of repeat-last, cycle, strict"),
])
def test_a_bad_value_is_an_options_error(option: str, value: object, message: str) -> None:
    opts = WiretapeOptions()
    with taddons.context(opts) as tctx, pytest.raises(exceptions.OptionsError) as raised:
        tctx.configure(opts, **{option: value})
    assert message in str(raised.value)


def test_a_number_given_as_text_is_refused() -> None:
    opts = WiretapeOptions()
    with taddons.context(opts) as tctx, pytest.raises(TypeError, match="Expected <class 'float'>"):
        tctx.configure(opts, wiretape_upstream_timeout="60")


def test_a_refused_value_keeps_the_config_in_force() -> None:
    opts = WiretapeOptions()
    with taddons.context(opts) as tctx:
        tctx.configure(opts, wiretape_upstream_timeout=5.0)
        with pytest.raises(exceptions.OptionsError):
            tctx.configure(opts, wiretape_upstream_timeout=-1.0)
        assert opts.config.upstream_timeout == 5.0
        assert tctx.options.wiretape_upstream_timeout == 5.0  # the option rolled back too


def test_other_options_leave_the_config_alone() -> None:
    opts = WiretapeOptions()
    with taddons.context(opts) as tctx:
        before = opts.config
        tctx.configure(opts, listen_port=9999)
        assert opts.config is before
