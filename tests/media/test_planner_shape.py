"""The media planner's class shape: what mypyc can compile to native classes."""

from __future__ import annotations

from huntgroup.media.direct_media import DirectMedia
from huntgroup.media.hold_media import HoldMedia
from huntgroup.media.offer_answer import MediaPlanner
from huntgroup.media.planner_base import PlannerBase


def test_the_planner_is_one_line_of_single_inheritance() -> None:
    """mypyc makes a class with two non-trait bases an ordinary Python class (its
    methods called by name, its attributes read from a dict): the planner's parts
    are stacked, in the order the two-base class resolved them."""
    assert MediaPlanner.__mro__ == (MediaPlanner, HoldMedia, DirectMedia, PlannerBase, object)
    assert all(len(cls.__bases__) == 1 for cls in MediaPlanner.__mro__[:-1])
