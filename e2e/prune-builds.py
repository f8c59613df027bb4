#!/usr/bin/env python3
"""Deletes older builds of the workspace's own crates from a cargo target
directory: every change leaves a copy of each of its libraries and test
binaries (hundreds of MiB each), and a day of work fills a disk. A full
disk is not only a failed build: a kubelet under disk pressure collects
images, and the real node's pods lose their pause image.

    prune-builds.py TARGET_DIR

Keeps, of each crate's library, rmeta, dep-info and binary, the three
newest builds, and whatever was written in the last hour (a build running
beside this one). Third-party crates are left alone: they rarely change,
and building them again is slow.
"""

import collections
import re
import sys
import time
from pathlib import Path

KEEP = 3
RECENT = 3600
BUILD = re.compile(r"^(?P<stem>.*)-(?P<hash>[0-9a-f]{16})(?P<ext>\..*)?$")


def ours(stem: str) -> bool:
    """The workspace's crates (devicelink-*) and its test binaries (no lib prefix)."""
    return stem.startswith(("devicelink", "libdevicelink")) or not stem.startswith("lib")


def main() -> int:
    target = Path(sys.argv[1])
    now = time.time()
    freed = 0
    for deps in target.glob("*/deps"):
        builds = collections.defaultdict(list)
        for path in deps.iterdir():
            match = BUILD.match(path.name)
            if match and path.is_file() and ours(match["stem"]):
                builds[(match["stem"], match["ext"] or "")].append(path)
        for paths in builds.values():
            paths.sort(key=lambda p: p.stat().st_mtime, reverse=True)
            for path in paths[KEEP:]:
                stat = path.stat()
                if now - stat.st_mtime > RECENT:
                    freed += stat.st_size
                    path.unlink()
    print(f"prune-builds: {freed / 2**30:.1f} GiB of older builds deleted", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
