"""mdfeed's wire schema: `mdfeed.proto` and the Python generated from it.

`mdfeed_pb2` holds the messages (Kafka payloads and client frames), `mdfeed_pb2_grpc`
the gRPC service stubs. Both are generated (`mdfeed codegen proto`) and committed.
"""
