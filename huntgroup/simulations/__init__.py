"""huntgroup.simulations: calls in virtual time through the group core.

``run_simulation(scenario_path, out_dir, compare=..., progress=...)`` is the
whole ``huntgroup simulate`` command; ``load_scenario`` validates a scenario
file; ``run_replication`` drives one replication through a RoutingCore.
"""

from huntgroup.simulations.model.scenario import load_scenario
from huntgroup.simulations.runner import run_simulation
from huntgroup.simulations.virtual.driver import run_replication

__all__ = ["load_scenario", "run_replication", "run_simulation"]
