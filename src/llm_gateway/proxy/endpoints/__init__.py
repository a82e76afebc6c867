"""One adapter per proxied endpoint: how to read its request, what goes upstream, its usage."""
