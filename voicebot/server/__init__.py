"""The HTTP server: caller page, WebRTC signaling, call records and metrics."""
