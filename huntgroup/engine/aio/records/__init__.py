"""Call records in the asyncio driver: the report fan-out (:mod:`.reports`), the sinks
(:mod:`.jsonl`, :mod:`.queue_log`, :mod:`.postgres` over :mod:`.schema`), and the sinks
a configuration asks for (:mod:`.sinks`)."""
