import sys

from uniwav.cli.main import main

sys.exit(main())
