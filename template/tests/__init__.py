"""Tests of the service (generated ones are regenerated; add yours in new modules)."""
