"""The engine behind :class:`plait.runner.DagRunner`, cut along its seams.

Each module uses only those listed before it: ``environment`` and ``run`` (what every run
of a runner shares; one run's state), ``attempt`` (one call of one node, as an outcome
value), ``recording`` (every record the engine builds), ``scheduler`` (the ready queue,
the chain kept in one task, the inline fast path), ``composite`` (map and call elements).
``plait.runner`` holds the public surface. Names without an underscore are shared inside
this package; the package itself is private.
"""
