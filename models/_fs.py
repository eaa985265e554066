"""Private directories: state that only the service's own user may read.

Recovery snapshots, the registry, the offline store and the servers' data hold decisions
and features derived from card traffic (and the Redis config holds a password), so they
are created mode 0700. ``Path.mkdir(mode=0o700)`` alone is not enough: the mode is
filtered by the umask and ignored for a folder that already exists, so the mode is set
explicitly afterwards. It lives in ``models`` because ``streams`` imports ``models``,
never the reverse, and both create such folders.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["PRIVATE_DIR_MODE", "private_dir"]

PRIVATE_DIR_MODE = 0o700


def private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) and make it mode 0700, even if it existed."""
    path.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR_MODE)
    os.chmod(path, PRIVATE_DIR_MODE)
    return path
