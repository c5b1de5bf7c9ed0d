"""The gRPC transport: ``support.v1`` servicers (``support``, ``events``, ``chat``), interceptors,
the server with health and reflection (``server``), and stubs generated from ``protos/`` (``gen``)."""
