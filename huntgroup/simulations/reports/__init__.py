"""What a run writes: the report files and plots, and the comparison of algorithms."""
