"""Operating Choir: what an operator runs and reads.

audit.py      choir audit: conservation and coherence, proven from the store alone
analytics.py  choir stats and /api/stats: activity, rewards, priors, temperature
metrics.py    Prometheus metrics of one server (a commit feed subscriber)
logs.py       structured JSON logs
simulate.py   choir simulate: the seeded simulator over the real coordinator
commands.py   the bodies of the CLI's audit and stats commands
"""
