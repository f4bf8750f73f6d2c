"""The inference engine: load a Hugging Face model directory and predict.

Plain functions over plain data, like ``worker.training``: no Celery, Flask or SQL.
Importing this package (or ``cache``/``batcher``) does not import torch; the
modules that need it import it themselves, so the API can hold a cache and a
batcher and pay for torch only on its first prediction.
"""
