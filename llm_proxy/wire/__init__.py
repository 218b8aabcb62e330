"""Wire formats of the APIs the proxy speaks, and the translations between them."""
