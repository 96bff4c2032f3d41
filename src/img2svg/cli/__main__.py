import sys

from img2svg.cli import main

sys.exit(main())
