"""Chat and text generation for many LoRA adapters on one resident base model.

Three parts, as in vLLM's LoRA serving: a keeper of adapters (`adapters`), a
runner of batches (`batch`) and a scheduler of requests (`engine`). Requests
join and leave the running batch between decode steps (continuous batching),
and rows of different adapters share one forward pass: each targeted layer
adds its rows' LoRA products from stacked adapter weights (`lora_stack`).
Plain code over plain data: no Celery, Flask or SQL, so an inference worker
hosts it and the tests and `bench/serving.py` drive it directly.
"""
