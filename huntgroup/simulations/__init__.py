"""huntgroup.simulations."""
