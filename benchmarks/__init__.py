"""pytest-benchmark runs: what each cache backend, strategy and request path costs (`tox -e bench`).

A package, so that a benchmark module may share its file name with a test module in tests/.
"""
