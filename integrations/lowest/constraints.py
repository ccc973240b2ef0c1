"""Print pip constraints that pin each of Sutram's declared dependencies to its floor.

``make test-lowest`` installs Sutram with these constraints into a fresh virtualenv and runs
the conformance and adapter tests there: a floor in ``pyproject.toml`` that is too low (an
API first shipped in a later release) fails that job instead of a user's install. The base
dependencies and the extras named on the command line are pinned (``>=X`` becomes ``==X``);
everything else resolves as pip would.

    python integrations/lowest/constraints.py postgres > lowest.txt
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser, from PyPI (pip vendors it)
    from pip._vendor import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]


def floors(extras: list[str]) -> list[str]:
    """``name==floor`` for each ``name>=floor`` among the base dependencies and ``extras``."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = list(project["dependencies"])
    for extra in extras:
        wanted += project["optional-dependencies"][extra]
    out = []
    for spec in wanted:
        found = re.fullmatch(r"\s*([A-Za-z0-9_.\-]+)(\[[^\]]*\])?\s*>=\s*([0-9][^,;\s]*)\s*", spec.split(";")[0])
        if found:
            out.append(f"{found.group(1)}=={found.group(3)}")
    return out


if __name__ == "__main__":
    print("\n".join(floors(sys.argv[1:])))
