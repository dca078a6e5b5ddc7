"""IPC (and CPC) classification codes: normalisation and hierarchy levels.

The canonical form is ``H01M 10/0525``: section letter, two-digit class, subclass letter, one space,
main group without leading zeros, ``/``, subgroup of at least two digits. A code may stop at any level:
``H``, ``H01``, ``H01M``, ``H01M 10/00`` (a main group), ``H01M 10/0525`` (a subgroup).

Accepted inputs include lower case, missing or extra spaces and zero-padded groups:
``h01m10/525`` → ``H01M 10/525``, ``H01M  0010/0525`` → ``H01M 10/0525``, ``H01M10`` → ``H01M 10/00``.
Sections A–H are IPC; Y is accepted for CPC's cross-sectional tagging.
"""

from __future__ import annotations

import re
from enum import IntEnum

__all__ = ["InvalidIpcCode", "IpcLevel", "ipc_level", "ipc_levels", "normalize_ipc"]

_IPC_RE = re.compile(
    r"""^(?P<section>[A-HY])
        (?:(?P<cls>\d{2})
           (?:(?P<subclass>[A-Z])
              (?:(?P<group>\d{1,4})(?:/(?P<subgroup>\d{1,6}))?)?
           )?
        )?$""",
    re.VERBOSE,
)


class IpcLevel(IntEnum):
    """Depth of a code in the hierarchy; deeper is more specific."""

    SECTION = 1
    CLASS = 2
    SUBCLASS = 3
    MAIN_GROUP = 4
    SUBGROUP = 5


class InvalidIpcCode(ValueError):
    """Raised when a string is not an IPC/CPC code at any level."""


def normalize_ipc(code: str) -> str:
    """Return the canonical form of an IPC/CPC code, or raise :class:`InvalidIpcCode`."""
    compact = re.sub(r"\s+", "", code).upper()
    match = _IPC_RE.match(compact)
    if match is None:
        raise InvalidIpcCode(f"not an IPC code: {code!r}")
    section, cls, subclass = match["section"], match["cls"], match["subclass"]
    if cls is None:
        return section
    if subclass is None:
        return f"{section}{cls}"
    head = f"{section}{cls}{subclass}"
    if match["group"] is None:
        return head
    group = str(int(match["group"]))
    if group == "0":
        raise InvalidIpcCode(f"main group 0 does not exist: {code!r}")
    subgroup = match["subgroup"] or "00"
    # Trailing zeros past the second digit carry no meaning (10/0500 is 10/05).
    subgroup = subgroup.ljust(2, "0")
    subgroup = subgroup[:2] + subgroup[2:].rstrip("0")
    return f"{head} {group}/{subgroup}"


def ipc_level(canonical: str) -> IpcLevel:
    """The level of a canonical code."""
    if len(canonical) == 1:
        return IpcLevel.SECTION
    if len(canonical) == 3:
        return IpcLevel.CLASS
    if len(canonical) == 4:
        return IpcLevel.SUBCLASS
    return IpcLevel.MAIN_GROUP if canonical.endswith("/00") else IpcLevel.SUBGROUP


def ipc_levels(code: str) -> list[str]:
    """Every level of a code, from the section down to the code itself (canonical forms).

    >>> ipc_levels("h01m10/0525")
    ['H', 'H01', 'H01M', 'H01M 10/00', 'H01M 10/0525']
    """
    canonical = normalize_ipc(code)
    levels = [canonical[:1]]
    if len(canonical) >= 3:
        levels.append(canonical[:3])
    if len(canonical) >= 4:
        levels.append(canonical[:4])
    if len(canonical) > 4:
        main_group = canonical.split("/")[0] + "/00"
        levels.append(main_group)
        if main_group != canonical:
            levels.append(canonical)
    return levels
