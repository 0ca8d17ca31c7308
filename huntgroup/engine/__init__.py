"""huntgroup.engine."""
