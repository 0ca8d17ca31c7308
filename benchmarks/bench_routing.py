"""Routing decisions of the group core, per algorithm and group size, against the full scans.

A decision is one ``CallArrived`` handled by ``RoutingCore.handle`` up to its
``Ring``(s): the real path of the core, the roster's upkeep for the members it
rings included. Half of the members are busy (every other position, on an
answered outgoing call), so the hunt has to skip. The caller then hangs up:
that ``CallHungUp`` is timed apart (*hang-up*); it includes the roster's
upkeep for the members freed (ring all: every member that rang). Every
decision starts from the same state.

Each figure is measured twice in the same run: with the core as it is (the
index of free members, :mod:`huntgroup.queue.roster`) and with the decisions
of ``tests/support/reference_routing.py`` (every decision scans the group, a
pass walks the strategy's full order: the core before the index). The
hang-up's difference between the two is the upkeep of the index.

*last free*: the same at 1,000 members with every member busy but the last
one (the scan's worst case).

Baseline, measured in the same run: the least work any router must do, a bare
scan of a Python list of dicts for the first free member, with no queue, no
timers and no state store.

Run: .venv/bin/python benchmarks/bench_routing.py [--runs 5] [--calls 1000] [--no-write]

Instruction counts (steady on a shared machine, for an A/B of the core): a fixed
script of decisions with each ``CallArrived`` handled inside ``operator.call``, so
that callgrind counts the decisions alone (the hang-ups and the set-up not)::

    valgrind --tool=callgrind --toggle-collect=_operator_call \
        .venv/bin/python benchmarks/bench_routing.py --callgrind linear --size 1000 --calls 200

instructions per decision = "Collected" / calls.
"""

from __future__ import annotations

import argparse
import contextlib
import operator
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
# the checkout last, for tests.support: a huntgroup already on the path (a compiled build
# under PYTHONPATH, say) must stay the one imported, also by the tests importing this
sys.path.append(str(Path(__file__).resolve().parent.parent))

from report import write_section

from huntgroup.config.models import ALGORITHMS, Config, GroupConfig, LineConfig, MemberConfig
from huntgroup.queue.actions import Ring, RingAll
from huntgroup.queue.core import RoutingCore
from huntgroup.queue.events import CallAnswered, CallArrived, CallHungUp, OutgoingCallStarted
from tests.support.reference_routing import reference_decisions

SIZES = (10, 100, 1000)

ISSUE_BARE_SCAN_US = 0.42
"""The bare list scan on the machine of the issue's targets (issue 14): a target of
20 µs there is 20 / 0.42 = 48 bare scans; 0.2 µs per member rung, 0.48 bare scans."""

