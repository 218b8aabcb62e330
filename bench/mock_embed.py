"""A mock OpenAI-compatible embedding provider: `POST /v1/embeddings`, vectors that follow word overlap.

Each text becomes a hashed bag of words: its lower-cased words (split on whitespace) counted into `DIMENSIONS`
buckets by a stable hash, then scaled to unit length. Two texts' cosine similarity is then the overlap of their
word counts, so a question with its words reordered embeds identically, and one with one word in n changed lands
near (about (n - 1) / n), while unrelated questions land far apart. Enough meaning for the semantic cache's bench.

    python -m bench.mock_embed --port 18081
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
from typing import Any

from bench.httpserver import Reply, Request, response, run

DIMENSIONS = 1536


def _dumps(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


def _error(status: int, message: str) -> bytes:
    return response(status, _dumps({"error": {"message": message, "type": "invalid_request_error"}}))


def embed(text: str, dimensions: int = DIMENSIONS) -> list[float]:
    """The text's hashed bag of words, of unit length (all zeros for a text without words)."""
    vector = [0.0] * dimensions
    for word in text.lower().split():
        bucket = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little") % dimensions
        vector[bucket] += 1.0
    norm = math.sqrt(sum(value * value for value in vector))
    return [value / norm for value in vector] if norm else vector


def handle(request: Request) -> Reply:
    if request.path != "/v1/embeddings":
        return _error(404, f"no route {request.method} {request.path}")
    if request.method != "POST":
        return _error(405, "use POST")
    try:
        body = json.loads(request.body)
    except ValueError:
        return _error(400, "the body is not JSON")
    if not isinstance(body, dict) or not isinstance(body.get("model"), str):
        return _error(400, "the body needs 'model'")
    given = body.get("input")
    texts = [given] if isinstance(given, str) else given
    if not isinstance(texts, list) or not texts or not all(isinstance(text, str) for text in texts):
        return _error(400, "'input' must be a string or a list of strings")
    tokens = sum(len(text.split()) for text in texts)
    data = [{"object": "embedding", "index": index, "embedding": embed(text)} for index, text in enumerate(texts)]
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    return response(200, _dumps({"object": "list", "data": data, "model": body["model"], "usage": usage}))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    run(handle, args.host, args.port)


if __name__ == "__main__":
    main()
