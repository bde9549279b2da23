import sys

from inas.run import main

sys.exit(main())
