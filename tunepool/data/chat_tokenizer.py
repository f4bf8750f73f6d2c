"""A chat model's tokenizer without torch or transformers: `tokenizers` and `jinja2` alone.

The API counts the tokens of an uploaded chat file (and the dry-run estimate built on
them) before any job runs, in a process that must not import torch or transformers.
`ChatTokenizer` reads the two files a Hugging Face model directory keeps for this,
`tokenizer.json` and its chat template, and offers exactly what the engine's renderer
(`worker.training.causal_lm.rendering.encode_chat`) asks of a tokenizer, so the API and
the worker count with the same code: the template is rendered the way transformers
renders it (a sandboxed Jinja environment with `trim_blocks` and `lstrip_blocks`, the
special tokens as variables) and the text is encoded without added special tokens.
"""

from __future__ import annotations

import functools
import json
from datetime import datetime
from pathlib import Path
from typing import Any

TOKENIZER_FILE = "tokenizer.json"
TOKENIZER_CONFIG = "tokenizer_config.json"
CHAT_TEMPLATE_FILE = "chat_template.jinja"
# What a model directory needs for ChatTokenizer (the template may sit in the config).
CHAT_TOKENIZER_FILES = (TOKENIZER_FILE, TOKENIZER_CONFIG, CHAT_TEMPLATE_FILE)
_SPECIAL = ("bos_token", "eos_token", "unk_token", "pad_token")


class ChatTokenizer:
    """`apply_chat_template(..., tokenize=False)`, `eos_token` and
    `tok(text, add_special_tokens=False, return_offsets_mapping=True)`, as
    transformers' fast tokenizers answer them."""

    def __init__(self, tokenizer: Any, chat_template: str, special_tokens: dict[str, str]) -> None:
        self._tokenizer = tokenizer
        self._template = _compile(chat_template)
        self._special = special_tokens
        self.eos_token = special_tokens.get("eos_token")

    def apply_chat_template(
        self,
        messages: list[dict[str, str]],
        tokenize: bool = False,
        add_generation_prompt: bool = False,
    ) -> str:
        if tokenize:
            raise ValueError("ChatTokenizer renders text only; encode it with the tokenizer")
        return str(
            self._template.render(
                messages=messages,
                tools=None,
                documents=None,
                add_generation_prompt=add_generation_prompt,
                **self._special,
            )
        )

    def __call__(
        self, text: str, add_special_tokens: bool = False, return_offsets_mapping: bool = False
    ) -> dict[str, list[Any]]:
        encoding = self._tokenizer.encode(text, add_special_tokens=add_special_tokens)
        answer: dict[str, list[Any]] = {"input_ids": list(encoding.ids)}
        if return_offsets_mapping:
            answer["offset_mapping"] = list(encoding.offsets)
        return answer


@functools.lru_cache(maxsize=4)
def load_chat_tokenizer(model_dir: str) -> ChatTokenizer | None:
    """The chat tokenizer of a local model directory; None when it lacks `tokenizer.json`
    or a chat template."""
    directory = Path(model_dir)
    if not (directory / TOKENIZER_FILE).is_file():
        return None
    config: dict[str, Any] = {}
    if (directory / TOKENIZER_CONFIG).is_file():
        config = json.loads((directory / TOKENIZER_CONFIG).read_text(encoding="utf-8"))
    template = config.get("chat_template")
    if (directory / CHAT_TEMPLATE_FILE).is_file():
        template = (directory / CHAT_TEMPLATE_FILE).read_text(encoding="utf-8")
    if not isinstance(template, str):
        return None  # none, or several named templates: the engine's own choice, then
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(directory / TOKENIZER_FILE))
    # Counting needs every token: the file may carry padding or truncation settings.
    tokenizer.no_padding()
    tokenizer.no_truncation()
    special = {name: _token_text(config.get(name)) for name in _SPECIAL}
    from jinja2 import TemplateSyntaxError

    try:
        return ChatTokenizer(tokenizer, template, {k: v for k, v in special.items() if v})
    except TemplateSyntaxError:
        return None  # a tag only transformers knows ({% generation %}): the engine counts


def _token_text(value: Any) -> str | None:
    if isinstance(value, dict):  # {"content": "<|im_end|>", ...} in older configs
        value = value.get("content")
    return value if isinstance(value, str) else None


@functools.lru_cache(maxsize=8)
def _compile(template: str) -> Any:
    import jinja2
    import jinja2.ext
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise jinja2.exceptions.TemplateError(message)

    def tojson(value: Any, ensure_ascii: bool = False, indent: int | None = None) -> str:
        # Jinja's own tojson escapes HTML characters; transformers' does not.
        return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent)

    environment = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols]
    )
    environment.filters["tojson"] = tojson
    environment.globals["raise_exception"] = raise_exception
    environment.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    return environment.from_string(template)
