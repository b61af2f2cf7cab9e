"""Locust scenarios against the videos API, one per file (`locust -f loadtests/` loads them
all); what they share is the Locust plugin in `locust_cachebench`."""
