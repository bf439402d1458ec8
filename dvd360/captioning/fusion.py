"""360 Text Fusion: four view captions -> one panorama caption.

- `ChatFuser`: an OpenAI-compatible chat endpoint (POST {url}/chat/completions), told the task
  and given worked examples, as the paper did with ChatGPT. Configured by the environment:
  `DVD360_LLM_URL` (e.g. https://api.openai.com/v1), `DVD360_LLM_MODEL`, `DVD360_LLM_API_KEY`
  (optional for local servers). Temperature 0 for repeatable answers.
- `template_fuse`: deterministic fallback naming every view with its direction.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from typing import Callable, Sequence

VIEW_DIRECTIONS = ("in front", "to the right", "behind", "to the left")

TASK = (
    "You write captions for 360-degree panorama videos. You receive four captions of the "
    "panorama's first frame, one per perspective view: front (longitude 0), right (90), back "
    "(180) and left (270), each with a 90-degree field of view. Some captions may be wrong or "
    "repeat each other. Write one fluent English sentence of at most 40 words that describes "
    "the whole scene: the setting first, then the notable objects. Do not mention views, "
    "cameras, panoramas or directions. Answer with the caption only."
)

EXAMPLES = (
    (("a city street with cars parked on the side", "a tall building with many windows",
      "a street with a bus and people walking", "a park with trees and benches"),
     "A busy city street lined with tall buildings and parked cars, with a bus, people "
     "walking and a small park with trees and benches."),
    (("a beach with waves crashing on the shore", "a sandy beach with palm trees",
      "a view of the ocean from the beach", "a beach with people sitting under umbrellas"),
     "A sunny sandy beach with palm trees, waves rolling onto the shore of the ocean and "
     "people relaxing under umbrellas."),
)


def _clean(caption: str) -> str:
    """One line, no final full stop, first letter lower case unless it starts an acronym."""
    caption = " ".join(caption.split()).rstrip(" .")
    if len(caption) > 1 and caption[1].isupper():
        return caption
    return caption[:1].lower() + caption[1:]


def template_fuse(captions: Sequence[str]) -> str:
    """'A 360-degree panorama: in front, c0; to the right, c1; behind, c2; to the left, c3.'"""
    if len(captions) != len(VIEW_DIRECTIONS):
        raise ValueError(f"expected {len(VIEW_DIRECTIONS)} view captions, got {len(captions)}")
    parts = [f"{direction}, {_clean(caption)}" for direction, caption in zip(VIEW_DIRECTIONS, captions)]
    return "A 360-degree panorama: " + "; ".join(parts) + "."


def chat_messages(captions: Sequence[str]) -> list[dict[str, str]]:
    """The task, the worked examples as earlier turns, then this clip's four captions."""
    def ask(views: Sequence[str]) -> str:
        names = ("front", "right", "back", "left")
        return "\n".join(f"{name}: {caption}" for name, caption in zip(names, views))

    messages = [{"role": "system", "content": TASK}]
    for views, answer in EXAMPLES:
        messages += [{"role": "user", "content": ask(views)}, {"role": "assistant", "content": answer}]
    messages.append({"role": "user", "content": ask(captions)})
    return messages


class ChatFuser:
    """Fuses captions through an OpenAI-compatible `/chat/completions` endpoint."""

    def __init__(self, url: str, model: str, api_key: str | None = None, timeout: float = 60.0,
                 retries: int = 3):
        self.url = url.rstrip("/") + "/chat/completions"
        self.model = model
        self.api_key = api_key
        self.timeout = timeout
        self.retries = retries
        self.name = f"chat:{model}"

    @classmethod
    def from_env(cls) -> "ChatFuser | None":
        """A fuser from DVD360_LLM_URL / DVD360_LLM_MODEL / DVD360_LLM_API_KEY, or None if unset."""
        url, model = os.environ.get("DVD360_LLM_URL"), os.environ.get("DVD360_LLM_MODEL")
        if not url and not model:
            return None
        if not (url and model):
            raise ValueError("set both DVD360_LLM_URL and DVD360_LLM_MODEL (or neither for template fusion)")
        return cls(url, model, os.environ.get("DVD360_LLM_API_KEY"))

    def __call__(self, captions: Sequence[str]) -> str:
        body = json.dumps({"model": self.model, "messages": chat_messages(captions),
                           "temperature": 0}).encode()
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        for attempt in range(1, self.retries + 1):
            try:
                request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    answer = json.load(response)
                text = answer["choices"][0]["message"]["content"].strip()
                if not text:
                    raise ValueError(f"{self.url}: empty answer")
                return " ".join(text.split())
            except urllib.error.HTTPError as error:
                retryable = error.code >= 500 or error.code == 429
                if not retryable or attempt == self.retries:
                    raise RuntimeError(f"{self.url}: HTTP {error.code} {error.reason}") from error
            except (urllib.error.URLError, TimeoutError) as error:
                if attempt == self.retries:
                    raise RuntimeError(f"{self.url}: {error}") from error
            time.sleep(2 ** attempt)
        raise RuntimeError(f"{self.url}: no answer after {self.retries} attempts")


def make_fuser() -> tuple[str, Callable[[Sequence[str]], str]]:
    """(name, fuse) : the chat endpoint when configured, else the template."""
    chat = ChatFuser.from_env()
    return (chat.name, chat) if chat is not None else ("template", template_fuse)
