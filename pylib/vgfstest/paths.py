"""Where the repository and the vgfs binary under test are: $VGFS_BIN, else
<repo>/build/vgfs."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
VGFS_BIN = Path(os.environ.get("VGFS_BIN") or (REPO / "build" / "vgfs")).resolve()
