"""The engines the run envelope calls, one per job kind, and their registry.

Each engine is a plain callable: ``RunContext`` in, ``EngineResult`` out
(``worker.engines.context``). None imports Celery, Flask or SQL; torch and the
model libraries are imported inside the call, in the job's own process.
"""
