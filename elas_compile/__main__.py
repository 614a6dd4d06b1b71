"""``python -m elas_compile train|plot|bench ...``: the ``elas-compile`` command line."""
import sys

from elas_compile.cli import main

sys.exit(main())
