"""Comparing exchanges: diffs, noise, drift classification, audits and their reports."""
