"""Protobuf/gRPC definitions of OpenRay's control plane (generated modules committed beside the .proto files)."""
