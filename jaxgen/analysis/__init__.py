"""Analyses of trained models that studies call (numbers and figures for report.md)."""
