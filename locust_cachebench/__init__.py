"""The Locust plugin of the videos scenarios: their user class, client, response contract,
history writer, hit counting, key choice, options and run record.

Locustfiles import it as they import locust-plugins: `from locust_cachebench.users import
VideosUser`. Importing this package alone imports no Locust, so the tool may read its options.
"""
