"""What the tests share: harnesses, fake peers and waiting helpers (never test cases).

- ``core_harness``: the group core (RoutingCore) driven in scripted time;
- ``state_harness``: shared-state nodes over a journal, and a real redis-server;
- ``b2bua_peers``: sans-I/O phones around the B2BUA, with a scripted clock;
- ``sip_harness``: ``huntgroup serve``, SIPp and baresip as real processes on
  loopback, free ports, OPTIONS pings, socket tables read from ``/proc``;
- ``media_live_harness``: hand-written SIP user agents and RTP sockets against
  a real server, for the media tests;
- ``live_helpers``: a real server for the live simulation tests;
- ``sim_helpers`` and ``queueing_theory``: scenario files, replication
  statistics and the exact formulas the simulator is checked against;
- ``waiting``: ``wait_until`` and ``async_wait_until``, polling on a condition.
"""
