"""A scripted-time harness around RoutingCore for the core tests."""

from __future__ import annotations

from typing import Any

from huntgroup.config.models import Config, GroupConfig, LineConfig, MemberConfig
from huntgroup.queue.actions import Action, Ring, RingAll
from huntgroup.queue.core import RoutingCore
from huntgroup.queue.events import Event
from huntgroup.queue.state.store import MemoryStore

LINES = [f"010000000{i}" for i in range(1, 10)]


def make_config(
    algorithm: str = "linear",
    members: int = 3,
    *,
    groups: list[dict[str, Any]] | None = None,
    lines: list[dict[str, Any]] | None = None,
    **group: Any,
) -> Config:
    """A config whose first group has ``members`` line members m1..mN (positions 1..N)."""
    line_cfgs = [LineConfig(number=n, password="pw") for n in LINES]
    if lines:
        by_number = {d["number"]: d for d in lines}
        line_cfgs = [
            LineConfig(**{"password": "pw", **by_number.get(n, {"number": n})}) for n in LINES
        ]
    first = {
        "name": "G",
        "pilot": "0140000000",
        "algorithm": algorithm,
        "members": [MemberConfig(line=LINES[i], position=i + 1) for i in range(members)],
    }
    first.update(group)
    all_groups = [GroupConfig(**first)] + [GroupConfig(**g) for g in (groups or [])]
    return Config(lines=tuple(line_cfgs), groups=tuple(all_groups))


def with_members(cfg: Config, *members: MemberConfig) -> Config:
    """``cfg`` with ``members`` as its first group's members, nothing else changed."""
    first = cfg.groups[0].model_copy(update={"members": members})
    return cfg.model_copy(update={"groups": (first, *cfg.groups[1:])})


def flat(actions: list[Action]) -> list[Action]:
    """``actions``, each ``RingAll`` replaced by the ``Ring`` of each of its members."""
    if not any(isinstance(a, RingAll) for a in actions):
        return actions
    out: list[Action] = []
    for a in actions:
        if isinstance(a, RingAll):
            out += a.rings()
        else:
            out.append(a)
    return out


def m(i: int) -> str:
    """The key of member i (1-based) of the harness groups."""
    return LINES[i - 1]


class Harness:
    def __init__(
        self,
        config: Config,
        *,
        now: float = 0.0,
        store: MemoryStore | None = None,
        observed: bool = False,
    ):
        self.core = RoutingCore(config, now=now, store=store, observed=observed)
        self.now = now
        self.log: list[tuple[float, Action]] = []
        self.raw: list[tuple[float, Action]] = []

    def _record(self, actions: list[Action]) -> list[Action]:
        """The core's actions, a ``RingAll`` read as the ``Ring`` of each of its members
        (what most tests check); ``raw`` keeps them as the core made them."""
        self.raw.extend((self.now, a) for a in actions)
        actions = flat(actions)
        self.log.extend((self.now, a) for a in actions)
        return actions

    def at(self, t: float) -> list[Action]:
        """Advance time to ``t``, firing every timer due on the way, in order."""
        out: list[Action] = []
        while (due := self.core.get_timer()) is not None and due <= t:
            self.now = max(self.now, due)
            out += self._record(self.core.handle_timer(now=self.now))
        self.now = max(self.now, t)
        return out

    def ev(self, event: Event, at: float | None = None) -> list[Action]:
        out = self.at(at) if at is not None else []
        return out + self._record(self.core.handle(event, now=self.now))

    def rings(self, since: float = float("-inf")) -> list[tuple[float, str, str]]:
        """(time, call, member) of every Ring so far."""
        return [(t, a.call_id, a.member) for t, a in self.log if isinstance(a, Ring) and t >= since]

    def of(self, kind: type, call: str | None = None) -> list[Any]:
        return [
            a for _, a in self.log if isinstance(a, kind) and (call is None or a.call_id == call)
        ]
