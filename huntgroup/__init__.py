"""huntgroup: a live call-routing engine for hosted telephony (SIP hunt groups)."""

__version__ = "0.1.0"
