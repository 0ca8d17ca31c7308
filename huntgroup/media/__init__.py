"""huntgroup.media: G.711, audio loading, hold music, SDP offer/answer, RTP and ports.

Modules (all sans-I/O except the file reading in ``audio`` and ``music``):

- ``g711``  — µ-law/A-law encode/decode with numpy lookup tables.
- ``audio`` — any audio file to 8 kHz mono int16; ``convert_file``, ``check_music_file``.
- ``music`` — ``HoldMusic`` (encoded once, shared clock), default music.
- ``sdp``   — SDP parse/serialise, ``answer_offer``, ``make_offer``, ``accept_answer``.
- ``rtp``   — RTP packets, ``RtpStream``, one ``PacingScheduler`` for all streams.
- ``pacer`` — ``PhasedPacer``: the engine's hold-music pacing, in phase slots.
- ``ports`` — ``PortAllocator`` for even RTP/RTCP port pairs.
- ``offer_answer`` — ``MediaPlanner``, the B2BUA's media plan: which SDP each side gets.
- ``planner_base``, ``direct_media``, ``hold_media`` — the planner's ports and ``o=``
  sessions, its direct-media part, its call-hold part.
- ``call_media`` — ``CallMedia``, one call's media state; ``commands`` — the media commands.
- ``hold``  — what puts a call on hold in SDP, and our answer to it.
- ``nat``   — telling a peer behind NAT from the addresses it announces.
"""
