"""Brains: who answers a room's ``ask`` instead of A2E (``BRIDGE_BRAINS``), as a stream of text.

- ``openai``: any OpenAI-compatible chat-completions endpoint, through the official ``openai``
  package (``AsyncOpenAI`` with ``base_url``, streaming): the room's QA context as the system prompt
  (after the brain's own ``system_prompt``), the room's conversation so far as history.
- ``webhook``: a POST of ``{room, question, qa_context, history}`` signed with HMAC-SHA256
  (``X-Bridge-Signature: sha256=<hex of HMAC(secret, "<X-Bridge-Timestamp>." + body)>``); the answer
  is the response body, as plain text (streamed or not) or JSON ``{"text": ...}``.

Keys and secrets come from the environment variables the configuration names, are read once when
the brains are built, and appear in no error, log or response. Failures become
:class:`~bridge.errors.BrainFailed` / :class:`~bridge.errors.BrainTimeout` whose messages say what
went wrong without quoting what the remote answered.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
from collections.abc import AsyncGenerator, Mapping
from typing import Any, Protocol

import httpx  # the webhook's client: a remote of the deployment's own, not A2E (bridge/a2e has its transport)
import openai
from openai.types.chat import ChatCompletionChunk

from bridge.errors import BrainFailed, BrainTimeout
from bridge.settings import ConfigurationError, Settings
from bridge.settings.brains import OpenAIBrain, WebhookBrain

Message = dict[str, str]


class Brain(Protocol):
    name: str
    tenants: frozenset[str] | None  # None: every tenant
    timeout: float  # seconds for the first word, and between words
    history: int  # messages of the conversation sent along

    def answer(self, question: str, *, room_id: str, qa_context: str | None,
               history: list[Message]) -> AsyncGenerator[str, None]: ...

    async def aclose(self) -> None: ...


def _secret(brain: str, variable: str, environ: Mapping[str, str]) -> str:
    value = environ.get(variable, "")
    if not value:
        raise ConfigurationError(f"BRIDGE_BRAINS: brain {brain!r} reads its key from ${variable}, which is not set")
    return value


class OpenAIChat:
    """An ``openai`` brain."""

    def __init__(self, name: str, config: OpenAIBrain, environ: Mapping[str, str]) -> None:
        self.name, self.config = name, config
        self.tenants = frozenset(config.tenants) if config.tenants is not None else None
        self.timeout, self.history = config.timeout, config.history
        self.client = openai.AsyncOpenAI(api_key=_secret(name, config.api_key_env, environ), base_url=config.base_url,
                                         max_retries=config.max_retries, timeout=config.timeout)

    async def answer(self, question: str, *, room_id: str, qa_context: str | None,
                     history: list[Message]) -> AsyncGenerator[str, None]:
        system = "\n\n".join(t for t in (self.config.system_prompt, qa_context) if t)
        messages: list[Any] = [*([{"role": "system", "content": system}] if system else []), *history,
                               {"role": "user", "content": question}]
        try:
            # client.post rather than chat.completions.create: create re-walks every message through the
            # package's TypedDict transform (about 0.2 ms a message, several ms with a conversation's
            # history, on every ask's path), and this body is plain JSON already. Same request, same stream.
            stream = await self.client.post("/chat/completions", body={"model": self.config.model, "messages": messages,
                                                                        "stream": True},
                                            cast_to=ChatCompletionChunk, stream=True,
                                            stream_cls=openai.AsyncStream[ChatCompletionChunk])
            try:
                async for chunk in stream:
                    for choice in chunk.choices or ():
                        if choice.delta is not None and choice.delta.content:
                            yield choice.delta.content
            finally:
                await stream.close()  # a cancelled answer stops the LLM's work too
        except openai.APITimeoutError:
            raise BrainTimeout(f"the brain {self.name} did not answer within {self.timeout:g}s") from None
        except openai.APIStatusError as exc:
            raise BrainFailed(f"the brain {self.name} answered HTTP {exc.status_code}",
                              details={"status": exc.status_code}) from None
        except openai.APIConnectionError:
            raise BrainFailed(f"the brain {self.name} could not be reached, or its answer broke off") from None
        except (openai.OpenAIError, ValueError, TypeError, AttributeError):
            raise BrainFailed(f"the brain {self.name} sent an answer that is not a chat-completions stream") from None

    async def aclose(self) -> None:
        await self.client.close()


class Webhook:
    """A ``webhook`` brain."""

    def __init__(self, name: str, config: WebhookBrain, environ: Mapping[str, str]) -> None:
        self.name, self.config = name, config
        self.tenants = frozenset(config.tenants) if config.tenants is not None else None
        self.timeout, self.history = config.timeout, config.history
        self._secret = _secret(name, config.secret_env, environ).encode()
        self.http = httpx.AsyncClient(timeout=config.timeout)

    def sign(self, body: bytes, timestamp: str) -> str:
        return "sha256=" + hmac.new(self._secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()

    async def answer(self, question: str, *, room_id: str, qa_context: str | None,
                     history: list[Message]) -> AsyncGenerator[str, None]:
        body = json.dumps({"room": room_id, "question": question, "qa_context": qa_context or "",
                           "history": history}).encode()
        stamp = str(int(time.time()))
        headers = {"content-type": "application/json", "x-bridge-timestamp": stamp,
                   "x-bridge-signature": self.sign(body, stamp)}
        try:
            async with self.http.stream("POST", self.config.url, content=body, headers=headers) as response:
                if not response.is_success:
                    raise BrainFailed(f"the brain {self.name} answered HTTP {response.status_code}",
                                      details={"status": response.status_code})
                if response.headers.get("content-type", "").startswith("application/json"):
                    text = json.loads(await response.aread()).get("text")
                    if not isinstance(text, str):
                        raise BrainFailed(f"the brain {self.name} answered JSON without a text")
                    yield text
                    return
                async for chunk in response.aiter_text():
                    yield chunk
        except httpx.TimeoutException:
            raise BrainTimeout(f"the brain {self.name} did not answer within {self.timeout:g}s") from None
        except httpx.HTTPError:
            raise BrainFailed(f"the brain {self.name} could not be reached, or its answer broke off") from None
        except (ValueError, AttributeError):
            raise BrainFailed(f"the brain {self.name} sent an answer that is not text") from None

    async def aclose(self) -> None:
        await self.http.aclose()


def build_brains(settings: Settings, environ: Mapping[str, str] = os.environ) -> dict[str, Brain]:
    """The configured brains (ConfigurationError when a key's variable is not set)."""
    brains: dict[str, Brain] = {}
    for name, config in settings.brains.items():
        brains[name] = OpenAIChat(name, config, environ) if isinstance(config, OpenAIBrain) else Webhook(
            name, config, environ)
    return brains


__all__ = ["Brain", "OpenAIChat", "Webhook", "build_brains"]
