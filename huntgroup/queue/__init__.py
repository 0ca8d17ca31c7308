"""huntgroup.queue."""
