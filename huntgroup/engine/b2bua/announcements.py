"""What a queued caller is told while waiting: greeting, periodic message, position.

Theory of operation
-------------------
A group's ``queue.announcements`` (app_queue's periodic-announce and
announce-position) are played over the hold music. This module decides *when*
and *what*; the media driver plays it
(:class:`~huntgroup.media.announcements.PlayAnnouncement`: the music pauses,
then goes on where it stopped).

- When the core holds a caller (:func:`start_announcements`, from
  :func:`~huntgroup.engine.b2bua.caller_leg.hold`), the caller hears the
  ``greeting`` at once, once, before the music. The periodic message is then
  due ``periodic.every`` seconds after entry, and again every ``every``
  seconds; the position ``position.every`` seconds after entry, and so on.
  Both due together make one announcement: the message, then the position.
- The position is read from the core at each announcement
  (``RoutingCore.queue(group)``, the order callers will be served in), so it
  follows the queue as it moves; a caller not in the queue at that moment
  (a member is being offered its call) is not told one. It is said from the
  admin's prompt files (:func:`spoken_number`): "you are caller number",
  the number, "in the queue" when that prompt exists.
- One timer per call (``TimerKind.ANNOUNCE``, the earlier of the two due
  times). It is live only while the caller is held with music
  (``Call.music``): once bridged (``connect`` clears ``Call.announcing``) or
  hung up, nothing more is said. The group's settings are read again at each
  announcement, so a reload that removes them stops them.
- The schedule is the group's the caller waits for. A waiting caller
  forwarded to another group (``overflow_to``) is held again by that group
  (a new ``Hold``, with its music): that group's schedule starts afresh,
  greeting included. Held again in the same group, the schedule goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Collection

from huntgroup.config.models import AnnouncementsConfig, PositionAnnouncement
from huntgroup.engine.b2bua.call_log import about
from huntgroup.engine.b2bua.calls import Announcing, Call
from huntgroup.engine.b2bua.context import Context, TimerKind
from huntgroup.media.announcements import PlayAnnouncement

log = logging.getLogger("huntgroup.calls")

__all__ = ["announcement_due", "position_clips", "spoken_number", "start_announcements"]


def start_announcements(ctx: Context, call: Call) -> None:
    """The caller was just held with music: greet it, and schedule what follows. Held
    again in the same group's queue, its schedule goes on (no second greeting)."""
    group = ctx.core.group_of_pilot(call.number)
    if group is None:
        call.announcing = None
        return
    if call.announcing is not None and call.announcing.group == group:
        return
    settings = _settings(ctx, group)
    if settings is None:
        call.announcing = None
        return
    now = ctx.now
    periodic, position = settings.periodic, settings.position
    call.announcing = Announcing(
        group,
        now + periodic.every if periodic is not None else None,
        now + position.every if position is not None else None,
    )
    if settings.greeting is not None:
        log.info("call %s: greeting (%s)", call.key, group, extra=about(ctx, call, "greeting"))
        _play(ctx, call, (settings.greeting,))
    _arm(ctx, call)


def announcement_due(ctx: Context, call: Call) -> None:
    """The call's announcement timer fired (it is live: the caller still waits)."""
    state = call.announcing
    assert state is not None  # timer_live checked it
    group = ctx.core.group_of_pilot(call.number)
    if group != state.group:  # forwarded into another group's queue meanwhile
        call.announcing = None
        start_announcements(ctx, call)
        return
    settings = _settings(ctx, group)
    if settings is None:  # removed by a reload
        call.announcing = None
        return
    now = ctx.now
    clips: list[str] = []
    if state.periodic_at is not None and state.periodic_at <= now:
        periodic = settings.periodic
        state.periodic_at = _next(state.periodic_at, periodic.every, now) if periodic else None
        if periodic is not None:
            clips.append(periodic.file)
    if state.position_at is not None and state.position_at <= now:
        position = settings.position
        state.position_at = _next(state.position_at, position.every, now) if position else None
        if position is not None:
            clips += position_clips(ctx, call, group, position)
    if clips:
        _play(ctx, call, tuple(clips))
    _arm(ctx, call)


def position_clips(
    ctx: Context, call: Call, group: str, settings: PositionAnnouncement
) -> tuple[str, ...]:
    """The prompt files that tell ``call`` its place in ``group``'s queue; () when it is
    not in the queue or the number cannot be said with the prompts there are."""
    queue = ctx.core.queue(group)
    if call.core_id not in queue:
        return ()
    files = settings.files()
    words = spoken_number(queue.index(call.core_id) + 1, files)
    if words is None or "you-are-caller" not in files:
        return ()
    trailer = ("in-queue",) if "in-queue" in files else ()
    return tuple(files[name] for name in ("you-are-caller", *words, *trailer))


def spoken_number(n: int, available: Collection[str]) -> tuple[str, ...] | None:
    """The prompt names that say ``n``: its own file when there is one (``12``), else
    tens and units (``20`` ``1`` for 21), else digit by digit (``1`` ``2`` ``3``); None
    when the prompts cannot say it."""
    if n < 0:
        return None
    if str(n) in available:
        return (str(n),)
    tens, units = str(n - n % 10), str(n % 10)
    if 20 < n < 100 and n % 10 and tens in available and units in available:
        return (tens, units)
    digits = tuple(str(n))
    return digits if all(d in available for d in digits) else None


def _settings(ctx: Context, group: str) -> AnnouncementsConfig | None:
    """The group's announcements, None when it has none (or no longer exists)."""
    found = next((g for g in ctx.config.groups if g.name == group), None)
    if found is None:
        return None
    settings = found.queue.announcements
    if settings.greeting is None and settings.periodic is None and settings.position is None:
        return None
    return settings


def _next(due: float, every: float, now: float) -> float:
    """The next time after ``now`` on the grid ``due + k * every`` (a late timer does
    not make announcements pile up, nor drift)."""
    missed = int((now - due) // every) + 1
    return due + missed * every


def _arm(ctx: Context, call: Call) -> None:
    state = call.announcing
    if state is None:
        return
    times = [t for t in (state.periodic_at, state.position_at) if t is not None]
    state.due = min(times) if times else None
    if state.due is not None:
        ctx.arm(state.due, TimerKind.ANNOUNCE, call.key)


def _play(ctx: Context, call: Call, clips: tuple[str, ...]) -> None:
    media = call.media
    if media.closed or media.bypassed:
        return
    plan = media.caller_plan
    ctx.out.append(PlayAnnouncement(media.session, media.caller_port, plan.codec, clips))
