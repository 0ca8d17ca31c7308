"""What the tests share: harnesses, fake peers and waiting helpers (never test cases).

- ``core_harness``: the group core (RoutingCore) driven in scripted time;
- ``state_harness``: shared-state nodes over a journal, and a real redis-server;
- ``b2bua_peers``: sans-I/O phones around the B2BUA, with a scripted clock;
- ``sip_harness``: ``huntgroup serve``, SIPp and baresip as real processes on
  loopback, OPTIONS pings;
- ``sip_messages``: the one view of a SIP message a test peer received (or a
  SIPp log recorded), read with huntgroup's own parser;
- ``ports``: free loopback ports, single or in RTP ranges, and the socket
  tables read from ``/proc`` (what is bound, listening, queued);
- ``media_live_harness``: SIP user agents that write their requests by hand
  (so tests can send anything) and RTP sockets against a real server, for
  the media tests;
- ``live_helpers``: a real server for the live simulation tests;
- ``cluster``: Kamailio (the shipped ``contrib/kamailio/kamailio.cfg``) in front
  of several ``huntgroup serve`` nodes on one redis-server, and the readers of
  the peers' SIPp logs (calls per member, per caller; overlaps, FIFO order);
- ``sim_helpers`` and ``queueing_theory``: scenario files, replication
  statistics and the exact formulas the simulator is checked against;
- ``waiting``: ``wait_until`` and ``async_wait_until``, polling on a condition.
"""
