"""Request bodies of the OpenAI-compatible endpoints, parsed by hand so that every mistake is a 400 in the OpenAI
shape naming the field (FastAPI's automatic 422 would make the ``openai`` client see an unexpected status).

Unknown fields are ignored, as OpenAI's API does (clients send ``user``, ``logprobs: false``...); fields whose
meaning clinforge cannot honour (``n > 1``, ``echo``) are refused rather than silently dropped.

Example:
    >>> req = parse_body(ChatRequest, b'{"model": "m", "messages": [{"role": "user", "content": "hi"}]}')
    >>> req.messages[0].text(), req.stream
    ('hi', False)
    >>> parse_body(ChatRequest, b'{"model": "m"}')
    Traceback (most recent call last):
    ...
    clinforge.serve.api_errors.ApiError: invalid request: messages: Field required
"""

from __future__ import annotations

import json
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from clinforge.serve.api_errors import ApiError

M = TypeVar("M", bound=BaseModel)


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", protected_namespaces=())


class StreamOptions(_Lenient):
    include_usage: bool = False


class ImageUrl(_Lenient):
    url: str


class ContentPart(_Lenient):
    type: Literal["text", "image_url"]
    text: str | None = None
    image_url: ImageUrl | None = None


class ChatMessage(_Lenient):
    role: Literal["system", "user", "assistant", "developer", "tool"]
    content: str | list[ContentPart] | None = None

    def text(self) -> str:
        """The message's text parts joined (image parts are collected by ``images``)."""
        if isinstance(self.content, str) or self.content is None:
            return self.content or ""
        return "\n".join(p.text or "" for p in self.content if p.type == "text")

    def images(self, index: int) -> list[str]:
        """The message's images: ``data:`` URIs only (a server that fetched URLs could be made to leak data or
        reach internal hosts)."""
        out = []
        if isinstance(self.content, list):
            for j, part in enumerate(self.content):
                if part.type != "image_url":
                    continue
                url = part.image_url.url if part.image_url else ""
                if not url.startswith("data:image/") or ";base64," not in url:
                    raise ApiError(400, "image_url must be a data:image/...;base64,... URI (URLs and files are not "
                                        "fetched)", code="invalid_image_url",
                                   param=f"messages.{index}.content.{j}.image_url.url")
                out.append(url)
        return out


class _Sampling(_Lenient):
    model: str = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    seed: int | None = None
    n: int = Field(1, ge=1, le=1)  # one choice per request: n > 1 is refused, not silently ignored

    @field_validator("stop")
    @classmethod
    def _stop_list(cls, v: str | list[str] | None) -> str | list[str] | None:
        if isinstance(v, list) and len(v) > 4:
            raise ValueError("at most 4 stop sequences")
        return v

    def stop_list(self) -> list[str]:
        return [self.stop] if isinstance(self.stop, str) else list(self.stop or [])

    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


class ChatRequest(_Sampling):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)

    def requested_max_tokens(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


class CompletionRequest(_Sampling):
    prompt: str | list[str]
    echo: Literal[False] = False

    @field_validator("prompt")
    @classmethod
    def _one_prompt(cls, v: str | list[str]) -> str | list[str]:
        if isinstance(v, list) and len(v) != 1:
            raise ValueError("send one prompt per request (a list of prompts is not supported)")
        return v

    def prompt_text(self) -> str:
        return self.prompt if isinstance(self.prompt, str) else self.prompt[0]

    def requested_max_tokens(self) -> int | None:
        return self.max_tokens


class EmbeddingRequest(_Lenient):
    model: str = Field(min_length=1)
    input: str | list[str]
    # the openai client asks for base64 (float32 little-endian) by default
    encoding_format: Literal["float", "base64"] = "float"

    def texts(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else list(self.input)


def parse_body(model: type[M], body: bytes) -> M:
    """Parse and validate a JSON body; any problem is an ``ApiError`` 400 naming the field.

    Example:
        >>> parse_body(CompletionRequest, b'{"model": "m", "prompt": "x", "n": 2}')
        Traceback (most recent call last):
        ...
        clinforge.serve.api_errors.ApiError: invalid request: n: Input should be less than or equal to 1
    """
    try:
        data: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        where = f" (line {exc.lineno}, column {exc.colno})" if isinstance(exc, json.JSONDecodeError) else ""
        raise ApiError(400, f"the request body is not valid JSON{where}", code="invalid_json") from None
    if not isinstance(data, dict):
        raise ApiError(400, "the request body must be a JSON object", code="invalid_request")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"] if not str(p).startswith(("function-", "literal[")))
        msg = first["msg"].removeprefix("Value error, ")
        raise ApiError(400, f"invalid request: {loc or 'body'}: {msg}", code="invalid_request",
                       param=loc or None) from None
