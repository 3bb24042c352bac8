"""The ceilings: trivial Flask apps answering every CDS service call with `{"cards": []}`.

The benchmark runs them under the service's own gunicorn configuration (`service/gunicorn_conf.py`:
same worker class, workers, threads, keep-alive, preload), fed the same charts by the same load
generator, so "fraction of the ceiling" compares like with like.

- `app`, the ceiling: reads the body and parses it with orjson, as the service does, then answers. That
  is the least any service honouring the protocol must do with a call (it cannot know there is nothing
  to say without reading the chart), so the service's throughput is reported as a fraction of this one.
- `app_noparse`, the second line: reads the body and does nothing with it. Reading is not optional
  (gunicorn closes a keep-alive connection whose request body was left unread, and the ceiling would
  then measure reconnections); what is left is the cost of the HTTP server, WSGI and Flask themselves.

Neither checks a token.
"""
import orjson
from flask import Flask, Response, request

_EMPTY = orjson.dumps({"cards": []})


def _make(parse: bool) -> Flask:
    app = Flask(__name__)

    @app.post("/cds-services/<service_id>")
    def call_service(service_id: str) -> Response:
        body = request.get_data(cache=False)
        if parse:
            orjson.loads(body)
        return Response(_EMPTY, mimetype="application/json")

    @app.get("/readyz")
    def readyz() -> Response:
        return Response(b'{"status": "ok"}', mimetype="application/json")

    return app


app = _make(parse=True)
app_noparse = _make(parse=False)
