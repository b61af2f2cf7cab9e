"""Locust scenarios against the videos API; helpers live in `_`-prefixed modules, which
Locust's directory mode (`locust -f loadtests/`) does not load as locustfiles."""
