"""The shared leaf: addresses, framing and the vsock / Unix-socket transports."""
