"""``python -m eventvault.cli``: the same as the ``eventvault`` command."""

from .main import main

main()
