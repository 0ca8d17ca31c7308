"""huntgroup.distribution."""
