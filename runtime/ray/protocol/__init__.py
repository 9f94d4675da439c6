"""The wire: protobuf/gRPC definitions of the control plane (generated modules committed beside the .proto
files) and `messages`, the contract of the framed protocol on the hot paths. The bottom layer."""
