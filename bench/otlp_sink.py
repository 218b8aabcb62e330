"""A tiny OTLP/HTTP trace collector: accepts `POST /v1/traces`, counts the spans, drops them.

The telemetry variant exports to it, so the figures include really encoding and sending every span; `GET /stats`
tells the benchmark how many arrived, which shows the spans were exported and not just created.

    python -m bench.otlp_sink --port 14318
"""

from __future__ import annotations

import argparse
import gzip
import json
from dataclasses import dataclass

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from bench.httpserver import Request, response, run


@dataclass
class TraceSink:
    exports: int = 0
    spans: int = 0
    received_bytes: int = 0
    rejected: int = 0

    def __call__(self, request: Request) -> bytes:
        if request.path == "/stats" and request.method == "GET":
            stats = {
                "exports": self.exports,
                "spans": self.spans,
                "bytes": self.received_bytes,
                "rejected": self.rejected,
            }
            return response(200, json.dumps(stats).encode())
        if request.path != "/v1/traces" or request.method != "POST":
            return response(404, b'{"error": "only POST /v1/traces and GET /stats"}')
        body = request.body
        if request.headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        export = ExportTraceServiceRequest()
        try:
            export.ParseFromString(body)
        except Exception:  # protobuf raises its own DecodeError; any failure is the client's bad body
            self.rejected += 1
            return response(400, b'{"error": "not an ExportTraceServiceRequest"}')
        self.exports += 1
        self.received_bytes += len(request.body)
        self.spans += sum(len(scope.spans) for rs in export.resource_spans for scope in rs.scope_spans)
        answer = ExportTraceServiceResponse().SerializeToString()
        return response(200, answer, content_type="application/x-protobuf")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    run(TraceSink(), args.host, args.port)


if __name__ == "__main__":
    main()
