"""``python -m modelshelf.cli``, as before the command line became a package."""

import sys

from . import main

main(sys.argv[1:])
