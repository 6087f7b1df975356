"""Release metrics from the stored history (`rollouts report`): pure arithmetic over revisions and events."""
