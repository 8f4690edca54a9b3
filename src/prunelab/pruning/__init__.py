"""What every pruning family shares: prunable parameters and masks that stay applied (masks.py),
importance scores (scores.py), exact selection (selection.py), round schedules (schedule.py) and
the round loop's part for families that prune under masks (mask_pruner.py)."""