PROFILE = """What cProfile found before the index (1,000 members, 300 decisions each):
`least_active` spent about 55% of a decision in `talk_times` and 40% building
the heap of every member; `ring_all` tested each member twice and then made each
offer; the one-at-a-time algorithms scanned the group past every busy member.
With the index no decision visits a member that is not free.

What py-spy and callgrind found next (issue 14, second round), with the index
at 1,000 members: a one-at-a-time decision was about 99,000 instructions of the
core's own per-call work, none of it a hot spot: 12% building frozen dataclasses
(a frozen dataclass's generated `__init__` stores each field through
`object.__setattr__`: a `Ring` cost 8,500 instructions, an `Identity` 4,200),
the rest spread over 50 Python frames (the group's settings read through the
configuration's nested models, the call made then filled field by field, the
member rung handed to the roster's many-member path, five reads of the store's
`touched` property). A ring all cost 3,600 instructions per member rung: Python
comprehensions per member in the walk (`rest`), the roster (`rung`) and the
index (`busy`), the core's own touched set fed for a time in state only an
observed core reads, and the store's `set_ringing_many` (about 1,070 per member,
the state store's own loop).

Cut: the actions keep their frozen dataclasses but get a quicker `__init__`
(each slot's setter bound once); `GroupInfo` copies the settings a decision
reads when the group is installed or reloaded; the call is made whole at once;
one member rung leaves the index directly (`Roster.rung_one`,
`GroupIndex.take`); the roster reads the store's touched set once per store. A
ring all's members leave the index as one run of its free slots (their flags
zeroed as one slice, the slots taken from the walk that gave them), the walk's
keys come from one `itemgetter` call, and the store's touched set is cleared
rather than emptied member by member. What is left per member rung is mostly
the store's ringing mark.

Instructions per decision (callgrind, steady whatever else runs; `valgrind
--tool=callgrind --toggle-collect=_operator_call python benchmarks/bench_routing.py
--callgrind ALGORITHM --size 1000 --calls 200`, 50 calls for ring all; "Collected" /
calls), the frozen tree before this round (main at 0f737ce) against the tree after,
same script:

| algorithm (1,000 members) | before | after | change |
|---|---|---|---|
| `linear` | 98,898 | 75,002 | -24% |
| `circular` | 99,251 | 74,993 | -24% |
| `round_robin` | 100,861 | 76,956 | -24% |
| `least_active` | 111,734 | 86,890 | -22% |
| `ring_all` (500 rung) | 1,801,532 | 946,406 | -47% (3,600 -> 1,890 per member rung) |
| `ring_all`, third round | 944,641 | 378,359 | -60% (1,889 -> 757 per rung) |
| `linear`, 10 members | 96,168 | 80,178 | -17% |

Third round (ring all, 500 rung; `--callgrind ring_all --size 1000 --calls 50`,
the row above marked so: before at 99322af, after on top of it). Of the
1,890 instructions per member rung, about 1,070 were the state store's
`set_ringing_many` (per member a dict lookup, an activity's `ringing` set, and
the store's touched set grown from empty only for the roster to empty it), 360
the call's offers (`dict.fromkeys`), 150 the roster's check that the walk's slots
held no `None` (each `int` compared with `None` through the full rich
comparison), 120 two comparisons of those slots with the free list (roster, then
index), 150 the walk's `itemgetter`. Cut: the memory store keeps the members of a
ring all as one *bulk record* of the call, a copy of the call's offers dict made
in C (its keys are not hashed again), instead of one entry per member; a member
rings for a call when the pair is in its own set or in a bulk record, at most 4
of them (the oldest moves into the members' sets past that), so that a read of
one member stays a few lookups. The core writes it with `touch=False`: the
roster takes note of the members itself, the store's touched set is not grown.
The index takes the members a walk gave without a lookup or a comparison per
member (`GroupIndex.take_given`: every change of the free list forgets what the
walk gave, so those slots are still a stretch of it, checked by its ends).
Left per member rung: the offers dict (360, the one hashing of each member), the
walk's `itemgetter` (150), the store's copy (37), about 50 more; the rest of the
757 is the decision's fixed part, about 80,000 instructions whatever the size
(a 100-member group, 50 rung, costs 110,293; the cost grows by about 600 per
member rung). Counts move by about 0.3% with the hash seed (`PYTHONHASHSEED` 0
and 1: 946,100 and 948,389 before, 377,579 and 379,649 after). The hang-up of a
ring all (not counted above) costs about 2% more, some 440 instructions per
member freed of about 22,000: each member's unringing pops it from the bulk
record. Tried and dropped: a list of the free members' keys kept beside `free`
in the index, so that the walk's `rest` is a slice rather than an `itemgetter`
call: 618 instead of 757 per member rung, but the hang-up's upkeep grew by about
1,000 instructions per member freed (two list inserts per member instead of one
`insort`).

Third round, one at a time (issue 14, "decisions under 20 µs for every algorithm"): the 43 to
49 Python frames of a one-at-a-time decision still had no hot spot; a third of
its instructions went to making objects (a class with a Python `__init__` is
entered through `type_call`, a C-level call into a fresh interpreter loop: the
`Identity`, the `GroupView`, the walk, the `Hunt`, the call, `Ringback`,
`Ring`), the rest to many small frames. Cut: the usual decision (a new call,
nobody waiting, a free member, one member at a time, no claims) takes a fused
path, `hunting.ring_first`: the general path's steps (the call made with its
hunt already in its first pass, `max_wait`, `Ringback`, the walk's first take,
the offer of one member, `no_answer.after`) in the same order, in one frame,
with the index the arrival has just refreshed: no second and third refresh, no
predicate closure (the member the index gives is checked once, written out), no
`start_hunting`, `advance`, `begin_pass`, `take`, `offer_all`, `offer` or `_arm`
frames, the enum members read as module globals (a member read through its enum
class goes through the metaclass's `__getattr__` hook). `RoutingCore.quick =
False` sends that case through the general path; a property test
(`tests/queue/test_quick_decision.py`) holds the two to the same actions and the
same state over random scenarios. Smaller cuts: `Availability.offerable` tests
reachability itself; a least-talk walk's take reads `by_talk` directly when no
entry changed since `T0` and no free member has a call in progress; the index's
`take` finds the first free slot and the first of the talk order without a
search, and unsorts without a helper; the index holds its walks in a set of weak
references whose callback is the set's own `discard` (no Python frame, where the
`WeakSet` cost two per pass); the round-robin pointer is read without
`position_of` and its start slot comes from a dict (`GroupIndex.after_position`)
rather than a search (no call is answered in this script: its round robin has
no pointer). Python frames per decision (`tests/queue/test_decision_cost.py`):
43 -> 26 (linear, circular), 46 -> 28 (round robin), 49 -> 27 (least talk
time). Did not pay: a view per group kept by the core (the view holds the core:
a reference cycle, and the simulator runs without the collector); telling the
index where the walk found the slot it gave (more instructions than the search
it saved, here where the slot is the first free one).

Instructions per decision, same command, the tree at this round's start
(99322af) against the tree after it:

| algorithm (1,000 members) | 99322af | fused path | change |
|---|---|---|---|
| `linear` | 74,870 | 49,806 | -33% |
| `circular` | 74,781 | 49,847 | -33% |
| `round_robin` | 76,767 | 51,145 | -33% |
| `least_active` | 86,767 | 55,022 | -37% |
| `linear`, 10 members | 72,114 | 48,916 | -32% |"""


