"""Online serving: request schema, routing, micro-batching, the runtime behind the BentoML
service, the serving log and the server process."""
