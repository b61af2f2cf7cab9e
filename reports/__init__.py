"""Checking histories, running the comparison matrix, and writing the reports."""
