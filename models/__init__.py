"""Anomaly heads (LTGS and baselines), their losses and the dynamic label table."""
