"""The bodies of POST /v1/chat/completions and /v1/completions and their answers, as
OpenAI defines them.

The fields tunepool honours are checked here; an OpenAI field it cannot honour with a
value other than its default (``n`` above 1, ``logprobs``, tools) is refused naming the
field rather than silently ignored. Other fields OpenAI's SDK may send (``user``,
``metadata``, ``store``) are accepted and unused.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from api.errors import ErrorDetail

MAX_STOPS = 4  # as OpenAI
MAX_TOKENS = 1_000_000  # a sanity bound; the model's context is the real one


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)
    include_usage: bool = False


class TextPart(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart] = Field(description="Text, or a list of text parts")
    name: str | None = None

    def as_template_input(self) -> dict[str, str]:
        """What a chat template reads: role and text (``developer`` is the new ``system``)."""
        text = (
            self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)
        )
        role = "system" if self.role == "developer" else self.role
        return {"role": role, "content": text}


class _Sampling(BaseModel):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)
    model: str = Field(min_length=1, max_length=512)
    max_tokens: int | None = Field(None, ge=1, le=MAX_TOKENS, strict=True)
    temperature: float = Field(1.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    stop: str | list[str] | None = None
    seed: int | None = Field(None, ge=0, le=2**63 - 1, strict=True)
    n: int = 1
    stream: bool = False
    stream_options: StreamOptions | None = None
    logprobs: Any = None
    tools: Any = None

    @field_validator("n")
    @classmethod
    def _one(cls, value: int) -> int:
        if value != 1:
            raise ValueError("only n=1 is supported: send one request per completion")
        return value

    @field_validator("stop")
    @classmethod
    def _stops(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and len(value) > MAX_STOPS:
            raise ValueError(f"at most {MAX_STOPS} stop sequences")
        return value

    @field_validator("logprobs", "tools")
    @classmethod
    def _unsupported(cls, value: Any) -> Any:
        if value not in (None, False, [], 0):
            raise ValueError("not supported by tunepool's serving")
        return None

    @property
    def stops(self) -> list[str]:
        return [self.stop] if isinstance(self.stop, str) else list(self.stop or [])

    @property
    def include_usage(self) -> bool:
        return self.stream_options is not None and self.stream_options.include_usage

    def sampling(self) -> dict[str, Any]:
        return {
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "stop": self.stops,
            "seed": self.seed,
        }


class ChatCompletionRequest(_Sampling):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1, le=MAX_TOKENS, strict=True)

    @model_validator(mode="after")
    def _completion_tokens(self) -> ChatCompletionRequest:
        # The newer name wins; OpenAI deprecated max_tokens for chat in its favour.
        if self.max_completion_tokens is not None:
            self.max_tokens = self.max_completion_tokens
        return self


class CompletionRequest(_Sampling):
    prompt: str | list[str] = Field(description="One prompt (a list of one is accepted)")
    echo: bool = False
    suffix: str | None = None

    @field_validator("prompt")
    @classmethod
    def _one_prompt(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and len(value) != 1:
            raise ValueError("one prompt per request (a string, or a list of one string)")
        return value

    @field_validator("echo", "suffix")
    @classmethod
    def _no_echo(cls, value: Any) -> Any:
        if value:
            raise ValueError("not supported by tunepool's serving")
        return value

    @property
    def text(self) -> str:
        return self.prompt if isinstance(self.prompt, str) else self.prompt[0]


# -- answers ------------------------------------------------------------------------


class OpenAIErrorDetail(ErrorDetail):
    """tunepool's error with OpenAI's fields added (the SDK reads ``message``)."""

    type: str = Field(description="invalid_request_error, authentication_error, ...")
    param: str | None = Field(description="the field at fault, as OpenAI names it")


class OpenAIErrorResponse(BaseModel):
    """The body of an error of the chat routes (``api.chat_completions.openai_error``)."""

    model_config = ConfigDict(extra="forbid")
    error: OpenAIErrorDetail


class _Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CompletionUsage(_Answer):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class AssistantMessage(_Answer):
    role: Literal["assistant"]
    content: str
    refusal: None


class ChatChoice(_Answer):
    index: int
    message: AssistantMessage
    logprobs: None
    finish_reason: str = Field(description="stop, or length when max_tokens was reached")


class ChatCompletion(_Answer):
    """A whole chat completion; with ``stream`` the answer is text/event-stream chunks
    (``chat.completion.chunk``) ending in ``data: [DONE]``."""

    id: str
    object: Literal["chat.completion"]
    created: int = Field(description="unix seconds")
    model: str
    choices: list[ChatChoice]
    usage: CompletionUsage


class TextChoice(_Answer):
    index: int
    text: str
    logprobs: None
    finish_reason: str


class TextCompletion(_Answer):
    """A whole text completion; with ``stream`` text/event-stream chunks."""

    id: str
    object: Literal["text_completion"]
    created: int = Field(description="unix seconds")
    model: str
    choices: list[TextChoice]
    usage: CompletionUsage
