"""Running voicebot as a cluster: several bot nodes behind Kamailio, sharing PostgreSQL and Redis."""
