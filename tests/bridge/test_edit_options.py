"""The one table of edit parameters agrees with EditParams: names, types, defaults, ranges."""

from __future__ import annotations

import dataclasses
import typing

import pytest

from bridge.wire.edit_options import EDIT_OPTIONS, out_of_range
from tokenflow.params import EditParams


def test_every_edit_parameter_is_in_the_table_with_its_default_and_type():
    fields = {f.name: f for f in dataclasses.fields(EditParams)}
    hints = typing.get_type_hints(EditParams)
    assert [o.name for o in EDIT_OPTIONS] == list(fields)
    for option in EDIT_OPTIONS:
        f = fields[option.name]
        expected = None if f.default is dataclasses.MISSING else f.default
        assert option.default == expected, option.name
        tp = hints[option.name]
        assert option.type is (tp if tp in (int, float, bool, str) else str), option.name
        if typing.get_origin(tp) is typing.Literal:
            assert option.choices == typing.get_args(tp)


def _valid(**change) -> bool:
    try:
        base = EditParams(prompt="x") if "prompt" not in change else EditParams(prompt=change.pop("prompt"))
        dataclasses.replace(base, **change).validate()
        return True
    except ValueError:
        return False


@pytest.mark.parametrize("option", [o for o in EDIT_OPTIONS if (o.minimum is not None or o.maximum is not None)
                                    and not o.range_note], ids=lambda o: o.name)
def test_ranges_are_the_ones_validate_enforces(option):
    step = 1 if option.type is int else 0.01
    if option.minimum is not None:
        assert _valid(**{option.name: option.type(option.minimum)})
        assert not _valid(**{option.name: option.type(option.minimum - step)})
    if option.maximum is not None:
        assert _valid(**{option.name: option.type(option.maximum)})
        assert not _valid(**{option.name: option.type(option.maximum + step)})


def test_max_joint_keyframes_is_auto_or_at_least_two():
    assert [_valid(max_joint_keyframes=n) for n in (-1, 0, 1, 2, 40)] == [False, True, False, True, True]


@pytest.mark.parametrize("option", EDIT_OPTIONS, ids=lambda o: o.name)
def test_the_table_refuses_what_validate_refuses(option):
    """out_of_range (what the server says, by name) and EditParams.validate agree at the edges."""
    if option.choices:
        candidates = [*option.choices, "sideways"]
    elif option.type in (int, float):
        edges = [v for v in (option.minimum, option.maximum, *option.excluded) if v is not None]
        step = 1 if option.type is int else 0.01
        candidates = [option.type(v + d) for v in edges for d in (-step, 0, step)] or [option.default]
    else:
        continue_ = [option.default]
        candidates = continue_ if option.default is not None else ["x", " "]
    for value in candidates:
        assert (out_of_range(option.name, value) is None) == _valid(**{option.name: value}), (option.name, value)
