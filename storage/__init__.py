"""The store: exchanges, match keys, redaction, models, repositories, HAR files, the engine."""
