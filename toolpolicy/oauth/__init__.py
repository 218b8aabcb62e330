"""OAuth 2.1 for `/mcp`, with no HTTP in it: the built-in authorization server's logic, token issuing and
verification (built-in and external issuers), and their state in the store. The routes are `isthmus.oauth`."""