def build(algorithm: str, size: int, *, last_free: bool = False) -> RoutingCore:
    numbers = [f"01{i:08d}" for i in range(size)]
    cfg = Config(
        lines=tuple(LineConfig(number=n, password="x") for n in numbers),
        groups=(
            GroupConfig(
                name="G",
                pilot="0999999999",
                algorithm=algorithm,  # type: ignore[arg-type]
                members=tuple(MemberConfig(line=n, position=i + 1) for i, n in enumerate(numbers)),
                queue={"max_wait": None},  # type: ignore[arg-type]
            ),
        ),
    )
    core = RoutingCore(cfg, now=0.0)
    for i, n in enumerate(numbers):
        if (i < size - 1) if last_free else (i % 2 == 0):  # these members are on a call
            core.handle(OutgoingCallStarted(f"busy{i}", n), now=0.0)
            core.handle(CallAnswered(f"busy{i}"), now=0.0)
    return core


def measure(
    algorithm: str, size: int, calls: int, *, last_free: bool = False
) -> tuple[float, float, float]:
    """(µs per decision, µs per hang-up, members rung per decision)."""
    core = build(algorithm, size, last_free=last_free)
    core.handle(CallArrived("warm-up", "G", "0611111111"), now=0.5)  # the index is built
    core.handle(CallHungUp("warm-up"), now=0.5)
    decide = hang_up = 0.0
    rung = 0
    now = 1.0
    clock = time.perf_counter
    for k in range(calls):
        arrival, end = CallArrived(f"c{k}", "G", "0611111111"), CallHungUp(f"c{k}")
        t0 = clock()
        actions = core.handle(arrival, now=now)
        t1 = clock()
        core.handle(end, now=now)
        t2 = clock()
        decide += t1 - t0
        hang_up += t2 - t1
        rings = sum(
            1 if isinstance(a, Ring) else len(a.members)
            for a in actions
            if isinstance(a, Ring | RingAll)
        )
        assert rings, actions
        rung += rings
        now += 0.001
    return 1e6 * decide / calls, 1e6 * hang_up / calls, rung / calls


