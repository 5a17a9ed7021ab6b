"""``python -m sklambda_infra.layer`` (``make layer``; ``sam build`` runs it with ``--deps-only``)."""

import sys

from sklambda_infra.layer.cli import main

sys.exit(main())
