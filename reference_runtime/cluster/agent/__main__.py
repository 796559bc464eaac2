"""``python -m reference_runtime.cluster.agent --config agent.json``."""

import sys

from .main import main

sys.exit(main())
