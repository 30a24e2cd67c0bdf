"""The `wiretape` command: the composition root that wires proxy, API and storage together."""
