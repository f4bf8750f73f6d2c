"""Inference (serving) workers: long-lived processes that hold models and answer the
API's online requests over Redis streams (DESIGN §7; the wire format is
``tunepool.serving_protocol``). No Celery here and no SQL: Redis and the object store.
"""
