"""The virtual-time simulator: the group core driven by modelled callers and members."""
