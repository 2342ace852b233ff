"""telephony: SIP user agent, RTP, SDP, DTMF, trunks, SIP transport for pipecat, queue and transfer."""
