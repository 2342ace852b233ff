"""A cluster of bot nodes: what they share (``redis_state``) and how one is started."""
