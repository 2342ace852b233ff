"""Clients of a running voicebot server: the WebRTC caller (``voicebot call``, ``voicebot bench latency``,
tests, benchmarks) and ``ServerProcess``, which starts ``voicebot serve`` in a child process for them."""
