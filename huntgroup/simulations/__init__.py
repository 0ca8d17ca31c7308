"""huntgroup.simulations: calls in virtual time through the group core.

``run_simulation(scenario_path, out_dir, compare=..., progress=...)`` is the
whole ``huntgroup simulate`` command; ``load_scenario`` validates a scenario
file; ``run_replication`` drives one replication through a RoutingCore.
"""

from __future__ import annotations

from typing import Any

__all__ = ["load_scenario", "run_replication", "run_simulation"]


def __getattr__(name: str) -> Any:
    """The three entry points, loaded on first use (PEP 562): the runner pulls in
    scipy.stats (~1 s), and every ``huntgroup`` command imports this package
    through ``huntgroup.simulations.cli``."""
    if name == "load_scenario":
        from huntgroup.simulations.model.scenario import load_scenario

        return load_scenario
    if name == "run_simulation":
        from huntgroup.simulations.runner import run_simulation

        return run_simulation
    if name == "run_replication":
        from huntgroup.simulations.virtual.driver import run_replication

        return run_replication
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
