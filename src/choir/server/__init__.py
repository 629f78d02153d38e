"""The server: the composition root and its runner.

runtime.py  Runtime: the frozen, typed object holding the running engines
app.py      the ONLY composition root: builds every part, wires the commit feed, starts and
            stops them (imported by the CLI, the runner and tests)
run.py      checks the port and the data directory, then runs uvicorn
"""
