"""A quicker ``__init__`` for frozen, slotted dataclasses made on every message.

Theory of operation
-------------------
The ``__init__`` that :func:`dataclasses.dataclass` writes for a frozen class stores
each field through ``object.__setattr__``, looked up anew for every field, because
the class's own ``__setattr__`` refuses. The SIP codec, the SDP code and the B2BUA
make a dozen such objects per message (``Via``, ``NameAddress``, ``Request``,
``Response``, the transaction layer's reports, the SDP lines...), so that
``__init__`` was one of the largest single costs of a call (issue 14).

:func:`quick_init` replaces it with one that calls each slot's own setter (the
member descriptor's ``__set__``), bound once when the class is made: the same
instance, field by field, in about half the instructions. Everything else is the
dataclass's own: frozenness (assigning a field still raises), equality, hashing,
``repr``, ``replace``, pattern matching. It knows plain fields only (no default or
a default value): a class it could not give the same ``__init__`` (a default
factory, ``init=False``, keyword-only fields, ``__post_init__``, no slots) is
refused at import, so a later change to such a class cannot silently lose behaviour.

A class compiled by mypyc (``scripts/build_native.sh``, ``docs/native.md``) whose
``__init__`` is written out in its body keeps it: a compiled ``__init__`` is not a
Python function, and it is quicker still than this one. The same class run
interpreted gets this one, which must then take the same parameters (checked).

This module is a leaf (it imports nothing of huntgroup): ``engine.sip``, ``media``
and ``engine.b2bua`` use it.
"""

from __future__ import annotations

import inspect
from dataclasses import MISSING, fields
from typing import Any, TypeVar

_T = TypeVar("_T")


def quick_init(cls: type[_T]) -> type[_T]:
    """Give the frozen, slotted dataclass ``cls`` a quicker ``__init__`` with the same
    signature (see the module docstring); returns ``cls``. Apply it above
    ``@dataclass(frozen=True, slots=True)``."""
    own = cls.__dict__.get("__init__")
    if own is not None and not inspect.isfunction(own):
        return cls  # compiled (mypyc): its own __init__ is the quicker one
    found = fields(cls)  # type: ignore[arg-type]
    for f in found:
        if f.default_factory is not MISSING or not f.init or f.kw_only:
            raise TypeError(f"{cls.__name__}.{f.name}: a plain field is needed (quick_init)")
        if f.name == "self" or f.name.startswith("__qi_"):
            raise TypeError(f"{cls.__name__}.{f.name}: a name quick_init keeps for itself")
    if hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__name__}: __post_init__ is not run by quick_init")
    names = [f.name for f in found]
    # the setters and defaults are globals of the new function, named by position: no
    # field's name can hide one of them
    env: dict[str, Any] = {}
    for i, name in enumerate(names):
        slot = cls.__dict__.get(name)
        if slot is None or not hasattr(slot, "__set__"):
            raise TypeError(f"{cls.__name__}.{name}: a slot is needed (quick_init)")
        env[f"__qi_set_{i}"] = slot.__set__
    params = []
    for i, f in enumerate(found):
        if f.default is MISSING:
            params.append(f.name)
        else:
            env[f"__qi_default_{i}"] = f.default
            params.append(f"{f.name}=__qi_default_{i}")
    body = "".join(f"    __qi_set_{i}(self, {n})\n" for i, n in enumerate(names)) or "    pass\n"
    exec(f"def __init__(self, {', '.join(params)}):\n{body}", env)
    init = env["__init__"]
    if not _same_parameters(init, cls.__init__):  # e.g. an InitVar (not in fields())
        raise TypeError(f"{cls.__name__}: quick_init would change the signature of __init__")
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    cls.__init__ = init  # type: ignore[method-assign]
    return cls


def _same_parameters(ours: Any, theirs: Any) -> bool:
    """The same parameters: names, kinds, and the very same default objects."""
    a = list(inspect.signature(ours).parameters.values())
    b = list(inspect.signature(theirs).parameters.values())
    return len(a) == len(b) and all(
        p.name == q.name and p.kind == q.kind and p.default is q.default
        for p, q in zip(a, b, strict=True)
    )
