"""Reading and checking histories, and the figures, statistics and reports made from them.

Imports nothing else of the project, and never Locust.
"""