def baseline_us(size: int, calls: int) -> float:
    members = [{"key": f"01{i:08d}", "busy": i % 2 == 0, "ringing": False} for i in range(size)]
    spent = 0.0
    for _ in range(calls):
        t0 = time.perf_counter()
        chosen = next(m for m in members if not m["busy"] and not m["ringing"])
        spent += time.perf_counter() - t0
        assert chosen
    return 1e6 * spent / calls


@contextlib.contextmanager
def scanning(reference: bool) -> Iterator[None]:
    if reference:
        with reference_decisions():
            yield
    else:
        yield


class Runs:
    """Several runs of one figure: median and spread."""

    def __init__(self) -> None:
        self.values: list[float] = []

    def add(self, value: float) -> None:
        self.values.append(value)

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    def cell(self, digits: int = 1) -> str:
        lo, hi = min(self.values), max(self.values)
        return f"{self.median:,.{digits}f} ({lo:,.{digits}f}-{hi:,.{digits}f})"


def collect(runs: int, calls: int, progress: Callable[[str], None]) -> dict[tuple[str, ...], Runs]:
    """Every figure, the runs interleaved (each run measures every figure once), so that
    a slower spell of the shared machine falls on all of them alike."""
    figures: dict[tuple[str, ...], Runs] = {}

    def note(key: tuple[str, ...], value: float) -> None:
        figures.setdefault(key, Runs()).add(value)

    for run in range(runs):
        for size in SIZES:
            note(("baseline", str(size)), baseline_us(size, calls))
        for algorithm in ALGORITHMS:
            for mode in ("index", "scan"):
                with scanning(mode == "scan"):
                    sizes = SIZES if mode == "index" else (1000,)
                    for size in sizes:
                        d, h, r = measure(algorithm, size, calls)
                        note((algorithm, mode, str(size), "decide"), d)
                        note((algorithm, mode, str(size), "hang_up"), h)
                        note((algorithm, mode, str(size), "rung"), r)
                    d, _, _ = measure(algorithm, 1000, max(50, calls // 4), last_free=True)
                    note((algorithm, mode, "last", "decide"), d)
        progress(f"run {run + 1}/{runs} done")
    return figures


def render(figures: dict[tuple[str, ...], Runs], runs: int, calls: int) -> str:
    base = Runs()
    for size in SIZES:
        base.values += figures[("baseline", str(size))].values
    fastest = min(base.values)  # a 0.5 µs figure is noisy here: the strict reading
    scale = ISSUE_BARE_SCAN_US / fastest  # to the speed of the issue's machine
    rows = [
        "| algorithm | decision, index | decision, full scan (before) | scan / index "
        "| decision / bare scan | last free: index | last free: full scan "
        "| hang-up, index | hang-up, full scan | upkeep per member freed |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    verdicts = []
    for algorithm in ALGORITHMS:
        f = {k[1:]: v for k, v in figures.items() if k[0] == algorithm}
        decide, scan = f[("index", "1000", "decide")], f[("scan", "1000", "decide")]
        rung = f[("index", "1000", "rung")].median
        upkeep = (
            f[("index", "1000", "hang_up")].median - f[("scan", "1000", "hang_up")].median
        ) / rung
        speed_up = scan.median / decide.median
        rows.append(
            f"| `{algorithm}` | {decide.cell()} | {scan.cell()} | {speed_up:.1f}x "
            f"| {decide.median / base.median:.0f}x | {f[('index', 'last', 'decide')].cell()} "
            f"| {f[('scan', 'last', 'decide')].cell()} | {f[('index', '1000', 'hang_up')].cell()} "
            f"| {f[('scan', '1000', 'hang_up')].cell()} | {upkeep:+.2f} µs |"
        )
        if algorithm == "ring_all":
            per = decide.median / rung
            verdicts.append(
                f"- ring all: {decide.median:.1f} µs for {rung:.0f} members rung, "
                f"{per:.2f} µs per member rung = {per / fastest:.2f} bare scans, "
                f"{per * scale:.2f} µs at the issue's speed (target 0.2 µs: "
                f"{'met' if per * scale < 0.2 else 'not met'}); the target list itself is a "
                "slice of the index, the rest is the offer (one `RingAll` action, one store "
                "write; per member its token, its ringing mark, the index taking it)."
            )
        else:
            worst = max(decide.median, f[("index", "last", "decide")].median)
            verdicts.append(
                f"- `{algorithm}`: {worst:.1f} µs at worst = {worst / fastest:.0f} bare "
                f"scans, {worst * scale:.1f} µs at the issue's speed (target 20 µs: "
                f"{'met' if worst * scale < 20 else 'not met'})."
            )
    small = [
        "| algorithm | 10 members | 100 members | 1,000 members |",
        "|---|---|---|---|",
    ]
    for algorithm in ALGORITHMS:
        cells = [figures[(algorithm, "index", str(s), "decide")].cell() for s in SIZES]
        small.append(f"| `{algorithm}` | " + " | ".join(cells) + " |")
    small.append(
        "| baseline: bare first-free list scan | "
        + " | ".join(figures[("baseline", str(s))].cell(2) for s in SIZES)
        + " |"
    )
    load = os.getloadavg()[0]
    return (
        f"µs per decision at 1,000 members (half of them busy), median (min-max) of {runs} runs "
        f"of {calls} calls; every figure of a row measured in the same runs. *full scan*: "
        "the decisions before the index (`tests/support/reference_routing.py`), same core "
        "otherwise. *last free*: all members busy but the last. *upkeep per member freed*: "
        "(hang-up with the index - hang-up with the scan) / members that rang. Bare list scan "
        f"in the same runs (every size): {base.cell(2)} µs, against {ISSUE_BARE_SCAN_US} µs "
        "where the issue's targets were set: the targets are read as ratios to its fastest "
        f"run here, {fastest:.2f} µs (the strict reading; *at the issue's speed*: µs x "
        f"{scale:.2f}). Other work shared the machine (load average "
        f"{load:.1f} at the end).\n\n"
        + "\n".join(rows)
        + "\n\n"
        + "\n".join(verdicts)
        + "\n\nWith the index, by group size (µs per decision):\n\n"
        + "\n".join(small)
        + "\n\n"
        + PROFILE
    )


def script(algorithm: str, size: int, calls: int) -> None:
    """The fixed script of ``--callgrind``: every decision inside ``operator.call``."""
    core = build(algorithm, size)
    core.handle(CallArrived("warm-up", "G", "0611111111"), now=0.5)  # the index is built
    core.handle(CallHungUp("warm-up"), now=0.5)
    call, handle, now = operator.call, core.handle, 1.0
    for k in range(calls):
        call(handle, CallArrived(f"c{k}", "G", "0611111111"), now=now)
        handle(CallHungUp(f"c{k}"), now=now)
        now += 0.001


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--callgrind", choices=ALGORITHMS, help="run the fixed script only")
    parser.add_argument("--size", type=int, default=1000, help="members (--callgrind)")
    args = parser.parse_args()
    if args.callgrind:
        script(args.callgrind, args.size, args.calls)
        return
    figures = collect(args.runs, args.calls, lambda s: print(s, file=sys.stderr, flush=True))
    body = render(figures, args.runs, args.calls)
    print(body)
    if not args.no_write:
        write_section(
            "routing",
            f"python benchmarks/bench_routing.py --runs {args.runs} --calls {args.calls}",
            body,
        )


if __name__ == "__main__":
    main()
