"""Distribution of ticks, bars and chat to gRPC and MQTT clients."""
