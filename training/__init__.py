"""Datasets and labels, grouped splits, LightGBM training, threshold choice, evaluation reports."""
