"""Ray Client (`ray://`): the server side lives in `ray.util.client.server`; the client side is
`ray._private.client_mode` (`ray.init("ray://host:10001")`)."""
