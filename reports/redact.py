"""Credentials kept out of what a run records: the `user:password@` of a URL becomes `***@`.

The Locust processes import it too, so it needs nothing but Python (no pandas).
"""

import re

# A URL's userinfo: after `scheme://`, up to the last `@` before the host's end (a password
# may hold an unescaped `@`).
USERINFO = re.compile(r"(?<=://)[^/?#\s]*@")


def redact(text: str) -> str:
    """`text` (a URL, a command-line argument, a message) with every URL's userinfo hidden."""
    return USERINFO.sub("***@", text)
