"""wiretape's benchmark harness: origin, workloads, seeding and the one command in `run.py`."""
