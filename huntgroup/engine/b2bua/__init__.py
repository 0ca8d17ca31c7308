"""The call logic of the server, sans-I/O: the back-to-back user agent.

:class:`B2BUA` (:mod:`.facade`) is what the driver and the tests use; its
outputs are :class:`Transmit` and the media commands (:data:`Output`). The
modules beside it, by concern:

- :mod:`.calls`: one :class:`~.calls.Call` per call, its :class:`~.calls.Leg`\\ s,
  their states (enums); :mod:`.index`: the one index of calls;
- :mod:`.context`: the shared state, the SIP plumbing and the one timer heap;
- :mod:`.shedding` (with :mod:`.admission`): overload and floods, before any state;
- :mod:`.inbound`: new requests by method, a new INVITE up to the core;
- :mod:`.lines`: REGISTER, digest authentication, feature codes;
- :mod:`.caller_leg`, :mod:`.member_legs`: the caller's leg and the legs we start;
- :mod:`.core_actions`: the core's events and actions as SIP;
- :mod:`.relay`: in-dialog requests and every response to what we sent;
- :mod:`.direct_media`, :mod:`.session_refresh`: re-INVITEs for end-to-end media,
  RFC 4028 refreshes; :mod:`.teardown`: how calls and legs end;
- :mod:`.addressing`: numbers, URIs and identities (pure functions);
- :mod:`.auth_guard`, :mod:`.trust`, :mod:`.session_timer`, :mod:`.connections`,
  :mod:`.stats`: the helpers they use.
"""

from huntgroup.engine.b2bua.context import Output, Transmit
from huntgroup.engine.b2bua.facade import B2BUA

__all__ = ["B2BUA", "Output", "Transmit"]
