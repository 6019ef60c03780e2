"""``python -m crowd.cli``: the same as the ``crowd`` command."""

from crowd.cli import main

main()
