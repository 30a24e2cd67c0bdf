"""wiretape's mitmproxy addons, one concern each, composed in the order mitmproxy calls them."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker
from wiretape.storage.notify import Notifier
from wiretape.storage.redact import Redactor

from .drain import Drain
from .expect import ExpectContinue
from .metrics import Metrics
from .options import WiretapeOptions
from .recordreplay import RecordReplay
from .state import StateFollower
from .streams import StreamReplay
from .timeout import UpstreamTimeout
from .workarounds import ClientWorkarounds
from .writer import Writer


class Wiretape:
    """The addons of one proxy, sharing the parsed options and the followed state.

    Add each of `addons` to the master on its own (not this object as one addon): mitmproxy
    stops a hook at the first failing handler of an addon and its children, and the writer
    must still get a capture when counting it fails. The order matters where one addon
    reads what another did with the flow: record/replay answers before the upstream
    timeout arms only what was not answered.
    """

    def __init__(self, sessions: sessionmaker[Session], writer: Writer, redactor: Redactor,
                 notifier: Notifier | None = None) -> None:
        self.options = WiretapeOptions()
        self.state = StateFollower(sessions, self.options, notifier)
        self.streams = StreamReplay(sessions)
        self.record_replay = RecordReplay(self.state.rt, self.options, redactor, writer,
                                          sessions, self.streams)
        self.timeout = UpstreamTimeout(self.options)
        self.drain = Drain()
        self.addons: list[object] = [
            self.options,  # first: the others read the config it parses
            self.state,
            ClientWorkarounds(),
            self.drain,  # refuses new requests at shutdown, before record/replay sees them
            ExpectContinue(),  # before record/replay: the request it sees is as sent
            # before record/replay: a streamed replay's head is put back in place first
            self.streams,
            self.record_replay,
            self.timeout,
            Metrics(self.state.rt),
        ]

    def prepare(self) -> None:
        """Load the shared state and the replay index (blocking: call off the event loop)."""
        self.state.prepare()
