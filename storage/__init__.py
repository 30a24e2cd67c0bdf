"""The library of recordings: exchanges, matching, redaction, models and the repository."""
