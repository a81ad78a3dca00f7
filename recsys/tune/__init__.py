"""Diagnosis-driven hyper-parameter and structure search."""
