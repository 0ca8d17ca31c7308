"""huntgroup.media."""
