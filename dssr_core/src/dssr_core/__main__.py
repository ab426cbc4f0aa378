import sys

from dssr_core.cli import main

sys.exit(main())
