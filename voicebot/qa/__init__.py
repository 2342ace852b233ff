"""Quality review of every conversation: the automatic scorecard computed when a call's record closes
(:mod:`voicebot.qa.scorecard`) and the word-based sentiment it uses (:mod:`voicebot.qa.sentiment`)."""
