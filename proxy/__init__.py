"""The mitmproxy side: capture, redact, match and replay exchanges."""
