"""`python -m wiretape.cli`: the `wiretape` command without its console script."""

from .main import main

main()
