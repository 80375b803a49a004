"""vadpipe: weakly supervised video anomaly detection from raw video to per-frame scores."""

__version__ = "0.1.0"
