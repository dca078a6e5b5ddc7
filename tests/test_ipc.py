from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas import InvalidIpcCode, IpcLevel, ipc_level, ipc_levels, normalize_ipc


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("H01M 10/0525", "H01M 10/0525"),
        ("H01M10/0525", "H01M 10/0525"),
        ("h01m10/525", "H01M 10/525"),
        ("  h01m   10 / 0525 ", "H01M 10/0525"),
        ("H01M 0010/0525", "H01M 10/0525"),
        ("H01M 10/052500", "H01M 10/0525"),
        ("H01M10", "H01M 10/00"),
        ("H01M 10/0", "H01M 10/00"),
        ("h01m", "H01M"),
        ("g06", "G06"),
        ("a", "A"),
        ("Y02E 60/10", "Y02E 60/10"),
        ("F27D17/00", "F27D 17/00"),
    ],
)
def test_normalises_every_accepted_spelling(raw: str, canonical: str) -> None:
    assert normalize_ipc(raw) == canonical


@pytest.mark.parametrize("raw", ["", "Z01M", "H1M", "H01MM", "H01M 0/00", "H01M 10/1234567", "10/00", "H01M-10"])
def test_rejects_what_is_not_a_code(raw: str) -> None:
    with pytest.raises(InvalidIpcCode):
        normalize_ipc(raw)


def test_levels_from_section_down() -> None:
    assert ipc_levels("h01m10/0525") == ["H", "H01", "H01M", "H01M 10/00", "H01M 10/0525"]
    assert ipc_levels("H01M 10/00") == ["H", "H01", "H01M", "H01M 10/00"]
    assert ipc_levels("H01M") == ["H", "H01", "H01M"]
    assert ipc_levels("H") == ["H"]
    assert [ipc_level(c) for c in ipc_levels("H01M 10/0525")] == list(IpcLevel)


codes = st.builds(
    lambda s, c, sc, g, sg: f"{s}{c:02d}{sc} {g}/{sg}",
    st.sampled_from("ABCDEFGHY"),
    st.integers(1, 99),
    st.sampled_from("ABCDEFGHJKLMNPQRSTUVWXYZ"),
    st.integers(1, 9999),
    st.from_regex(r"\d{2,6}", fullmatch=True),
)


@given(codes)
def test_normalisation_is_idempotent_and_levels_are_prefixes(code: str) -> None:
    canonical = normalize_ipc(code)
    assert normalize_ipc(canonical) == canonical
    assert normalize_ipc(canonical.lower().replace(" ", "")) == canonical
    levels = ipc_levels(code)
    assert levels[-1] == canonical
    assert all(canonical.startswith(level.split("/")[0]) for level in levels)
