"""`python -m tinygen`: the same as the `tinygen` command."""

from .cli import main

main()
