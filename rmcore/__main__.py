import sys

from rmcore.cli import main

sys.exit(main())
