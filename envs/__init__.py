"""Suites: one module per environment family."""
