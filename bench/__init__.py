"""The benchmark harness: Isthmus against the direct path, the stack's floor and peer gateways (`make bench`)."""
