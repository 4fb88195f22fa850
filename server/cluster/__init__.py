"""The server's jobs executed on a Ray cluster (`tokenflow serve --cluster`); docs/cluster.md.

Nothing here is imported unless the server is started with `--cluster`: Ray is an optional
extra. The server stays the one front door (store, queue order, journal, outputs); Ray only
runs the engine, in one long-lived actor per GPU (actor.py), found and fed by pool.py,
driven through the same engine seam as the local worker (remote_engine.py, worker.py).
"""
