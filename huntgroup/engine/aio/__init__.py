"""asyncio drivers: the only modules that touch sockets, clocks and TLS."""
