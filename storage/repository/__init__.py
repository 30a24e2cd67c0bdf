"""All SQL lives here, in one module per aggregate. Functions take a Session and never commit:
callers own transactions. Everything is re-exported, so callers write `repo.name`.

- tapes: tapes, their rules (re-keying when they change), the list with counts
- recordings: storing (seq in capture order), loading a tape in order, editing, deleting
- bodies: big bodies' parts, written and read a part at a time
- listing: the filtered, keyset-paged recording list
- replay: what the replay index loads
- state: the shared runtime state and the misses journal
- audits: drift audits, their results, freshness and tape noise
"""

from __future__ import annotations

from .audits import (
    AuditNotFound,
    add_audit_results,
    add_detected_noise,
    audit_results,
    create_audit,
    finish_audit,
    get_audit,
    last_audit_started,
    latest_audit_summaries,
    list_audits,
    recording_history,
    set_tape_noise,
    tape_freshness,
    tape_noise,
)
from .bodies import (
    add_body_parts,
    body_head,
    body_part_count,
    body_parts,
    copy_body_parts,
    delete_body_parts,
    iter_body,
    read_body,
)
from .listing import RecordingFilter, RecordingSummary, list_recordings
from .recordings import (
    BY_CAPTURE,
    BY_KEY,
    RecordingNotFound,
    add_exchanges,
    count_recordings,
    delete_recording,
    delete_recordings,
    endpoint_recordings,
    get_recording,
    import_exchanges,
    recordings,
    replace_response,
    tape_items,
    tape_recordings,
)
from .replay import ReplayEntry, Variant, replay_entries
from .rows import exchange_row, row_exchange, row_request
from .state import (
    STATE_ID,
    add_miss,
    closest,
    get_state,
    init_state,
    list_misses,
    reset_sequences,
    set_state,
)
from .tapes import (
    TapeExists,
    TapeNotFound,
    TapeSummary,
    copy_tape,
    create_tape,
    delete_tape,
    empty_tape,
    ensure_tape,
    get_tape,
    list_tapes,
    outdated_tapes,
    recompute_keys,
    rekey_outdated_tape,
    require_tape,
    set_matching,
    tape_rules,
    tape_summary,
    touch_tape,
)

__all__ = [
    "BY_CAPTURE", "BY_KEY", "STATE_ID", "AuditNotFound", "RecordingFilter", "RecordingNotFound",
    "RecordingSummary", "ReplayEntry", "TapeExists", "TapeNotFound", "TapeSummary", "Variant",
    "add_audit_results", "add_body_parts", "add_detected_noise", "add_exchanges", "add_miss",
    "audit_results", "body_head", "body_part_count", "body_parts", "closest",
    "copy_body_parts", "copy_tape", "count_recordings", "create_audit", "create_tape",
    "delete_body_parts", "iter_body", "read_body",
    "delete_recording", "delete_recordings", "delete_tape", "empty_tape", "endpoint_recordings",
    "ensure_tape", "exchange_row", "finish_audit", "get_audit", "get_recording", "get_state",
    "get_tape", "import_exchanges", "init_state", "last_audit_started",
    "latest_audit_summaries", "list_audits", "list_misses", "list_recordings", "list_tapes",
    "outdated_tapes", "recompute_keys", "recording_history", "recordings", "rekey_outdated_tape",
    "replace_response", "replay_entries",
    "require_tape", "reset_sequences", "row_exchange", "row_request", "set_matching",
    "set_state", "set_tape_noise", "tape_freshness", "tape_items", "tape_noise",
    "tape_recordings", "tape_rules", "tape_summary", "touch_tape",
]
