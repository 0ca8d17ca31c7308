"""A reload that changes a group's settings alone (no member joins, leaves or is
touched): the roster still retires the old group's index and takes the new groups.

``Roster.refresh`` leaves at once when nothing changed; the test of the groups'
identity in that early return is what makes a reload that touched nobody reach
``_retire``. Without it the index the hunting call's walk holds would be replaced
at its group's next use without being retired, and a walk over it (ring all: its
``rest``, unchecked) would read an index nobody keeps up to date any more.
"""

from __future__ import annotations

import pytest

from huntgroup.config.models import ALGORITHMS
from huntgroup.distribution.walks import LeastWalk, RotatedWalk
from huntgroup.queue.core import CallState
from huntgroup.queue.events import CallArrived
from tests.support.core_harness import Harness, make_config


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_a_reload_of_settings_alone_retires_the_index_a_walk_holds(algorithm: str) -> None:
    h = Harness(make_config(algorithm, 3, no_answer_timeout=15))
    h.ev(CallArrived("c1", "G", "0611111111"), at=1.0)
    core = h.core
    assert core.call_state("c1") is CallState.HUNTING
    hunt = core._calls["c1"].hunt
    assert hunt is not None
    walk = hunt._walk
    assert isinstance(walk, RotatedWalk | LeastWalk)
    index = walk.index
    assert not index.retired
    old_groups = core._groups
    assert not core.store.touched and not core.availability.touched
    core.reload(make_config(algorithm, 3, no_answer_timeout=15, wrap_up=5), now=2.0)
    assert core._groups is not old_groups  # the groups replaced, their members the same
    assert index.retired
    assert core.roster._groups is core._groups
