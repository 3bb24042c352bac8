"""The ceiling: a trivial Flask app answering every CDS service call with `{"cards": []}`.

The benchmark runs it under the service's own gunicorn configuration (`service/gunicorn_conf.py`:
same worker class, workers, threads, keep-alive, preload), fed the same request files by the same
load generator, so "fraction of the ceiling" compares like with like. It reads no body and checks
no token. It does read the body, as any POST handler must: gunicorn closes a keep-alive connection
whose request body was left unread, and the ceiling would then measure reconnections. What is left is
the cost of the HTTP server, WSGI and Flask themselves.
"""
from flask import Flask, request

app = Flask(__name__)


@app.post("/cds-services/<service_id>")
def call_service(service_id: str):
    request.get_data()
    return {"cards": []}


@app.get("/readyz")
def readyz():
    return {"status": "ok"}
