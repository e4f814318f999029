from __future__ import annotations

from hie_notify.cli import main

raise SystemExit(main())
