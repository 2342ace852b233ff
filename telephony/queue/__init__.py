"""The human agent queue (ACD): agents, queues, strategies, announcements, hold music, callback requests.

- :mod:`telephony.queue.config`: ``agents:`` / ``queues:`` config sections and their cross checks.
- :mod:`telephony.queue.acd`: :class:`~telephony.queue.acd.ACD`, the deterministic state machine.
- :mod:`telephony.queue.actions`: what the ACD asks for (ring, announce, connect, fallback ...), plain data.
- :mod:`telephony.queue.runner`: :class:`~telephony.queue.runner.QueueRunner` drives the ACD on asyncio and
  hands actions to :class:`~telephony.queue.runner.QueueHandlers` (the SIP / WebRTC side).
- :mod:`telephony.queue.store`: callback requests in the database.
- :mod:`telephony.queue.entries`: waiting callers and statistics (in this process, or shared by a cluster's nodes).
- :mod:`telephony.queue.claims`: who may ring an agent (every claim on one node; one node at a time in a cluster).
- :mod:`telephony.queue.hold_music`, :mod:`telephony.queue.announcements`: what a waiting caller hears.

Nothing is imported here so that loading the config does not load SQLAlchemy or the state machine.
"""
