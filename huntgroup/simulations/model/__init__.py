"""The model of a scenario, shared by both modes: the scenario file and the random draws."""
