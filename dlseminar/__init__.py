"""dlseminar: run every idea of an introductory deep-learning seminar from a terminal."""
__version__ = "0.1.0"
