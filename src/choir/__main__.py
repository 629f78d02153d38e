"""`python -m choir` is the `choir` command."""

from choir.cli import main

main()
