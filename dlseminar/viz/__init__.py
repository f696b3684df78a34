"""Plots every run or command shares: learning curves, compare, lr-find, health, zoo, feature maps,
and the common helpers (the Agg backend, atomic figure saving, image arrays, class colours).

A task's own plots (confusion matrix, masks, boxes) live in its package: tasks/<name>/plots.py."""
