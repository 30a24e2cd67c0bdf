"""HAR 1.2 export and import of tapes.

Bodies are written the way HAR viewers expect them: `content.text` is the body with its
Content-Encoding undone, as text when it is UTF-8, else base64 with `"encoding": "base64"`.
So that an import reproduces the recorded bytes exactly, a content-encoded body also keeps
its raw bytes under `_wiretape` (HAR allows custom fields starting with `_`), guarded by a
digest of the decoded content: when someone edits `content.text` in a tape kept in git, the
digest no longer matches and the edited text is encoded afresh instead.
"""

from __future__ import annotations

from .read import HarError, HarTape, loads, parse
from .write import TapeExport, dump, entry

__all__ = ["HarError", "HarTape", "TapeExport", "dump", "entry", "loads", "parse"]
