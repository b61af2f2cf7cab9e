"""The `cachebench` tool: its command line, the comparison matrix, and the servers it starts."""
