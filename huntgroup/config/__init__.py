"""huntgroup.config."""
