"""Online serving, one concern a module, imported one way (each only from those above it):

* ``schema``: a request body into a frame of the model signature's columns (the value checks);
* ``request_ids``: the server's request id, the client's ``X-Request-ID`` kept beside it;
* ``routing``: canary split and log sample by a hash of the request id;
* ``auth``: the bearer token (server check, client header);
* ``contract``: the answers as pydantic models (OpenAPI);
* ``loading``: a loaded version, the served state, resolving it from the registry, preflight;
* ``prediction``: one ``predict`` call and its per-request pieces;
* ``batching``: the micro-batcher;
* ``log``: the serving log;
* ``runtime``: ``ServingRuntime``, what the BentoML service (``deployments/service.py``) calls;
* ``process``: the service run as a child process (infra-validation, tests, benchmarks).
"""
