"""The Locust plugin of the videos scenarios: their user class, client, response contract,
history writer, hit counting, key choice and options, and each process's run (run.py) with its
seeding, CPU meter, thresholds, run record and web UI tab, wired to Locust's events (plugin.py).

Locustfiles import it as they import locust-plugins: `from locust_cachebench.users import
VideosUser`. Importing this package alone imports no Locust, so the tool may read its options.
"""
