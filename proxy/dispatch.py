"""Hook dispatch that looks each hook's handlers up once instead of on every event.

mitmproxy's AddonManager walks every addon (and its nested addons) with `getattr` for each
hook of each request, under a context manager per addon; a request fires a dozen hooks, and
after each flow hook an `update` hook that no addon of ours listens to. In the profiles
(bench/results/profiles) that walk was a fifth of wiretape's CPU in replay. This manager
keeps, per hook name, the handlers in the order mitmproxy would call them, and forgets
them whenever an addon is added or removed. Handlers are bound once: an addon that swaps
its hook methods at run time would not be seen (none of the addons `serve` loads does).
"""

from __future__ import annotations

import importlib.util
import inspect
import logging
import sys
import types
from collections.abc import Callable
from typing import Any

from mitmproxy import exceptions, flow, hooks
from mitmproxy.addonmanager import AddonManager, traverse

log = logging.getLogger("mitmproxy.addonmanager")

Handlers = list[tuple[Any, tuple[Callable[..., Any], ...]]]


class CachedAddonManager(AddonManager):
    def __init__(self, master: Any) -> None:
        super().__init__(master)
        self._handlers: dict[str, Handlers] = {}

    # -- the chain changes: forget what was looked up --------------------------------
    def register(self, addon: Any) -> Any:
        self._handlers.clear()
        try:
            return super().register(addon)
        finally:
            self._handlers.clear()

    def add(self, *addons: Any) -> None:
        super().add(*addons)
        self._handlers.clear()

    def remove(self, addon: Any) -> None:
        self._handlers.clear()
        super().remove(addon)
        self._handlers.clear()

    def clear(self) -> None:
        super().clear()
        self._handlers.clear()

    # -- dispatch ----------------------------------------------------------------------
    def handlers(self, name: str) -> Handlers:
        """Per addon of the chain that has any: its (and its children's) handlers of `name`."""
        found = self._handlers.get(name)
        if found is None:
            found = []
            for top in self.chain:
                funcs = []
                for a in traverse([top]):
                    func = getattr(a, name, None)
                    if not func or isinstance(func, types.ModuleType):
                        continue  # a module imported under a hook's name is not a handler
                    if not callable(func):
                        raise exceptions.AddonManagerError(
                            f"Addon handler {name} ({a}) not callable")
                    funcs.append(func)
                if funcs:
                    found.append((top, tuple(funcs)))
            self._handlers[name] = found
        return found

    async def trigger_event(self, event: hooks.Hook) -> None:
        handlers = self.handlers(event.name)
        if not handlers:
            return
        args = event.args()
        for _addon, funcs in handlers:
            # what mitmproxy's safecall does around each addon of the chain
            try:
                for func in funcs:
                    res = func(*args)
                    if res is not None and inspect.isawaitable(res):
                        await res
            except exceptions.AddonHalt:
                return
            except exceptions.OptionsError:
                raise
            except Exception as e:
                log.error(f"Addon error: {e}", exc_info=True)

    async def handle_lifecycle(self, event: hooks.Hook) -> None:
        await self.trigger_event(event)
        if self.handlers("update") and isinstance(event.args()[0], flow.Flow):
            await self.trigger_event(hooks.UpdateHook([event.args()[0]]))


def install(master: Any) -> CachedAddonManager:
    """Give a freshly made Master (no addons yet) the caching manager."""
    old = master.addons
    assert not old.chain, "install the manager before adding addons"
    master.options.changed.disconnect(old._configure_all)
    master.addons = CachedAddonManager(master)
    return master.addons


def skip_default_addons_import() -> None:
    """Make `mitmproxy.addons` importable without running its `__init__`.

    That `__init__` imports every default addon (flask for onboarding, pyparsing for flow
    filters, the script loader...) to offer `default_addons()`, which wiretape never calls:
    `mitmproxy.master` pulls it in for one submodule, and it was a tenth of `serve`'s
    start-up. The package's submodules still import normally. Call before anything imports
    mitmproxy.master, and only in a process that will not need `default_addons()`.
    """
    if "mitmproxy.addons" in sys.modules:
        return
    import mitmproxy

    spec = importlib.util.find_spec("mitmproxy.addons")
    if spec is None or spec.submodule_search_locations is None:
        return
    package = importlib.util.module_from_spec(spec)  # not executed: no __init__ imports
    sys.modules["mitmproxy.addons"] = package
    mitmproxy.addons = package
