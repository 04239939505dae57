"""``python -m npmlp``."""
from npmlp.cli import main

raise SystemExit(main())
