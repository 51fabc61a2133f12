"""`python -m daskcog.cli`."""

from daskcog.cli.app import main

main()
