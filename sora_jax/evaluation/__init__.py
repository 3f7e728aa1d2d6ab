"""Evaluation: image/video metrics, world probes, likelihood tests."""
