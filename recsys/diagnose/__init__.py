"""Diagnosis rules over curves, gradients, embeddings and metrics."""
